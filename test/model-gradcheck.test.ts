/**
 * Finite-difference check of every parameter's gradient, in float64 through the addon's test-only
 * double-precision path (the same templated kernels as float32 training). Central differences with
 * h = 1e-5 on small shapes; prints the largest relative error per parameter. Both GRU state modes:
 * carry (a real recurrence) and reset (the TF tutorial's GRU, restarted from zeros every step), and both
 * initial states: zeros (the tutorial) and mean (the paper's H[0] = tanh(mean annotation · W + b)).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadBinding, PARAMETER_ORDER } from '../src/model/binding.js';
import { parameterShapes } from '../src/model/params.js';
import { Rng } from '../src/util/rng.js';
import type { ModelConfig } from '../src/model/types.js';

const native = loadBinding();
const config: ModelConfig = {
  locations: 3, channels: 5, embedDim: 4, units: 6, attentionUnits: 5, vocabSize: 7, dropout: 0, attentionLambda: 0,
};
const B = 3, T = 4;
// <start>=1 ... <end>=2, 0-padded: rows have 4, 3 and 2 real targets
const tokens = Int32Array.from([1, 4, 5, 6, 2, 1, 3, 3, 2, 0, 1, 6, 2, 0, 0]);

function randomParams(seed: number): Float64Array[] {
  const rng = new Rng(seed);
  const shapes = parameterShapes(config);
  // Non-zero biases too, so every gradient path is exercised; scale keeps tanh/sigmoid off saturation.
  return PARAMETER_ORDER.map((n) => Float64Array.from({ length: shapes[n].reduce((a, b) => a * b, 1) }, () => rng.normal() * 0.5));
}

function check(label: string, dropout: number, lambda: number, resetState = false, meanInit = false) {
  const ws = native.createWorkspace();
  const params = randomParams(7);
  const grads = params.map((p) => new Float64Array(p.length));
  const rng = new Rng(3);
  const features = Float64Array.from({ length: B * config.locations * config.channels }, () => rng.normal());
  const dims = Int32Array.of(B, T, config.locations, config.channels, config.embedDim, config.units, config.attentionUnits, config.vocabSize);
  const loss = () => native.trainStep(ws, params, null, dims, features, tokens, dropout, lambda, 11, resetState, meanInit).loss;
  // The forward-only pass never applies dropout, so compare against a training pass's loss with grads,
  // then differentiate the training loss by re-running trainStep (it recomputes the same masks).
  const trainLoss = () => native.trainStep(ws, params, grads.map((g) => new Float64Array(g.length)), dims, features, tokens, dropout, lambda, 11, resetState, meanInit).loss;
  const base = native.trainStep(ws, params, grads, dims, features, tokens, dropout, lambda, 11, resetState, meanInit);
  assert.ok(Number.isFinite(base.loss) && base.tokens === 9, `loss ${base.loss}, tokens ${base.tokens}`);
  if (dropout === 0) assert.ok(Math.abs(loss() - base.loss) < 1e-12, 'eval loss equals training loss without dropout');
  const f = dropout > 0 ? trainLoss : loss;
  const h = 1e-5;
  const lines: string[] = [];
  let worst = 0;
  PARAMETER_ORDER.forEach((name, i) => {
    const p = params[i];
    let maxRel = 0, maxAbs = 0;
    for (let k = 0; k < p.length; k++) {
      const keep = p[k];
      p[k] = keep + h; const up = f();
      p[k] = keep - h; const down = f();
      p[k] = keep;
      const numeric = (up - down) / (2 * h);
      const analytic = grads[i][k];
      const abs = Math.abs(numeric - analytic);
      // Relative error, floored at 1e-4 so gradients that are zero in theory (attention.V.bias: softmax
      // is shift-invariant) or tiny compare on the scale of the finite-difference noise (~1e-11).
      const rel = abs / Math.max(Math.abs(numeric) + Math.abs(analytic), 1e-4);
      maxRel = Math.max(maxRel, rel); maxAbs = Math.max(maxAbs, abs);
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
    assert.ok(grads[PARAMETER_ORDER.indexOf(name)].every((x) => x === 0), `${name} gradient is exactly 0 with initState zeros`);
  }
});

test('float64 gradients match finite differences with --init-state mean (the paper\'s initial state)', () => {
  const grads = check('init mean, dropout 0, lambda 0', 0, 0, false, true);
  for (const name of ['init_state.kernel', 'init_state.bias'] as const) {
    assert.ok(grads[PARAMETER_ORDER.indexOf(name)].some((x) => x !== 0), `${name} gradient is not 0 with initState mean`);
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

test('float64 gradients match finite differences with --gru-state reset (the TF tutorial\'s GRU)', () => {
  const grads = check('reset, dropout 0, lambda 0', 0, 0, true);
  // The recurrent kernel is unused in reset mode (the GRU's previous state is zeros): exactly zero gradient,
  // while the recurrent bias (gru.bias row 1) still learns.
  const rk = grads[PARAMETER_ORDER.indexOf('gru.recurrent_kernel')];
  assert.ok(rk.every((x) => x === 0), 'gru.recurrent_kernel gradient is exactly 0');
  const bias = grads[PARAMETER_ORDER.indexOf('gru.bias')], G = 3 * config.units;
  assert.ok(bias.subarray(G).some((x) => x !== 0), 'recurrent bias gradient is not 0');
});

test('float64 gradients match finite differences with --gru-state reset, the attention regulariser and dropout', () => {
  check('reset, dropout 0.3, lambda 0.7', 0.3, 0.7, true);
});
