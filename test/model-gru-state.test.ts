/**
 * The two GRU state modes (ModelConfig.gruState): 'carry' (a real recurrence, h_t = GRU(x_t, h_{t-1})) and
 * 'reset' (the TF tutorial's `self.gru(x)` with no initial state, h_t = GRU(x_t, 0), h_{t-1} only the
 * attention query). Checks that they compute different things, that reset mode never reads the recurrent
 * kernel, and that decoding (encode + step) reproduces the training forward step by step in both modes:
 * every step's full softmax (recovered from fc2.bias gradients of growing prefixes) and its attention
 * (through the doubly stochastic penalty of growing prefixes), with both initial states (initState zeros
 * and the paper's mean: decoding must start from the same H[0] as training).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createModel, type GruState, type TrainBatch } from '../src/model/index.js';
import type { InitState } from '../src/model/types.js';
import { loadBinding } from '../src/model/binding.js';
import { PARAMETER_ORDER } from '../src/model/params.js';
import { NativeCaptionModel } from '../src/model/native-model.js';
import { Rng } from '../src/util/rng.js';
import { UserError } from '../src/util/errors.js';
import { modelConfig, SMALL_SIZES } from './helpers/model-fixture.js';

const config = modelConfig(SMALL_SIZES);
const B = 3,
  T = 6;
// <start>=1 ... <end>=2, 0-padded: 6, 4 and 2 real targets
const tokens = Int32Array.from([1, 4, 9, 3, 7, 5, 2, 1, 5, 3, 6, 2, 0, 0, 1, 10, 2, 0, 0, 0, 0]);

function batch(seed: number): TrainBatch {
  const rng = new Rng(seed);
  const features = Float32Array.from({ length: B * config.locations * config.channels }, () => rng.next() * 2 - 0.5);
  return { size: B, steps: T, features, tokens };
}

/** Same weights in both modes; non-zero recurrent bias so reset mode's h = (1 - z) * n uses it. */
function modelPair(seed: number) {
  const carry = createModel({ ...config, gruState: 'carry' }, { seed });
  const reset = createModel({ ...config, gruState: 'reset' }, { seed });
  const rng = new Rng(seed + 100);
  for (const [name, t] of carry.parameters()) {
    if (name.endsWith('bias')) for (let i = 0; i < t.data.length; i++) t.data[i] = rng.normal() * 0.3;
    reset.parameters().get(name)!.data.set(t.data);
  }
  return { carry, reset };
}

test('gruState is validated; absent means carry', () => {
  assert.throws(
    () => createModel({ ...config, gruState: 'zero' as GruState }),
    (e: Error) => e instanceof UserError && /gruState/.test(e.message),
  );
  const b = batch(1);
  const { carry } = modelPair(4);
  const absent = createModel(config, { seed: 4 });
  for (const [name, t] of carry.parameters()) absent.parameters().get(name)!.data.set(t.data);
  assert.equal(absent.evalLoss(b).loss, carry.evalLoss(b).loss);
  absent.dispose();
  carry.dispose();
});

test('reset mode computes a different forward than carry, never reads Wr, and gives Wr a zero gradient', () => {
  const b = batch(2);
  const { carry, reset } = modelPair(5);
  const lossCarry = carry.evalLoss(b).loss,
    lossReset = reset.evalLoss(b).loss;
  assert.ok(Math.abs(lossCarry - lossReset) > 1e-4, `carry ${lossCarry} vs reset ${lossReset}`);
  // Scrambling the recurrent kernel changes carry mode's loss but not reset mode's.
  const rng = new Rng(9);
  for (const m of [carry, reset]) {
    const rk = m.parameters().get('gru.recurrent_kernel')!.data;
    for (let i = 0; i < rk.length; i++) rk[i] = rng.normal();
  }
  assert.notEqual(carry.evalLoss(b).loss, lossCarry);
  assert.equal(reset.evalLoss(b).loss, lossReset);
  // Gradients through the model API (trainStep also applies Adam, which leaves Wr unchanged at zero gradient).
  const before = Float32Array.from(reset.parameters().get('gru.recurrent_kernel')!.data);
  reset.trainStep(b, { learningRate: 1e-2 });
  const grads = (reset as NativeCaptionModel).gradients();
  assert.ok(
    grads.get('gru.recurrent_kernel')!.data.every((x) => x === 0),
    'Wr gradient is exactly 0',
  );
  assert.ok(
    grads
      .get('gru.bias')!
      .data.subarray(3 * config.units)
      .some((x) => x !== 0),
    'recurrent bias still learns',
  );
  assert.ok(
    grads.get('attention.W2.kernel')!.data.some((x) => x !== 0),
    'the attention query still learns',
  );
  assert.deepEqual(reset.parameters().get('gru.recurrent_kernel')!.data, before);
  carry.dispose();
  reset.dispose();
});

