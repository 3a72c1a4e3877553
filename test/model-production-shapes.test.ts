/**
 * One training step at the tutorial's production shapes (batch 64, 64 x 2048 MobileNetV2-sized features, E 256,
 * U 512, A 512, V 5001; T 5 to keep it short), with the default recipe's dropout, attention regulariser and
 * gradient clipping (at 1, so that it scales this step), on 1 and on 2 worker and BLAS threads. At these sizes every parallel_for of the step runs
 * threaded (native/parallel.h: work >= 2e5; the smallest, over the 64 rows, does 64 x U x ...), Adam's arena of
 * 5.8M floats spans 89 chunks of 2^16 and the bf16 mirrors many conversion chunks of 2^15.
 *
 * The promise (native/parallel.h, docs/design.md "Thread counts"): every parallel iteration writes its own rows and
 * reductions run afterwards in a fixed order, and oneDNN's matmuls give the same sums on any number of threads, so
 * the loss, every gradient, the Adam moments and the updated weights are bit-for-bit the same on 1 and 2 threads,
 * in fp32 and in bf16. OpenBLAS does not promise that (with 2 threads it splits some weight-gradient sums: 90% of
 * the projection's gradients differ in the last bits), so on the CBLAS backend (SAT_GEMM_BACKEND=cblas) only the
 * worker threads change. Adam is also held to a float64 reference of Keras' update computed here (within float32's roundings: 2 ulps of
 * the larger of the weight and its update, plus 2^-20 of the update): an element a chunk boundary skipped would be off by the
 * learning rate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16Unavailable } from '../src/model/index.js';
import { NativeCaptionModel } from '../src/model/native-model.js';
import { loadBinding, type Precision } from '../src/model/binding.js';
import { PARAMETER_ORDER } from '../src/model/params.js';
import { Rng } from '../src/util/rng.js';
import { testNeeding } from './helpers/capabilities.js';
import { modelConfig } from './helpers/model-fixture.js';

const native = loadBinding();
const [B, T, L, C, E, U, A, V] = [64, 5, 64, 2048, 256, 512, 512, 5001];
const config = modelConfig([L, C, E, U, A, V], { dropout: 0.5, attentionLambda: 0.1 });
const optimizer = { learningRate: 1e-3, clipNorm: 1 }; // the recipe clips at 5; 1 makes this step's gradient (norm 1.17) clipped
const ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };

const rng = new Rng(17);
const features = new Float32Array(B * L * C);
for (let i = 0; i < features.length; i++) features[i] = rng.next() * 6 * (rng.next() < 0.4 ? 1 : 0); // ReLU6-like
const tokens = new Int32Array(B * (T + 1));
for (let b = 0; b < B; b++) {
  const len = 2 + rng.int(T);
  for (let t = 0; t <= T; t++) tokens[b * (T + 1) + t] = t < len ? 1 + rng.int(V - 1) : 0;
}
const batch = { size: B, steps: T, features, tokens };

interface Outcome {
  loss: number;
  initial: Float32Array[];
  grads: Float32Array[];
  params: Float32Array[];
  m: Float32Array[];
  v: Float32Array[];
}

/**
 * One optimizer step of a fresh model (seed 3) on `threads` worker threads, and as many BLAS threads on oneDNN (which
 * uses none); on the CBLAS backend OpenBLAS keeps 1 thread, since it may split a product's sum over its threads.
 */
function stepOn(threads: number, precision: Precision): Outcome {
  const before = native.threads();
  native.setThreads(native.gemmInfo().backend === 'cblas' ? 1 : threads, threads);
  const model = new NativeCaptionModel(config, 3, precision);
  try {
    const initial = [...model.parameters().values()].map((t) => t.data.slice());
    const { loss } = model.trainStep(batch, optimizer, 12345);
    const copy = (m: Map<string, { data: Float32Array }>) => [...m.values()].map((t) => t.data.slice());
    const opt = model.optimizerState();
    return {
      loss,
      initial,
      grads: copy(model.gradients()),
      params: copy(model.parameters()),
      m: copy(opt.m),
      v: copy(opt.v),
    };
  } finally {
    model.dispose();
    native.setThreads(before.blas, before.workers);
  }
}

