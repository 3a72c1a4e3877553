import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { averageCheckpoints } from '../src/checkpoint/average.js';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { runSat } from '../src/cli/main.js';
import { makeTinyRun, RED_BLUE } from './helpers/tiny-model.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-average-'));
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('sat average: the element-wise mean of the weights, no optimizer state, sources named, mismatches refused', async () => {
  const a = await makeTinyRun(path.join(dir, 'a'), RED_BLUE, { steps: 10 });
  const b = await makeTinyRun(path.join(dir, 'b'), RED_BLUE, { steps: 30 });
  const out = path.join(dir, 'avg');
  const lines: string[] = [];
  const log = console.log;
  console.log = (l: string) => lines.push(l);
  try {
    await runSat(['average', '--out', out, path.join(a.run, 'checkpoints'), path.join(b.run, 'checkpoints')]);
  } finally {
    console.log = log;
  }
  assert.match(lines.join('\n'), /Averaged 2 checkpoints into .*avg.best\.safetensors/);
  const [ca, cb, avg] = [a.run, b.run, out].map((t) => loadCheckpoint(t));
  assert.deepEqual(avg.meta.averagedFrom, [ca.file, cb.file]);
  assert.ok(![...avg.tensors.keys()].some((k) => k.startsWith('optimizer.')));
  let differing = 0;
  for (const [name, t] of avg.tensors) {
    const x = ca.tensors.get(name)!.data,
      y = cb.tensors.get(name)!.data;
    for (let i = 0; i < t.data.length; i++) {
      assert.ok(Math.abs(t.data[i] - (x[i] + y[i]) / 2) <= 1e-6 * (1 + Math.abs(x[i])), `${name}[${i}]`);
      if (x[i] !== y[i]) differing++;
    }
  }
  assert.ok(differing > 100, 'the two sources really differ');
  assert.ok(fs.existsSync(path.join(out, 'vocab.json')));

  const reset = await makeTinyRun(path.join(dir, 'reset'), RED_BLUE, { steps: 10, gruState: 'reset' });
  assert.throws(
    () => averageCheckpoints([a.run, reset.run], path.join(dir, 'bad')),
    /not the same model \(gruState: carry vs reset\)/,
  );
  const words = await makeTinyRun(
    path.join(dir, 'words'),
    [
      { rgb: [0xe0, 0x10, 0x10], caption: 'a red ball' },
      { rgb: [0x10, 0x30, 0xe0], caption: 'a blue circle' },
    ],
    { steps: 10 },
  );
  assert.throws(() => averageCheckpoints([a.run, words.run], path.join(dir, 'bad')), /vocabulary: different words/);
  assert.throws(() => averageCheckpoints([a.run], out), /two or more checkpoints/);
  assert.ok(!fs.existsSync(path.join(dir, 'bad')), 'nothing written on a refusal');
});
