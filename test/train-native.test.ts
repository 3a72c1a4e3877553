/**
 * `train()` end to end with the native model on a tiny synthetic-shapes run. The features are an
 * "oracle" encoder written straight into a feature store (2x2 grid; each object's colour and shape
 * one-hot at the cell of its centre), so the test needs no CNN and runs in seconds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { train } from '../src/train/train.js';
import { DivergedError } from '../src/train/loop.js';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import type { TrainConfig } from '../src/train/config.js';
import { oracleRun, QUIET_TRAIN, TINY_TRAIN } from './helpers/oracle-run.js';
import { straightAndResumed } from './helpers/train-resume.js';

const tiny: Partial<TrainConfig> = { ...TINY_TRAIN, epochs: 2 };
const quiet = QUIET_TRAIN;
const losses = (h: { trainLoss: number; valLoss: number | null }[]) => h.map((e) => [e.trainLoss, e.valLoss]);

test('native: 1 epoch + --resume + 1 epoch equals 2 straight epochs bit for bit (dropout on)', async () => {
  const runDir = await oracleRun('sat-train-native-');
  const config = { ...tiny, dropout: 0.2 };
  const { a, b } = await straightAndResumed(runDir, { ...config, epochs: 2 });
  assert.equal(a.progress.history.length, 2);
  assert.deepEqual(losses(b.progress.history), losses(a.progress.history));
  assert.ok(a.progress.history[1].trainLoss < a.progress.history[0].trainLoss, 'the loss goes down');
  for (const [name, t] of a.model.parameters()) assert.deepEqual(b.model.parameters().get(name)!.data, t.data, name);
  // The checkpoint is self-contained: config, encoder, vocabulary copy.
  const ckpt = loadCheckpoint(path.join(runDir, 'b'));
  assert.equal(ckpt.meta.encoder.id, 'oracle');
  assert.equal(ckpt.meta.config.dropout, 0.2);
  assert.ok(fs.existsSync(path.join(runDir, 'b', ckpt.meta.vocab)));
  assert.ok(ckpt.tensors.has('optimizer.m.gru.kernel'));
  // Architecture cannot change on resume.
  await assert.rejects(
    train({
      runDir,
      checkpointDir: path.join(runDir, 'b'),
      overrides: { epochs: 3, units: 32 },
      resume: true,
      ...quiet,
    }),
    /"units" was 16 .* cannot change to 32/,
  );
});

test('native: a huge learning rate stops with a NaN/Infinity message and keeps the last good checkpoint', async () => {
  const runDir = await oracleRun('sat-train-native-');
  const checkpointDir = path.join(runDir, 'c');
  await train({ runDir, checkpointDir, overrides: { ...tiny, epochs: 1 }, ...quiet });
  const good = fs.readFileSync(path.join(checkpointDir, 'latest.safetensors'));
  await assert.rejects(
    train({ runDir, checkpointDir, overrides: { epochs: 3, learningRate: 1e30 }, resume: true, ...quiet }),
    (e: unknown) =>
      e instanceof DivergedError &&
      /loss became (NaN|Infinity|-Infinity) at epoch 2, batch \d+\//.test(e.message) &&
      e.message.includes(path.join(checkpointDir, 'latest.safetensors')),
  );
  assert.deepEqual(fs.readFileSync(path.join(checkpointDir, 'latest.safetensors')), good);
});
