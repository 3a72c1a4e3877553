/**
 * An environment variable set for a while: test files share processes (test/run.mjs), so a test that sets one puts
 * back what was there (or its absence) when done.
 *
 *   const restore = setEnv('SAT_CACHE', dir);
 *   try { ... } finally { restore(); }          // or: restore() in the file's after hook
 */
export function setEnv(name: string, value: string): () => void {
  const before = process.env[name];
  process.env[name] = value;
  return () => {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  };
}
