/**
 * The float32 model on every matmul backend in this build (oneDNN and CBLAS; CBLAS alone without libdnnl-dev),
 * switched in-process: each agrees with the float64 path (loss and every gradient, as test/model-native does for
 * the default backend), with rows that share images, per-caption weights, dropout, the regulariser and both GRU and
 * initial-state modes; decoding reproduces evalLoss; and the backends agree with each other. The whole suite runs
 * on either backend with SAT_GEMM_BACKEND=cblas|onednn. The oneDNN tests are skipped on a build without it, unless oneDNN is required
 * (test/helpers/capabilities.ts): a build that lost oneDNN then fails here instead of testing CBLAS alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createModel } from '../src/model/index.js';
import { GEMM_BACKENDS, loadBinding, selectGemmBackend, type GemmBackend } from '../src/model/binding.js';
import { PARAMETER_ORDER } from '../src/model/params.js';
import { Rng } from '../src/util/rng.js';
import { testNeeding } from './helpers/capabilities.js';
import { modelConfig } from './helpers/model-fixture.js';

const native = loadBinding();
const info = native.gemmInfo();
const config = modelConfig([6, 20, 12, 16, 10, 23]);
const B = 5,
  T = 6,
  { locations: L, channels: C, embedDim: E, units: U, attentionUnits: A, vocabSize: V } = config;
const dims = Int32Array.of(B, T, L, C, E, U, A, V);
const rng = new Rng(5);
const imageFeatures = Float32Array.from({ length: 3 * L * C }, () => rng.next() * 2 - 0.5);
const imageOfRow = Int32Array.of(2, 0, 2, 1, 0);
const tokens = new Int32Array(B * (T + 1));
for (let b = 0; b < B; b++) {
  const len = 2 + rng.int(T - 1);
  for (let t = 0; t <= T; t++) tokens[b * (T + 1) + t] = t <= len ? 1 + rng.int(V - 1) : 0;
}
const weights = Float32Array.of(0.5, -1, 2, 1, 0.25);
// [dropout, lambda, seed, resetState, meanInit]
const CASES = [
  [0, 0, 0, false, false],
  [0.3, 0.5, 9, false, true],
  [0.2, 0.3, 4, true, false],
] as const;

function withBackend<R>(backend: GemmBackend, f: () => R): R {
  const before = native.gemmInfo().backend;
  native.setGemmBackend(backend);
  try {
    return f();
  } finally {
    native.setGemmBackend(before);
  }
}

function step(params: Float32Array[] | Float64Array[], o: (typeof CASES)[number]) {
  const ws = native.createWorkspace();
  const f64 = params[0] instanceof Float64Array;
  const grads = params.map((p) => (f64 ? new Float64Array(p.length) : new Float32Array(p.length)));
  const r = native.trainStep(
    ws,
    params as Float32Array[],
    grads as Float32Array[],
    dims,
    (f64 ? Float64Array.from(imageFeatures) : imageFeatures) as Float32Array,
    tokens,
    o[0],
    o[1],
    o[2],
    o[3],
    o[4],
    (f64 ? Float64Array.from(weights) : weights) as Float32Array,
    imageOfRow,
    3,
  );
  native.releaseWorkspace(ws);
  return { loss: r.loss, grads };
}

/** Why `backend` cannot be tested here (not in this build), or null. */
const missing = (backend: GemmBackend) =>
  info.built.includes(backend) ? null : `this build has ${info.built.join(', ')} only`;

