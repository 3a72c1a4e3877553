/**
 * Child process of test/folder-lock.test.ts: waits until START_MS (epoch ms), then tries to take the lock of
 * DIR and prints "won" (holding it HOLD_MS) or "refused: <message>". Every filesystem call the lock makes is
 * slowed by a random 0-3 ms so that racing processes interleave at every step. Not a test file itself.
 *
 * Usage: node --import tsx test/folder-lock-child.ts DIR START_MS HOLD_MS
 */
import fs from 'node:fs';
import { lockFolder } from '../src/util/folder-lock.js';

const [dir, start, hold] = process.argv.slice(2);
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const jitter = () => Atomics.wait(sleeper, 0, 0, Math.random() * 3);
for (const name of ['linkSync', 'openSync', 'readFileSync', 'rmSync', 'writeFileSync'] as const) {
  const real = fs[name] as (...args: unknown[]) => unknown;
  (fs as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
    jitter();
    const out = real(...args);
    jitter();
    return out;
  };
}
while (Date.now() < Number(start)) Atomics.wait(sleeper, 0, 0, 1);
try {
  const lock = lockFolder(dir, { command: 'race' });
  console.log('won');
  Atomics.wait(sleeper, 0, 0, Number(hold));
  lock.release();
} catch (e) {
  console.log(`refused: ${(e as Error).message}`);
}
