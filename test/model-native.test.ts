/**
 * The CaptionModel API on the native core: validation, float32 vs float64 agreement (the float32
 * path uses vectorised exp/tanh approximations), inference (encode/step) reproducing the training
 * forward pass step by step, selectRows, a tiny batch being overfitted by Adam, and the step's profile
 * (per thread).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { createModel, type TrainBatch } from '../src/model/index.js';
import { loadBinding } from '../src/model/binding.js';
import { PARAMETER_ORDER } from '../src/model/params.js';
import { selectStateRows } from '../src/model/state.js';
import { Rng } from '../src/util/rng.js';
import { UserError } from '../src/util/errors.js';
import { modelConfig, SMALL_SIZES, stepDims } from './helpers/model-fixture.js';

const config = modelConfig(SMALL_SIZES);

function batch(seed: number, B = 4, T = 6): TrainBatch {
  const rng = new Rng(seed);
  const features = Float32Array.from({ length: B * config.locations * config.channels }, () => rng.next() * 2 - 0.5);
  const tokens = new Int32Array(B * (T + 1));
  for (let b = 0; b < B; b++) {
    const len = 2 + rng.int(T - 1); // real targets per row: 2..T
    tokens[b * (T + 1)] = 1;
    for (let t = 1; t <= len; t++) tokens[b * (T + 1) + t] = t === len ? 2 : 3 + rng.int(config.vocabSize - 3);
  }
  return { size: B, steps: T, features, tokens };
}

test('parameters have the documented names and Keras-style initial values', () => {
  const model = createModel(config, { seed: 5 });
  const params = model.parameters();
  assert.deepEqual([...params.keys()], [...PARAMETER_ORDER]);
  assert.deepEqual(params.get('gru.kernel')!.shape, [16, 48]);
  assert.ok(
    params.get('fc2.bias')!.data.every((x) => x === 0),
    'biases start at zero',
  );
  const emb = params.get('embedding.embeddings')!.data;
  assert.ok(emb.every((x) => Math.abs(x) <= 0.05) && emb.some((x) => x !== 0), 'embeddings uniform(-0.05, 0.05)');
  // orthogonal recurrent kernel [U, 3U]: rows are orthonormal
  const rk = params.get('gru.recurrent_kernel')!.data,
    U = 16;
  for (const [i, j] of [
    [0, 0],
    [0, 1],
    [3, 9],
    [15, 15],
  ]) {
    let dot = 0;
    for (let k = 0; k < 3 * U; k++) dot += rk[i * 3 * U + k] * rk[j * 3 * U + k];
    assert.ok(Math.abs(dot - (i === j ? 1 : 0)) < 1e-5, `rows ${i}.${j} = ${dot}`);
  }
  const again = createModel(config, { seed: 5 }).parameters().get('fc1.kernel')!.data;
  assert.deepEqual(again, params.get('fc1.kernel')!.data, 'same seed, same weights');
  model.dispose();
});

test('bad inputs are rejected with messages naming them', () => {
  const model = createModel(config);
  const b = batch(1);
  assert.throws(
    () => model.evalLoss({ ...b, features: b.features.subarray(1) }),
    (e: Error) => e instanceof UserError && /batch.features/.test(e.message),
  );
  const bad = b.tokens.slice();
  bad[3] = 99;
  assert.throws(() => model.evalLoss({ ...b, tokens: bad }), /outside the vocabulary/);
  assert.throws(() => createModel({ ...config, dropout: 1 }), /dropout/);
  assert.throws(() => model.step(model.encode(b.features, 4), Int32Array.of(1, 2)), /tokens/);
  model.dispose();
});

test('float32 training path agrees with the float64 path (loss and every gradient)', () => {
  const native = loadBinding();
  const model = createModel({ ...config, attentionLambda: 0.5 }, { seed: 9 });
  const p32 = [...model.parameters().values()].map((t) => t.data);
  const p64 = p32.map((a) => Float64Array.from(a));
  const g32 = p32.map((a) => new Float32Array(a.length));
  const g64 = p64.map((a) => new Float64Array(a.length));
  const b = batch(2);
  const dims = stepDims(config, b.size, b.steps);
  const ws = native.createWorkspace();
  const r32 = native.trainStep(ws, p32, g32, dims, b.features, b.tokens, 0, 0.5, 0, false, false);
  const r64 = native.trainStep(ws, p64, g64, dims, Float64Array.from(b.features), b.tokens, 0, 0.5, 0, false, false);
  assert.ok(Math.abs(r32.loss - r64.loss) < 1e-5 * r64.loss, `loss ${r32.loss} vs ${r64.loss}`);
  PARAMETER_ORDER.forEach((name, i) => {
    let scale = 0,
      diff = 0;
    for (let k = 0; k < g64[i].length; k++) {
      scale = Math.max(scale, Math.abs(g64[i][k]));
      diff = Math.max(diff, Math.abs(g32[i][k] - g64[i][k]));
    }
    assert.ok(diff <= 1e-4 * scale + 1e-7, `${name}: max diff ${diff} vs max |grad| ${scale}`);
  });
  native.releaseWorkspace(ws);
  model.dispose();
});

test('encode + step with teacher forcing reproduces evalLoss, attention rows sum to 1', () => {
  const model = createModel(config, { seed: 3 });
  const b = batch(4);
  const { loss, tokens } = model.evalLoss(b);
  const T = b.steps,
    B = b.size,
    V = config.vocabSize;
  let state = model.encode(b.features, B);
  let sum = 0,
    count = 0;
  for (let t = 0; t < T; t++) {
    const input = Int32Array.from({ length: B }, (_, i) => b.tokens[i * (T + 1) + t]);
    const out = model.step(state, input);
    for (let i = 0; i < B; i++) {
      let s = 0;
      for (let l = 0; l < config.locations; l++) s += out.attention[i * config.locations + l];
      assert.ok(Math.abs(s - 1) < 1e-5);
      const y = b.tokens[i * (T + 1) + t + 1];
      if (y === 0) continue;
      const row = out.logits.subarray(i * V, (i + 1) * V);
      const mx = Math.max(...row);
      const lse = Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0)) + mx;
      sum += lse - row[y];
      count++;
    }
    state = { ...state, hidden: out.hidden };
  }
  assert.equal(count, tokens);
  assert.ok(Math.abs(sum / count - loss) < 1e-5, `step-by-step ${sum / count} vs evalLoss ${loss}`);
  model.dispose();
});

test('selectRows reorders and duplicates rows (beam search) without copying the encoder output', () => {
  const model = createModel(config);
  const b = batch(5, 3);
  const state = model.encode(b.features, 3);
  const out = model.step(state, Int32Array.of(1, 1, 1));
  const picked = model.selectRows(state, Int32Array.of(2, 0, 2, 2), out.hidden);
  assert.equal(picked.size, 4);
  const U = config.units;
  assert.deepEqual(picked.hidden.subarray(0, U), out.hidden.subarray(2 * U, 3 * U));
  assert.equal(picked.encoded, state.encoded, 'rows share their image');
  assert.deepEqual(picked.imageOfRow, Int32Array.of(2, 0, 2, 2));
  const tokens = Int32Array.of(4, 4, 4, 5);
  const next = model.step(picked, tokens);
  const V = config.vocabSize; // rows 0 and 2 are both old row 2 fed the same token
  assert.deepEqual(next.logits.subarray(0, V), next.logits.subarray(2 * V, 3 * V));
  // the same step on a state whose rows were copied out (as the ONNX backends do it): the same numbers
  const copied = selectStateRows(config, state, Int32Array.of(2, 0, 2, 2), out.hidden);
  assert.equal(copied.imageOfRow, undefined);
  const fromCopies = model.step(copied, tokens);
  assert.deepEqual(next.logits, fromCopies.logits);
  assert.deepEqual(next.attention, fromCopies.attention);
  assert.deepEqual(next.hidden, fromCopies.hidden);
  // selecting again composes the maps; copying a shared state reads each row's image
  const again = model.selectRows(picked, Int32Array.of(3, 1), next.hidden);
  assert.deepEqual(again.imageOfRow, Int32Array.of(2, 0));
  assert.deepEqual(
    model.step(again, Int32Array.of(6, 6)).logits,
    model.step(selectStateRows(config, picked, Int32Array.of(3, 1), next.hidden), Int32Array.of(6, 6)).logits,
  );
  assert.throws(() => model.selectRows(state, Int32Array.of(3)), /outside/);
  assert.throws(() => model.step({ ...picked, imageOfRow: Int32Array.of(2, 0, 3, 2) }, tokens), /imageOfRow\[2\]/);
  assert.throws(() => model.step({ ...picked, imageOfRow: Int32Array.of(2, 0) }, tokens), /imageOfRow/);
  model.dispose();
});

test('Adam overfits a tiny batch (with dropout, regulariser and clipping on)', () => {
  const model = createModel({ ...config, dropout: 0.1, attentionLambda: 0.1 }, { seed: 1 });
  const b = batch(6);
  const first = model.evalLoss(b).loss;
  for (let i = 0; i < 150; i++) model.trainStep(b, { learningRate: 1e-2, clipNorm: 5 }, i);
  const last = model.evalLoss(b).loss;
  assert.equal(model.optimizerState().step, 150);
  assert.ok(last < first * 0.2, `loss ${first} -> ${last}`);
  model.dispose();
});

test('variable batch and step counts reuse the workspace without leaking state between batches', () => {
  const model = createModel(config, { seed: 2 });
  const small = batch(8, 2, 3),
    big = batch(9, 6, 7);
  const before = model.evalLoss(small).loss;
  model.evalLoss(big); // grows the buffers
  assert.equal(model.evalLoss(small).loss, before);
  const fresh = createModel(config, { seed: 2 });
  for (const b of [big, small, big]) {
    const x = model.trainStep(b, { learningRate: 1e-3 }, 1);
    const y = fresh.trainStep(b, { learningRate: 1e-3 }, 1);
    assert.equal(x.loss, y.loss);
  }
  model.dispose();
  fresh.dispose();
});

test("profiling times the calling thread's steps only, each backward section once per step", async () => {
  const native = loadBinding();
  const model = createModel(config, { seed: 3 });
  native.profile();
  native.setProfiling(true);
  try {
    model.trainStep(batch(4), { learningRate: 1e-3 });
    model.trainStep(batch(5), { learningRate: 1e-3 });
  } finally {
    native.setProfiling(false);
  }
  const sections = new Map(native.profile().map((e) => [e.name, e]));
  for (const name of ['bwd recurrence other', 'bwd recurrence weight grads', 'bwd embedding', 'fwd softmax and loss']) {
    assert.equal(sections.get(name)?.calls, 2, `${name}: ${JSON.stringify(sections.get(name))}`);
  }
  assert.ok(
    [...sections.values()].every((e) => e.seconds >= 0 && e.matmulSeconds >= 0),
    'nested sections are subtracted, never below 0',
  );

  // Another thread (a model thread) that switches profiling on and runs a step neither shows up here nor turns
  // profiling on for this thread.
  const addon = fileURLToPath(new URL('../build/Release/sat_native.node', import.meta.url));
  const worker = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads');
    const native = require(workerData.addon);
    const d = workerData.dims;
    native.setProfiling(true);
    const params = workerData.sizes.map((n) => new Float32Array(n).fill(0.01));
    const tokens = Int32Array.from({ length: d[0] * (d[1] + 1) }, (_, i) => 1 + (i % (d[7] - 1)));
    native.trainStep(native.createWorkspace(), params, null, Int32Array.from(d), new Float32Array(d[0] * d[2] * d[3]), tokens, 0, 0, 0, false, false);
    parentPort.postMessage(native.profile().length);`,
    {
      eval: true,
      workerData: {
        addon,
        dims: [2, 3, 5, 12, 8, 16, 10, 11],
        sizes: [...model.parameters().values()].map((t) => t.data.length),
      },
    },
  );
  const [workerSections] = (await once(worker, 'message')) as [number];
  await once(worker, 'exit');
  assert.ok(workerSections > 0, 'the worker profiled its own step');
  model.evalLoss(batch(6));
  assert.deepEqual(native.profile(), [], 'nothing from the worker, and this thread still does not profile');
  model.dispose();
});
