/**
 * `initState` as a training option (`sat train --init-state zeros|mean`): validated, 'zeros' by default,
 * stored in the checkpoint's training and model configs (which every decoder builds its model from), frozen
 * on --resume; and checkpoints made before the option existed (no init_state.* tensors, no initState field)
 * still load, decode and resume exactly as before. Trains a tiny synthetic-shapes run on "oracle" features
 * (as test/train-gru-state.test.ts does), so it needs no CNN.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { runPaths } from '../src/dataset/run.js';
import { train } from '../src/train/train.js';
import { DEFAULT_TRAIN_CONFIG, resolveConfig, validateConfigPatch, type TrainConfig } from '../src/train/config.js';
import { checkpointTagPaths, loadCheckpoint, restoreModel, type CheckpointMeta } from '../src/checkpoint/checkpoint.js';
import { writeSafetensors, type Tensor } from '../src/checkpoint/safetensors.js';
import { createModel } from '../src/model/index.js';
import type { InitState } from '../src/model/types.js';
import { openFeatureStore } from '../src/features/store.js';
import { UserError } from '../src/util/errors.js';
import { oracleRun, QUIET_TRAIN, TINY_TRAIN } from './helpers/oracle-run.js';

const quiet = QUIET_TRAIN;
const tiny: Partial<TrainConfig> = { ...TINY_TRAIN, epochs: 1 };

/** The first image's features as a one-row batch, and a model rebuilt from a checkpoint as sat caption / sat eval do. */
function probe(runDir: string) {
  const store = openFeatureStore(runPaths(runDir).features('oracle'));
  const features = store.read(store.ids()[0]);
  store.close();
  return { features, batch: { size: 1, steps: 3, features, tokens: Int32Array.of(1, 3, 4, 2) } };
}
function rebuilt(file: string, initState?: InitState) {
  const ckpt = loadCheckpoint(file);
  const model = createModel(initState ? { ...ckpt.meta.model, initState } : ckpt.meta.model);
  restoreModel(model, ckpt, { optimizer: false });
  return model;
}

/** Rewrite a checkpoint as the layout before initState existed: no init_state.* tensors, no initState fields. */
function toOldLayout(dir: string, meta: (m: CheckpointMeta) => void = () => {}): void {
  const ckpt = loadCheckpoint(dir, 'latest');
  const tensors = new Map<string, Tensor>([...ckpt.tensors].filter(([name]) => !name.includes('init_state.')));
  assert.equal(ckpt.tensors.size - tensors.size, 6, 'init_state.kernel/bias and their two Adam moments');
  const m = ckpt.meta;
  delete (m.config as Partial<TrainConfig>).initState;
  delete m.model.initState;
  meta(m);
  writeSafetensors(checkpointTagPaths(dir, 'latest').weights, tensors, {
    format: 'pt',
    'sat.checkpoint': JSON.stringify(m),
  });
}

test('initState: validated with a message naming the choices', () => {
  assert.equal(resolveConfig({}, validateConfigPatch({ initState: 'mean' }, 'flag')).initState, 'mean');
  assert.throws(
    () => validateConfigPatch({ initState: 'average' }, 'flag'),
    /"initState" must be one of zeros, mean, got "average"/,
  );
  assert.throws(
    () =>
      createModel({
        locations: 2,
        channels: 3,
        embedDim: 4,
        units: 5,
        attentionUnits: 3,
        vocabSize: 6,
        dropout: 0,
        attentionLambda: 0,
        initState: 'avg' as InitState,
      }),
    (e: Error) => e instanceof UserError && /initState/.test(e.message),
  );
});