/** The parameters whose arrays differ anywhere, with how many elements differ. */
function differences(a: Float32Array[], b: Float32Array[]): string[] {
  return a.flatMap((x, i) => {
    let n = 0;
    for (let k = 0; k < x.length; k++) if (!Object.is(x[k], b[i][k])) n++;
    return n ? [`${PARAMETER_ORDER[i]} (${n} of ${x.length})`] : [];
  });
}

function assertSameOnOneAndTwoThreads(one: Outcome, two: Outcome) {
  assert.ok(Number.isFinite(one.loss) && one.loss > 5, `loss ${one.loss} (about ln 5001 at initialisation)`);
  assert.equal(two.loss, one.loss, 'loss');
  for (const key of ['grads', 'm', 'v', 'params'] as const) assert.deepEqual(differences(one[key], two[key]), [], key);
}

test('fp32 at production shapes: loss, gradients, Adam moments and weights are bit-equal on 1 and 2 threads', () => {
  const one = stepOn(1, 'fp32'),
    two = stepOn(2, 'fp32');
  assertSameOnOneAndTwoThreads(one, two);

  // Adam against Keras' update in float64, from the initial weights and the (unclipped) gradients.
  let squares = 0,
    nonzero = 0,
    total = 0;
  for (const g of one.grads)
    for (const x of g) {
      squares += x * x;
      if (x !== 0) nonzero++;
      total++;
    }
  const norm = Math.sqrt(squares);
  assert.ok(norm > optimizer.clipNorm, `the gradient norm ${norm} is clipped to ${optimizer.clipNorm}`);
  // all but the embedding rows of the 4700 words absent from this batch (1.2M of 6.7M)
  assert.ok(nonzero > 0.75 * total, `${nonzero} of ${total} gradients are non-zero`);
  const scale = optimizer.clipNorm / norm,
    { beta1, beta2 } = ADAM;
  const alpha = (optimizer.learningRate * Math.sqrt(1 - beta2)) / (1 - beta1);
  // The moments' factors as Keras (and native/adam.cc) form them: 1 - beta with beta a float32 (1 - 0.999f is 1.3e-5 off 0.001).
  const [b1, b2, epsilon] = [beta1, beta2, ADAM.epsilon].map(Math.fround);
  let wrong = 0,
    first = '';
  one.grads.forEach((g, i) => {
    for (let k = 0; k < g.length; k++) {
      const gi = g[k] * scale,
        m = (1 - b1) * gi,
        v = (1 - b2) * gi * gi;
      const update = (alpha * m) / (Math.sqrt(v) + epsilon),
        p = one.initial[i][k] - update;
      // float32 rounds the subtraction (an ulp of the larger operand) and the update's ~8 operations (2^-24 each)
      const ulp = 2 ** (Math.floor(Math.log2(Math.max(Math.abs(one.initial[i][k]), Math.abs(update), 2 ** -126))) - 23);
      const weightOff = Math.abs(one.params[i][k] - p) > 2 * ulp + 2 ** -20 * Math.abs(update);
      const momentsOff = Math.abs(one.m[i][k] - m) > 1e-6 * Math.abs(m) || Math.abs(one.v[i][k] - v) > 1e-6 * v;
      if (weightOff || momentsOff) {
        wrong++;
        first ||= `${PARAMETER_ORDER[i]}[${k}]: weight ${one.params[i][k]} vs ${p}, m ${one.m[i][k]} vs ${m}, v ${one.v[i][k]} vs ${v}`;
      }
    }
  });
  assert.equal(
    wrong,
    0,
    `Adam differs from the reference beyond float32's rounding at ${wrong} elements, first ${first}`,
  );
});

const unavailable = bf16Unavailable();
testNeeding('bf16', unavailable, 'bf16 at production shapes: the same bit-equality on 1 and 2 threads', () => {
  assertSameOnOneAndTwoThreads(stepOn(1, 'bf16'), stepOn(2, 'bf16'));
});
