/**
 * Finite-difference check of every parameter's gradient, in float64 through the addon's test-only
 * double-precision path (the same templated kernels as float32 training). Central differences with
 * h = 1e-5 on small shapes; prints the largest relative error per parameter. Both GRU state modes:
 * carry (a real recurrence) and reset (the TF tutorial's GRU, restarted from zeros every step), and both
 * initial states: zeros (the tutorial) and mean (the paper's H[0] = tanh(mean annotation · W + b)), and with
 * per-sequence loss weights (self-critical training's reward advantages, which may be negative).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadBinding } from '../src/model/binding.js';
import { PARAMETER_ORDER, parameterShapes } from '../src/model/params.js';
import { Rng } from '../src/util/rng.js';
import { GRADCHECK_SIZES, modelConfig, stepDims } from './helpers/model-fixture.js';

const native = loadBinding();
const config = modelConfig(GRADCHECK_SIZES);
const B = 3,
  T = 4;
// <start>=1 ... <end>=2, 0-padded: rows have 4, 3 and 2 real targets
const tokens = Int32Array.from([1, 4, 5, 6, 2, 1, 3, 3, 2, 0, 1, 6, 2, 0, 0]);

function randomParams(seed: number): Float64Array[] {
  const rng = new Rng(seed);
  const shapes = parameterShapes(config);
  // Non-zero biases too, so every gradient path is exercised; scale keeps tanh/sigmoid off saturation.
  return PARAMETER_ORDER.map((n) =>
    Float64Array.from({ length: shapes[n].reduce((a, b) => a * b, 1) }, () => rng.normal() * 0.5),
  );
}

function check(
  label: string,
  dropout: number,
  lambda: number,
  resetState = false,
  meanInit = false,
  weights: Float64Array | null = null,
  imageOfRow: Int32Array | null = null,
  labelSmoothing = 0,
) {
  const ws = native.createWorkspace();
  const params = randomParams(7);
  const grads = params.map((p) => new Float64Array(p.length));
  const rng = new Rng(3);
  const images = imageOfRow ? Math.max(...imageOfRow) + 1 : B;
  const features = Float64Array.from({ length: images * config.locations * config.channels }, () => rng.normal());
  const dims = stepDims(config, B, T);
  /** One trainStep on these inputs, writing gradients into `into` (null: the forward-only pass). */
  const step = (into: Float64Array[] | null) =>
    native.trainStep(
      ws,
      params,
      into,
      dims,
      features,
      tokens,
      dropout,
      lambda,
      11,
      resetState,
      meanInit,
      weights,
      imageOfRow,
      images,
      undefined,
      labelSmoothing,
    );
  const loss = () => step(null).loss;
  // The forward-only pass never applies dropout, so compare against a training pass's loss with grads,
  // then differentiate the training loss by re-running trainStep (it recomputes the same masks).
  const trainLoss = () => step(grads.map((g) => new Float64Array(g.length))).loss;
  const base = step(grads);
  assert.ok(Number.isFinite(base.loss) && base.tokens === 9, `loss ${base.loss}, tokens ${base.tokens}`);
  if (dropout === 0) assert.ok(Math.abs(loss() - base.loss) < 1e-12, 'eval loss equals training loss without dropout');
  const f = dropout > 0 ? trainLoss : loss;
  const h = 1e-5;
  const lines: string[] = [];
  let worst = 0;
  PARAMETER_ORDER.forEach((name, i) => {
    const p = params[i];
    let maxRel = 0,
      maxAbs = 0;
    for (let k = 0; k < p.length; k++) {
      const keep = p[k];
      p[k] = keep + h;
      const up = f();
      p[k] = keep - h;
      const down = f();
      p[k] = keep;
      const numeric = (up - down) / (2 * h);
      const analytic = grads[i][k];
      const abs = Math.abs(numeric - analytic);
      // Relative error, floored at 1e-4 so gradients that are zero in theory (attention.V.bias: softmax
      // is shift-invariant) or tiny compare on the scale of the finite-difference noise (~1e-11).
      const rel = abs / Math.max(Math.abs(numeric) + Math.abs(analytic), 1e-4);
      maxRel = Math.max(maxRel, rel);
      maxAbs = Math.max(maxAbs, abs);
    }
    worst = Math.max(worst, maxRel);
    lines.push(`  ${name.padEnd(22)} max rel err ${maxRel.toExponential(2)}  max abs err ${maxAbs.toExponential(2)}`);
  });
  console.log(`gradient check (${label}), loss ${base.loss.toFixed(6)}:\n${lines.join('\n')}`);
  native.releaseWorkspace(ws);
  assert.ok(worst < 1e-5, `largest relative gradient error ${worst} (see table above)`);
  return grads;
}