for (const backend of GEMM_BACKENDS) {
  testNeeding(
    'onednn',
    missing(backend),
    `${backend}: the float32 step agrees with the float64 path (shared images, weights, dropout, regulariser, GRU and initial-state modes)`,
    () => {
      const model = createModel(config, { seed: 8 });
      const p32 = [...model.parameters().values()].map((t) => t.data);
      const p64 = p32.map((a) => Float64Array.from(a));
      for (const o of CASES) {
        const r32 = withBackend(backend, () => step(p32, o)),
          r64 = step(p64, o);
        assert.ok(Math.abs(r32.loss - r64.loss) < 1e-5 * Math.abs(r64.loss), `${o}: loss ${r32.loss} vs ${r64.loss}`);
        PARAMETER_ORDER.forEach((name, i) => {
          let scale = 0,
            diff = 0;
          for (let k = 0; k < p64[i].length; k++) {
            scale = Math.max(scale, Math.abs(r64.grads[i][k]));
            diff = Math.max(diff, Math.abs(r32.grads[i][k] - r64.grads[i][k]));
          }
          assert.ok(diff <= 1e-4 * scale + 1e-7, `${backend} ${o} ${name}: max diff ${diff} vs max |grad| ${scale}`);
        });
      }
      model.dispose();
    },
  );

  testNeeding('onednn', missing(backend), `${backend}: decoding step by step reproduces evalLoss`, () => {
    withBackend(backend, () => {
      const model = createModel({ ...config, initState: 'mean' }, { seed: 3 });
      const features = imageFeatures.subarray(0, 2 * L * C);
      const batch = { size: 2, steps: T, features, tokens: tokens.subarray(0, 2 * (T + 1)) };
      const { loss, tokens: n } = model.evalLoss(batch);
      let state = model.encode(features, 2),
        sum = 0;
      for (let t = 0; t < T; t++) {
        const out = model.step(
          state,
          Int32Array.from([0, 1], (b) => batch.tokens[b * (T + 1) + t]),
        );
        for (let b = 0; b < 2; b++) {
          const y = batch.tokens[b * (T + 1) + t + 1];
          if (y === 0) continue;
          const row = out.logits.subarray(b * V, (b + 1) * V);
          const mx = Math.max(...row);
          sum += Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0)) + mx - row[y];
        }
        state = { ...state, hidden: out.hidden };
      }
      assert.ok(Math.abs(sum / n - loss) < 1e-5 * loss, `${sum / n} vs ${loss}`);
      model.dispose();
    });
  });
}

testNeeding('onednn', missing('onednn'), 'the backends agree with each other, and the switch is checked', () => {
  const model = createModel(config, { seed: 8 });
  const p32 = [...model.parameters().values()].map((t) => t.data);
  const a = withBackend('cblas', () => step(p32, CASES[1])),
    b = withBackend('onednn', () => step(p32, CASES[1]));
  assert.ok(Math.abs(a.loss - b.loss) < 1e-6 * a.loss);
  a.grads.forEach((g, i) => {
    const scale = Math.max(...Array.from(g, Math.abs));
    g.forEach((x, k) => assert.ok(Math.abs(x - b.grads[i][k]) <= 1e-4 * scale + 1e-7, `${PARAMETER_ORDER[i]}[${k}]`));
  });
  model.dispose();
  assert.match(info.blas, /\S/);
  assert.match(info.onednn!.isa, /^(sse41|avx|avx2|avx2_vnni|avx512_core\w*)$/);
  withBackend('onednn', () => step(p32, CASES[0]));
  assert.ok(native.gemmInfo().onednn!.kernels.length > 0, 'the oneDNN kernels that ran are reported');
});

test('SAT_GEMM_BACKEND and setGemmBackend refuse unknown or absent backends', () => {
  const before = native.gemmInfo().backend;
  assert.throws(() => native.setGemmBackend('mkl' as GemmBackend), /backend must be 'cblas' or 'onednn'/);
  assert.throws(() => selectGemmBackend(native, 'mkl'), /SAT_GEMM_BACKEND=mkl: must be one of cblas, onednn/);
  if (!info.built.includes('onednn')) {
    assert.throws(() => selectGemmBackend(native, 'onednn'), /this build of the native core has only cblas/);
    assert.throws(() => native.setGemmBackend('onednn'), /not in this build/);
  }
  selectGemmBackend(native, undefined);
  assert.equal(native.gemmInfo().backend, before, 'unset leaves the backend as it was');
});