for (const [mode, init] of [
  ['carry', 'zeros'],
  ['reset', 'zeros'],
  ['carry', 'mean'],
  ['reset', 'mean'],
] as const) {
  test(`decode steps reproduce the training forward step by step (gruState ${mode}, initState ${init}): softmax and attention`, () => {
    const native = loadBinding();
    const lambda = 0.5;
    const { carry, reset } = modelPair(6);
    const model = createModel({ ...config, gruState: mode, initState: init as InitState });
    for (const [name, t] of carry.parameters()) model.parameters().get(name)!.data.set(t.data);
    const b = batch(3);
    const { locations: L, channels: C, vocabSize: V } = config;
    const params = PARAMETER_ORDER.map((n) => model.parameters().get(n)!.data);
    const grads = params.map((p) => new Float32Array(p.length));
    const fc2Bias = PARAMETER_ORDER.indexOf('fc2.bias');
    const ws = native.createWorkspace();
    let checked = 0;
    for (let row = 0; row < B; row++) {
      const features = b.features.slice(row * L * C, (row + 1) * L * C);
      const rowTokens = tokens.subarray(row * (T + 1), (row + 1) * (T + 1));
      let state = model.encode(features, 1);
      const attentionSum = new Float64Array(L);
      let previous = new Float64Array(V); // sum over earlier steps of (softmax - onehot)
      for (let t = 0; t < T && rowTokens[t + 1] !== 0; t++) {
        const out = model.step(state, rowTokens.subarray(t, t + 1));
        state = { ...state, hidden: out.hidden };
        // Training forward on the prefix of t+1 steps: tokens * d loss / d fc2.bias = sum_s (softmax_s - onehot_s).
        const dims = Int32Array.of(1, t + 1, L, C, config.embedDim, config.units, config.attentionUnits, V);
        const r = native.trainStep(
          ws,
          params,
          grads,
          dims,
          features,
          rowTokens.slice(0, t + 2),
          0,
          lambda,
          0,
          mode === 'reset',
          init === 'mean',
        );
        const cumulative = Float64Array.from(grads[fc2Bias], (g) => g * r.tokens);
        const mx = Math.max(...out.logits);
        const sum = out.logits.reduce((a, x) => a + Math.exp(x - mx), 0);
        for (let k = 0; k < V; k++) {
          const trained = cumulative[k] - previous[k] + (k === rowTokens[t + 1] ? 1 : 0);
          const decoded = Math.exp(out.logits[k] - mx) / sum;
          assert.ok(
            Math.abs(trained - decoded) < 1e-5,
            `row ${row} step ${t} word ${k}: softmax ${trained} (training) vs ${decoded} (decoding)`,
          );
        }
        previous = cumulative;
        // Penalty of the prefix: lambda * sum_l (1 - sum_{s<=t} alpha_s,l)^2 with the decoded attention.
        let penalty = 0;
        for (let l = 0; l < L; l++) {
          attentionSum[l] += out.attention[l];
          penalty += (1 - attentionSum[l]) ** 2;
        }
        assert.ok(
          Math.abs(r.attentionPenalty - lambda * penalty) < 1e-5,
          `row ${row} step ${t}: penalty ${r.attentionPenalty} vs ${lambda * penalty}`,
        );
        checked++;
      }
    }
    assert.equal(checked, 12);
    native.releaseWorkspace(ws);
    carry.dispose();
    reset.dispose();
    model.dispose();
  });
}

test('decoding a reset-mode model differs from carry mode after the first step', () => {
  const { carry, reset } = modelPair(7);
  const features = batch(4).features.subarray(0, config.locations * config.channels);
  let sc = carry.encode(features, 1),
    sr = reset.encode(features, 1);
  const first = [carry.step(sc, Int32Array.of(1)), reset.step(sr, Int32Array.of(1))];
  // Step 0: both start from h = 0, so they agree exactly.
  assert.deepEqual(first[0].logits, first[1].logits);
  sc = { ...sc, hidden: first[0].hidden };
  sr = { ...sr, hidden: first[1].hidden };
  const second = [carry.step(sc, Int32Array.of(4)), reset.step(sr, Int32Array.of(4))];
  assert.notDeepEqual(second[0].logits, second[1].logits);
  carry.dispose();
  reset.dispose();
});