test('train --init-state mean: learns init_state.*, saved in the checkpoint, decoded as trained, frozen on --resume', async () => {
  const runDir = await oracleRun('sat-train-init-state-');
  const checkpointDir = path.join(runDir, 'mean');
  const outcome = await train({ runDir, checkpointDir, overrides: { ...tiny, initState: 'mean' }, ...quiet });
  const initial = createModel(outcome.model.config, { seed: DEFAULT_TRAIN_CONFIG.seed }); // what training started from
  assert.equal(outcome.model.config.initState, 'mean');
  const ckpt = loadCheckpoint(checkpointDir, 'latest');
  assert.equal(ckpt.meta.config.initState, 'mean');
  assert.equal(ckpt.meta.model.initState, 'mean', 'the model config every decoder builds from says mean');
  // Same seed, same initialisation: the initial-state kernel moved away from it (it learns).
  const kernel = ckpt.tensors.get('init_state.kernel')!;
  assert.deepEqual(kernel.shape, [8, 16]);
  assert.notDeepEqual(Array.from(kernel.data), Array.from(initial.parameters().get('init_state.kernel')!.data));
  initial.dispose();

  const { features, batch } = probe(runDir);
  const reloaded = rebuilt(ckpt.file),
    asZeros = rebuilt(ckpt.file, 'zeros');
  assert.equal(reloaded.evalLoss(batch).loss, outcome.model.evalLoss(batch).loss);
  assert.notEqual(asZeros.evalLoss(batch).loss, outcome.model.evalLoss(batch).loss);
  assert.ok(
    reloaded.encode(features, 1).hidden.some((x) => x !== 0),
    'decoding starts from the learnt H[0], not zeros',
  );
  assert.ok(asZeros.encode(features, 1).hidden.every((x) => x === 0));
  reloaded.dispose();
  asZeros.dispose();
  outcome.store.close();
  outcome.model.dispose();

  await assert.rejects(
    train({ runDir, checkpointDir, overrides: { epochs: 2, initState: 'zeros' }, resume: true, ...quiet }),
    /"initState" was mean .* cannot change to zeros/,
  );
  const resumed = await train({ runDir, checkpointDir, overrides: { epochs: 2 }, resume: true, ...quiet });
  assert.equal(resumed.model.config.initState, 'mean', 'resuming keeps the mode without repeating the flag');
  resumed.store.close();
  resumed.model.dispose();

  // A 'mean' checkpoint that lost its init_state tensors is refused, naming the file.
  toOldLayout(checkpointDir, (m) => {
    m.model.initState = 'mean';
  });
  const damaged = checkpointTagPaths(checkpointDir, 'latest').weights;
  assert.throws(
    () => rebuilt(damaged),
    (e: Error) => e instanceof UserError && e.message.includes(damaged) && /init_state\.kernel/.test(e.message),
  );
});

test('a checkpoint from before initState (no init_state.* tensors) loads, decodes and resumes as before', async () => {
  const runDir = await oracleRun('sat-train-init-state-');
  const checkpointDir = path.join(runDir, 'old');
  const outcome = await train({ runDir, checkpointDir, overrides: tiny, ...quiet });
  assert.equal(outcome.model.config.initState, 'zeros');
  const { features, batch } = probe(runDir);
  const before = outcome.model.evalLoss(batch).loss;
  const beforeStep = outcome.model.step(outcome.model.encode(features, 1), Int32Array.of(1)).logits;
  outcome.store.close();
  outcome.model.dispose();

  toOldLayout(checkpointDir);
  const old = loadCheckpoint(checkpointDir, 'latest');
  assert.equal(old.tensors.has('init_state.kernel'), false);
  assert.equal(old.meta.model.initState, undefined);
  const model = rebuilt(old.file);
  assert.equal(model.evalLoss(batch).loss, before, 'same loss as the model that wrote it');
  const state = model.encode(features, 1);
  assert.ok(
    state.hidden.every((x) => x === 0),
    'H[0] = 0',
  );
  assert.deepEqual(model.step(state, Int32Array.of(1)).logits, beforeStep, 'same first decoding step');
  model.dispose();

  // --resume of the old layout: initState is taken as zeros (asking for mean is refused), Adam moments start at 0.
  await assert.rejects(
    train({ runDir, checkpointDir, overrides: { epochs: 2, initState: 'mean' }, resume: true, ...quiet }),
    /"initState" was zeros .* cannot change to mean/,
  );
  const resumed = await train({ runDir, checkpointDir, overrides: { epochs: 2 }, resume: true, ...quiet });
  assert.equal(resumed.model.config.initState, 'zeros');
  resumed.store.close();
  resumed.model.dispose();
  assert.equal(
    loadCheckpoint(checkpointDir, 'latest').meta.model.initState,
    'zeros',
    'the new checkpoint records the mode',
  );
});
