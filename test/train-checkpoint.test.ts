import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { readSafetensors, writeSafetensors } from '../src/checkpoint/safetensors.js';
import {
  CHECKPOINT_FORMAT,
  checkpointTagPaths,
  loadCheckpoint,
  restoreModel,
  saveCheckpoint,
  type CheckpointMeta,
} from '../src/checkpoint/checkpoint.js';
import { createModel } from '../src/model/index.js';
import { lossCurveSvg } from '../src/train/loss-curve.js';
import { tempDir } from './helpers/train-fixture.js';

test("safetensors: the layout Python's safetensors reads (LE u64 header length, aligned JSON header, contiguous F32 data)", () => {
  const dir = tempDir('sat-st-');
  const file = path.join(dir, 'x.safetensors');
  const tensors = new Map([
    ['a.weight', { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6.5]) }],
    ['b', { shape: [1], data: Float32Array.from([-0.25]) }],
  ]);
  writeSafetensors(file, tensors, { note: 'hi' });
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0, 'data block starts 8-byte aligned');
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  assert.deepEqual(header.__metadata__, { note: 'hi' });
  assert.deepEqual(header['a.weight'], { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] });
  assert.deepEqual(header.b, { dtype: 'F32', shape: [1], data_offsets: [24, 28] });
  assert.equal(buf.length, 8 + n + 28);
  assert.equal(buf.readFloatLE(8 + n + 20), 6.5);
  const back = readSafetensors(file);
  assert.deepEqual([...back.tensors.get('a.weight')!.data], [1, 2, 3, 4, 5, 6.5]);
  assert.deepEqual(back.tensors.get('b')!.shape, [1]);
  assert.equal(fs.readdirSync(dir).length, 1, 'no temp file left behind');

  fs.writeFileSync(file, buf.subarray(0, 20));
  assert.throws(() => readSafetensors(file), /truncated/);
  assert.throws(
    () => writeSafetensors(file, new Map([['bad', { shape: [4], data: new Float32Array(3) }]])),
    /shape \[4\]/,
  );
});

test('loss curve: one point per epoch per series, axes labelled like the tutorial', () => {
  const rec = (epoch: number, trainLoss: number, valLoss: number | null) => ({
    epoch,
    trainLoss,
    valLoss,
    learningRate: 1e-3,
    steps: epoch * 10,
    seconds: 1,
    tokensPerSecond: 1,
  });
  const svg = lossCurveSvg([rec(1, 2.5, 2.6), rec(2, 1.5, 1.9), rec(3, 1.1, 1.8)]);
  assert.match(svg, /Loss Plot/);
  assert.match(svg, />Epochs</);
  assert.equal((svg.match(/<circle /g) ?? []).length, 6);
  assert.equal((svg.match(/<polyline /g) ?? []).length, 2);
  const noVal = lossCurveSvg([rec(1, 2.5, null)]);
  assert.equal((noVal.match(/<polyline /g) ?? []).length, 1);
});

test('checkpoints written before the projection.* names (encoder.kernel, encoder.bias) load, Adam moments included', () => {
  const config = {
    locations: 3,
    channels: 4,
    embedDim: 5,
    units: 6,
    attentionUnits: 3,
    vocabSize: 7,
    dropout: 0,
    attentionLambda: 0,
  };
  const model = createModel(config, { seed: 3 });
  model.setOptimizerStep(4);
  for (const [, t] of model.optimizerState().m) t.data.fill(0.5);
  const dir = tempDir('sat-old-names-');
  const meta: CheckpointMeta = {
    format: CHECKPOINT_FORMAT,
    createdAt: new Date(0).toISOString(),
    config: {},
    model: config,
    encoder: { id: 'x', locations: 3, channels: 4 },
    vocab: 'vocab.json',
    run: null,
    progress: {
      epoch: 1,
      batchInEpoch: 0,
      step: 4,
      epochRngState: [1, 2, 3, 4],
      partial: { lossSum: 0, tokens: 0, seconds: 0 },
      learningRate: 1e-3,
      lastDecayEpoch: 0,
      history: [],
      best: null,
    },
  };
  saveCheckpoint(dir, 'latest', model, meta);
  // Rewrite the file as an older version wrote it.
  const file = checkpointTagPaths(dir, 'latest').weights;
  const { tensors, metadata } = readSafetensors(file);
  const old = new Map([...tensors].map(([name, t]) => [name.replace(/(^|\.)projection\./, '$1encoder.'), t]));
  assert.ok(old.has('encoder.kernel') && old.has('optimizer.v.encoder.bias') && !old.has('projection.kernel'));
  writeSafetensors(file, old, metadata);

  const fresh = createModel(config, { seed: 9 });
  restoreModel(fresh, loadCheckpoint(dir, 'latest'), { optimizer: true });
  for (const [name, t] of model.parameters()) assert.deepEqual(fresh.parameters().get(name)!.data, t.data, name);
  assert.ok(
    fresh
      .optimizerState()
      .m.get('projection.kernel')!
      .data.every((x) => x === 0.5),
  );
  assert.equal(fresh.optimizerState().step, 4);
  model.dispose();
  fresh.dispose();
});
