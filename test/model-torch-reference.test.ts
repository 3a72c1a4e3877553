/**
 * Replays test/fixtures/model-reference.safetensors (written by scripts/torch_reference.py: PyTorch
 * autograd in float64) through the native float32 core and compares tensor by tensor: the loss of
 * 3 steps, every gradient of the first step and every weight after 3 Adam steps (llm.c's test_gpt2
 * pattern), in both GRU state modes (case2: reset_state, the TF tutorial's GRU) and both initial states
 * (case3: init_state 'mean', the paper's H[0] from the mean annotation vector). Prints the largest
 * difference per tensor. Needs no PyTorch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createModel, PARAMETER_ORDER } from '../src/model/index.js';
import { NativeCaptionModel } from '../src/model/native-model.js';
import { withCurrentNames } from '../src/checkpoint/checkpoint.js';

interface Fixture {
  tensors: Map<string, Float32Array | Int32Array>;
  meta: Record<string, string>;
}

function readSafetensors(path: string): Fixture {
  const buf = readFileSync(path);
  const headerLength = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLength).toString('utf8'));
  const base = 8 + headerLength;
  const tensors = new Map<string, Float32Array | Int32Array>();
  for (const [name, info] of Object.entries<{ dtype: string; data_offsets: [number, number] }>(header)) {
    if (name === '__metadata__') continue;
    const bytes = buf.subarray(base + info.data_offsets[0], base + info.data_offsets[1]);
    const copy = new Uint8Array(bytes).buffer; // aligned copy
    tensors.set(name, info.dtype === 'I32' ? new Int32Array(copy) : new Float32Array(copy));
  }
  return { tensors: withCurrentNames(tensors), meta: header.__metadata__ }; // the fixture predates the projection.* names
}

const fixture = readSafetensors(new URL('./fixtures/model-reference.safetensors', import.meta.url).pathname);
const sizes = JSON.parse(fixture.meta.sizes);
const cases: {
  name: string;
  attention_lambda: number;
  clip_norm: number | null;
  lr: number;
  reset_state?: boolean;
  init_state?: 'zeros' | 'mean';
}[] = JSON.parse(fixture.meta.cases);
const get = (name: string) => {
  const t = fixture.tensors.get(name);
  if (!t) throw new Error(`fixture has no tensor ${name}`);
  return t;
};

/** Largest |a - b| relative to the reference tensor's largest magnitude (floored at 1). */
function compare(label: string, ours: Float32Array, ref: Float32Array, lines: string[]): number {
  assert.equal(ours.length, ref.length, `${label}: length`);
  let diff = 0,
    scale = 0;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs(ours[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  lines.push(`  ${label.padEnd(34)} max |diff| ${diff.toExponential(2)}   max |ref| ${scale.toExponential(2)}`);
  return diff / Math.max(scale, 1);
}

for (const c of cases) {
  const gruState = c.reset_state ? 'reset' : 'carry';
  const initState = c.init_state ?? 'zeros';
  test(`native core matches PyTorch float64: ${c.name} (lambda ${c.attention_lambda}, clipNorm ${c.clip_norm ?? 'off'}, GRU state ${gruState}, initial state ${initState})`, () => {
    const model = createModel({
      locations: sizes.L,
      channels: sizes.C,
      embedDim: sizes.E,
      units: sizes.U,
      attentionUnits: sizes.A,
      vocabSize: sizes.V,
      dropout: 0,
      attentionLambda: c.attention_lambda,
      gruState,
      initState,
    }) as NativeCaptionModel;
    for (const [name, t] of model.parameters()) t.data.set(get(`param.${name}`) as Float32Array);
    const batch = {
      size: sizes.B,
      steps: sizes.T,
      features: get('input.features') as Float32Array,
      tokens: get('input.tokens') as Int32Array,
    };
    const refLosses = get(`${c.name}.losses`);
    const lines: string[] = [];
    let worstGrad = 0,
      worstWeight = 0;
    for (let step = 0; step < 3; step++) {
      const { loss } = model.trainStep(batch, { learningRate: c.lr, clipNorm: c.clip_norm ?? undefined });
      lines.push(`  loss step ${step + 1}: ${loss.toFixed(7)} vs ${refLosses[step].toFixed(7)}`);
      assert.ok(Math.abs(loss - refLosses[step]) < 1e-5, `loss at step ${step + 1}: ${loss} vs ${refLosses[step]}`);
      if (step === 0) {
        for (const [name, g] of model.gradients()) {
          worstGrad = Math.max(
            worstGrad,
            compare(`grad ${name}`, g.data, get(`${c.name}.grad.${name}`) as Float32Array, lines),
          );
        }
      }
    }
    let vBias = 0;
    for (const name of PARAMETER_ORDER) {
      const d = compare(
        `after 3 steps ${name}`,
        model.parameters().get(name)!.data,
        get(`${c.name}.after3.${name}`) as Float32Array,
        lines,
      );
      // attention.V.bias has a zero gradient in exact arithmetic (softmax is shift-invariant); its float32
      // rounding noise (~1e-8) is scaled up by Adam's m / (sqrt(v) + eps), so it gets a looser bound.
      if (name === 'attention.V.bias') vBias = d;
      else worstWeight = Math.max(worstWeight, d);
    }
    console.log(`${c.name} vs PyTorch:\n${lines.join('\n')}`);
    assert.ok(worstGrad < 1e-5, `largest gradient difference ${worstGrad} (relative to max(|ref|, 1))`);
    assert.ok(worstWeight < 1e-5, `largest weight difference after 3 Adam steps ${worstWeight}`);
    assert.ok(vBias < 1e-3, `attention.V.bias after 3 Adam steps differs by ${vBias}`);
    for (const name of ['init_state.kernel', 'init_state.bias']) {
      const g = model.gradients().get(name)!.data;
      if (initState === 'zeros')
        assert.ok(
          g.every((x) => x === 0),
          `initState zeros: ${name} gradient is exactly 0`,
        );
      else
        assert.ok(
          g.some((x) => x !== 0),
          `initState mean: ${name} learns`,
        );
    }
    if (c.reset_state) {
      assert.ok(
        model
          .gradients()
          .get('gru.recurrent_kernel')!
          .data.every((x) => x === 0),
        'reset mode: Wr gradient is exactly 0',
      );
    }
    model.dispose();
  });
}

test('the fixture covers both GRU state modes and both initial states', () => {
  assert.deepEqual(
    cases.map((c) => Boolean(c.reset_state)),
    [false, false, true, false],
  );
  assert.deepEqual(
    cases.map((c) => c.init_state),
    ['zeros', 'zeros', 'zeros', 'mean'],
  );
});