test('float64 gradients match central finite differences (seed model: no dropout, no regulariser)', () => {
  const grads = check('dropout 0, lambda 0', 0, 0);
  // H[0] = 0: the initial-state parameters are unused and get exactly zero gradient.
  for (const name of ['init_state.kernel', 'init_state.bias'] as const) {
    assert.ok(
      grads[PARAMETER_ORDER.indexOf(name)].every((x) => x === 0),
      `${name} gradient is exactly 0 with initState zeros`,
    );
  }
});

test("float64 gradients match finite differences with --init-state mean (the paper's initial state)", () => {
  const grads = check('init mean, dropout 0, lambda 0', 0, 0, false, true);
  for (const name of ['init_state.kernel', 'init_state.bias'] as const) {
    assert.ok(
      grads[PARAMETER_ORDER.indexOf(name)].some((x) => x !== 0),
      `${name} gradient is not 0 with initState mean`,
    );
  }
});

test('float64 gradients match finite differences with --init-state mean, the attention regulariser and dropout', () => {
  check('init mean, dropout 0.3, lambda 0.7', 0.3, 0.7, false, true);
});

test('float64 gradients match finite differences with --init-state mean and --gru-state reset, regulariser and dropout', () => {
  check('init mean, reset, dropout 0.3, lambda 0.7', 0.3, 0.7, true, true);
});

test('float64 gradients match finite differences with the attention regulariser and dropout', () => {
  check('dropout 0.3, lambda 0.7', 0.3, 0.7);
});

test("float64 gradients match finite differences with --gru-state reset (the TF tutorial's GRU)", () => {
  const grads = check('reset, dropout 0, lambda 0', 0, 0, true);
  // The recurrent kernel is unused in reset mode (the GRU's previous state is zeros): exactly zero gradient,
  // while the recurrent bias (gru.bias row 1) still learns.
  const rk = grads[PARAMETER_ORDER.indexOf('gru.recurrent_kernel')];
  assert.ok(
    rk.every((x) => x === 0),
    'gru.recurrent_kernel gradient is exactly 0',
  );
  const bias = grads[PARAMETER_ORDER.indexOf('gru.bias')],
    G = 3 * config.units;
  assert.ok(
    bias.subarray(G).some((x) => x !== 0),
    'recurrent bias gradient is not 0',
  );
});

test('float64 gradients match finite differences with --gru-state reset, the attention regulariser and dropout', () => {
  check('reset, dropout 0.3, lambda 0.7', 0.3, 0.7, true);
});

test('float64 gradients match finite differences with per-sequence loss weights (self-critical training)', () => {
  // Advantages of any sign; with dropout and the regulariser, whose term the weights do not touch.
  check('weights 0.7/-1.3/0.2, dropout 0.3, lambda 0.7', 0.3, 0.7, false, false, Float64Array.of(0.7, -1.3, 0.2));
});

test('float64 gradients match finite differences with label smoothing, shared images and dropout', () => {
  check('label smoothing', 0.3, 0.2, false, true, null, Int32Array.of(1, 0, 1), 0.1);
});

test('label smoothing: the loss is linear in eps, eps 0 is the plain cross-entropy, and out-of-range eps is refused', () => {
  const ws = native.createWorkspace();
  const params = randomParams(5);
  const rng = new Rng(9);
  const features = Float64Array.from({ length: B * config.locations * config.channels }, () => rng.normal());
  const dims = stepDims(config, B, T);
  const loss = (eps?: number) =>
    native.trainStep(ws, params, null, dims, features, tokens, 0, 0, 1, false, false, null, null, B, undefined, eps)
      .loss;
  const [l0, l1, l2] = [loss(0), loss(0.1), loss(0.2)];
  assert.equal(loss(undefined), l0);
  assert.ok(Math.abs(l1 - l0) > 1e-6, 'smoothing changes the loss');
  assert.ok(Math.abs(l2 - l0 - 2 * (l1 - l0)) < 1e-9, `linear in eps: ${l0} ${l1} ${l2}`);
  for (const bad of [-0.1, 1, NaN]) assert.throws(() => loss(bad), /labelSmoothing must be in \[0, 1\)/);
});

