/**
 * `gruState` as a training option (`sat train --gru-state carry|reset`): validated, 'carry' by default,
 * stored in the checkpoint's training and model configs (which is what every decoder builds its model
 * from), and frozen on --resume. Trains a tiny synthetic-shapes run on "oracle" features (as
 * test/train-native.test.ts does), so it needs no CNN.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { runPaths } from '../src/dataset/run.js';
import { train } from '../src/train/train.js';
import { resolveConfig, validateConfigPatch, type TrainConfig } from '../src/train/config.js';
import { loadCheckpoint, restoreModel } from '../src/checkpoint/checkpoint.js';
import { createModel } from '../src/model/index.js';
import { openFeatureStore } from '../src/features/store.js';
import { oracleRun, QUIET_TRAIN, TINY_TRAIN } from './helpers/oracle-run.js';

test('gruState: validated with a message naming the choices', () => {
  assert.equal(resolveConfig({}, validateConfigPatch({ gruState: 'reset' }, 'flag')).gruState, 'reset');
  assert.throws(
    () => validateConfigPatch({ gruState: 'zeros' }, 'flag'),
    /"gruState" must be one of carry, reset, got "zeros"/,
  );
});

test('train --gru-state reset: saved in the checkpoint, decoded as trained, frozen on --resume', async () => {
  const runDir = await oracleRun('sat-train-gru-state-');
  const checkpointDir = path.join(runDir, 'reset');
  const tiny: Partial<TrainConfig> = { ...TINY_TRAIN, epochs: 1, gruState: 'reset' };
  const quiet = QUIET_TRAIN;
  const outcome = await train({ runDir, checkpointDir, overrides: tiny, ...quiet });
  assert.equal(outcome.model.config.gruState, 'reset');
  const ckpt = loadCheckpoint(checkpointDir, 'latest');
  assert.equal(ckpt.meta.config.gruState, 'reset');
  assert.equal(ckpt.meta.model.gruState, 'reset', 'the model config every decoder builds from says reset');

  // A model rebuilt from the checkpoint (as sat caption / sat eval do) computes what training computed,
  // and the same weights in carry mode do not.
  const reloaded = createModel(ckpt.meta.model);
  restoreModel(reloaded, ckpt, { optimizer: false });
  const asCarry = createModel({ ...ckpt.meta.model, gruState: 'carry' });
  restoreModel(asCarry, ckpt, { optimizer: false });
  const store = openFeatureStore(runPaths(runDir).features('oracle'));
  const id = store.ids()[0];
  const features = store.read(id);
  const batch = { size: 1, steps: 3, features, tokens: Int32Array.of(1, 3, 4, 2) };
  assert.equal(reloaded.evalLoss(batch).loss, outcome.model.evalLoss(batch).loss);
  assert.notEqual(asCarry.evalLoss(batch).loss, outcome.model.evalLoss(batch).loss);
  reloaded.dispose();
  asCarry.dispose();
  store.close();
  outcome.store.close();
  outcome.model.dispose();

  await assert.rejects(
    train({ runDir, checkpointDir, overrides: { epochs: 2, gruState: 'carry' }, resume: true, ...quiet }),
    /"gruState" was reset .* cannot change to carry/,
  );
  const resumed = await train({ runDir, checkpointDir, overrides: { epochs: 2 }, resume: true, ...quiet });
  assert.equal(resumed.model.config.gruState, 'reset', 'resuming keeps the mode without repeating the flag');
  resumed.store.close();
  resumed.model.dispose();
});
