/**
 * A test's child-process script as one plain JavaScript file, so that each child starts as `node FILE.mjs` without
 * tsx's loader (about 0.25 CPU-s less per child on Node 20, whose loader hooks run on a thread of their own). esbuild
 * bundles the script and the sources it imports (npm packages stay imports); the file is written under
 * .cache/test-children/ in the package root, so that the package root, build/Release and node_modules are found from
 * it as from the sources, and named by the SHA-256 of its content, so that runs in parallel share it and a changed
 * source makes a new one.
 *
 *   spawn(process.execPath, [bundledChild('test/helpers/folder-lock-child.ts'), ...args])
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { buildSync } from 'esbuild';
import { packageRoot } from '../../src/util/package-files.js';

const built = new Map<string, string>();

/** The bundled script of `entry` (a path relative to the package root, or absolute): its absolute path. */
export function bundledChild(entry: string): string {
  const root = packageRoot();
  const source = path.resolve(root, entry);
  const known = built.get(source);
  if (known) return known;
  const out = buildSync({
    entryPoints: [source],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    write: false,
    logLevel: 'silent',
  }).outputFiles[0].contents;
  const dir = path.join(root, '.cache', 'test-children');
  const name = `${path.basename(source, '.ts')}-${createHash('sha256').update(out).digest('hex').slice(0, 16)}.mjs`;
  const file = path.join(dir, name);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(dir, { recursive: true });
    const partial = `${file}.${process.pid}.partial`;
    fs.writeFileSync(partial, out);
    fs.renameSync(partial, file);
  }
  built.set(source, file);
  return file;
}