test("per-sequence weights scale each sequence's cross-entropy: all 1 equals no weights, a 0 drops the row", () => {
  const ws = native.createWorkspace();
  const params = randomParams(7);
  const rng = new Rng(3);
  const features = Float64Array.from({ length: B * config.locations * config.channels }, () => rng.normal());
  const dims = stepDims(config, B, T);
  const run = (w: Float64Array | null) =>
    native.trainStep(ws, params, null, dims, features, tokens, 0, 0, 0, false, false, w);
  const plain = run(null);
  assert.equal(run(Float64Array.of(1, 1, 1)).crossEntropySum, plain.crossEntropySum);
  // Per-row cross-entropy sums from one-hot weights add up to the whole, and scale linearly.
  const rows = [0, 1, 2].map((b) => run(Float64Array.from([0, 1, 2], (i) => (i === b ? 1 : 0))).crossEntropySum);
  assert.ok(Math.abs(rows[0] + rows[1] + rows[2] - plain.crossEntropySum) < 1e-12);
  const mixed = run(Float64Array.of(2, -0.5, 0));
  assert.ok(Math.abs(mixed.crossEntropySum - (2 * rows[0] - 0.5 * rows[1])) < 1e-12);
  assert.equal(mixed.tokens, plain.tokens, 'tokens still count every real target');
  assert.throws(() => run(Float64Array.of(1, 1)), /weights has 2 elements, needs 3/);
  native.releaseWorkspace(ws);
});

test('rows sharing images (encoder once per image): finite differences, and equal to duplicating the features', () => {
  // Rows 0 and 2 are captions of image 1, row 1 of image 0; with the paper's initial state, which also reads enc.
  const imageOfRow = Int32Array.of(1, 0, 1);
  const shared = check(
    'shared images, init mean, weights, dropout 0.3, lambda 0.7',
    0.3,
    0.7,
    false,
    true,
    Float64Array.of(0.7, -1.3, 0.2),
    imageOfRow,
  );
  // The same batch with each row's image copied into its own feature row: the same loss and gradients.
  const ws = native.createWorkspace();
  const params = randomParams(7);
  const rng = new Rng(3);
  const per = config.locations * config.channels;
  const imageFeatures = Float64Array.from({ length: 2 * per }, () => rng.normal());
  const features = new Float64Array(B * per);
  imageOfRow.forEach((img, b) => features.set(imageFeatures.subarray(img * per, (img + 1) * per), b * per));
  const grads = params.map((p) => new Float64Array(p.length));
  const dims = stepDims(config, B, T);
  native.trainStep(
    ws,
    params,
    grads,
    dims,
    features,
    tokens,
    0.3,
    0.7,
    11,
    false,
    true,
    Float64Array.of(0.7, -1.3, 0.2),
  );
  grads.forEach((g, i) =>
    g.forEach((x, k) =>
      assert.ok(Math.abs(x - shared[i][k]) < 1e-12, `${PARAMETER_ORDER[i]}[${k}]: ${x} vs ${shared[i][k]}`),
    ),
  );
  assert.throws(
    () =>
      native.trainStep(
        ws,
        params,
        grads,
        dims,
        imageFeatures,
        tokens,
        0,
        0,
        0,
        false,
        false,
        null,
        Int32Array.of(0, 2, 1),
        2,
      ),
    /imageOfRow\[1\] is outside/,
  );
  native.releaseWorkspace(ws);
});

test('row order does not matter: the recurrence skips finished rows (live prefix) with sorted or unsorted lengths', () => {
  // The fixture's rows have 4, 3 and 2 targets (longest first: steps 2 and 3 run on fewer rows). Reversed, no row
  // can be skipped before the last step; both orders must give the same loss and gradients.
  const ws = native.createWorkspace();
  const params = randomParams(7);
  const rng = new Rng(3);
  const per = config.locations * config.channels;
  const features = Float64Array.from({ length: B * per }, () => rng.normal());
  const dims = stepDims(config, B, T);
  const order = [2, 1, 0];
  const reversedTokens = Int32Array.from(
    order.flatMap((b) => Array.from(tokens.subarray(b * (T + 1), (b + 1) * (T + 1)))),
  );
  const reversedFeatures = Float64Array.from(
    order.flatMap((b) => Array.from(features.subarray(b * per, (b + 1) * per))),
  );
  for (const [resetState, meanInit] of [
    [false, false],
    [true, true],
  ]) {
    const g1 = params.map((p) => new Float64Array(p.length)),
      g2 = params.map((p) => new Float64Array(p.length));
    const a = native.trainStep(ws, params, g1, dims, features, tokens, 0, 0.7, 0, resetState, meanInit);
    const b = native.trainStep(ws, params, g2, dims, reversedFeatures, reversedTokens, 0, 0.7, 0, resetState, meanInit);
    assert.ok(Math.abs(a.loss - b.loss) < 1e-12, `loss ${a.loss} vs ${b.loss}`);
    g1.forEach((g, i) => g.forEach((x, k) => assert.ok(Math.abs(x - g2[i][k]) < 1e-12, `${PARAMETER_ORDER[i]}[${k}]`)));
  }
  native.releaseWorkspace(ws);
});
