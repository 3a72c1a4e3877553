/**
 * Child process of test/folder-lock.test.ts. Prints "ready", waits for the file SIGNALS/go, then tries to take
 * the lock of DIR and prints "won" or "refused: <message>"; a winner holds the lock until SIGNALS/done exists.
 * Every filesystem call the lock makes is slowed by a random 0-3 ms so that racing processes interleave at every
 * step. Not a test file itself.
 *
 * Usage: node --import tsx test/helpers/folder-lock-child.ts DIR SIGNALS (the test runs it bundled: child-bundle.ts)
 */
import fs from 'node:fs';
import path from 'node:path';
import { lockFolder } from '../../src/util/folder-lock.js';

const [dir, signals] = process.argv.slice(2);
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const sleep = (ms: number) => Atomics.wait(sleeper, 0, 0, ms);
const waitFor = (name: string) => {
  while (!fs.existsSync(path.join(signals, name))) sleep(1);
};
const jitter = () => sleep(Math.random() * 3);
for (const name of ['linkSync', 'openSync', 'readFileSync', 'rmSync', 'writeFileSync'] as const) {
  const real = fs[name] as (...args: unknown[]) => unknown;
  (fs as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
    jitter();
    const out = real(...args);
    jitter();
    return out;
  };
}
console.log('ready');
waitFor('go');
try {
  const lock = lockFolder(dir, { command: 'race' });
  console.log('won');
  waitFor('done');
  lock.release();
} catch (e) {
  console.log(`refused: ${(e as Error).message}`);
}
