/**
 * The fuzz harness (fuzz/) stays runnable: input k of a run is a function of (seed, k) alone, and
 * `npm run check:fuzz` runs a target to its iteration budget and reports the count.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { mutateInput, mutateJson } from '../fuzz/mutate.js';

const ROOT = path.resolve(import.meta.dirname, '..');

test('fuzz inputs are deterministic by (seed, k) and vary with both', () => {
  const seeds = [
    Uint8Array.from({ length: 64 }, (_, i) => i),
    new TextEncoder().encode('{"a": {"b": [1, 2]}, "c": "x"}'),
  ];
  for (const mutate of [mutateInput, mutateJson]) {
    assert.deepEqual(mutate(seeds, 7, 123, 4096), mutate(seeds, 7, 123, 4096));
    const distinct = new Set(
      Array.from({ length: 50 }, (_, k) => Buffer.from(mutate(seeds, 7, k, 4096)).toString('hex')),
    );
    assert.ok(distinct.size > 40, `${distinct.size} distinct inputs of 50`);
    assert.notDeepEqual(mutate(seeds, 7, 5, 4096), mutate(seeds, 8, 5, 4096));
    assert.ok(Array.from({ length: 50 }, (_, k) => mutate(seeds, 1, k, 100).length).every((n) => n <= 100));
  }
});

test('check:fuzz runs a target for its iteration budget', () => {
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', 'fuzz/run.ts', '--target', 'npy,safetensors', '--iterations', '300', '--seconds', '30'],
    { cwd: ROOT, encoding: 'utf8' },
  );
  assert.match(out, /^npy +300 inputs in .* 4 seeds, 0 failures$/m);
  assert.match(out, /^safetensors +300 inputs in .* 0 failures$/m);
});
