/**
 * The raw addon (loadBinding(), below the TypeScript validation) is memory-safe: out-of-range token ids and
 * image indices, negative sizes, size products that overflow int and size_t, short buffers, the wrong typed-array
 * kinds and missing arguments all throw a JS error naming the bad argument, never crash the process, and a valid
 * call afterwards still gives the same result as before them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadBinding } from '../src/model/binding.js';
import { PARAMETER_ORDER, parameterShapes } from '../src/model/params.js';
import { Rng } from '../src/util/rng.js';
import { testNeeding } from './helpers/capabilities.js';
import { GRADCHECK_SIZES, modelConfig } from './helpers/model-fixture.js';

// The raw binding, called the way a buggy caller could (wrong types, missing arguments).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const native = loadBinding() as any;
const config = modelConfig(GRADCHECK_SIZES);
const B = 3,
  T = 4,
  { locations: L, channels: C, embedDim: E, units: U, attentionUnits: A, vocabSize: V } = config;
const INT_MAX = 2 ** 31 - 1;

const rng = new Rng(9);
const shapes = parameterShapes(config);
const params = PARAMETER_ORDER.map((n) =>
  Float32Array.from({ length: shapes[n].reduce((a, b) => a * b, 1) }, () => rng.normal() * 0.3),
);
const grads = () => params.map((p) => new Float32Array(p.length));
const features = Float32Array.from({ length: B * L * C }, () => rng.next());
const tokens = Int32Array.from([1, 4, 5, 6, 2, 1, 3, 3, 2, 0, 1, 6, 2, 0, 0]);
const dims = (o: Partial<Record<'B' | 'T' | 'L' | 'C' | 'E' | 'U' | 'A' | 'V', number>> = {}) =>
  Int32Array.of(o.B ?? B, o.T ?? T, o.L ?? L, o.C ?? C, o.E ?? E, o.U ?? U, o.A ?? A, o.V ?? V);
const ws = native.createWorkspace();

/** trainStep with every argument valid unless overridden by position. */
function trainStep(override: Record<number, unknown> = {}, length = 11) {
  const args: unknown[] = [ws, params, grads(), dims(), features, tokens, 0.2, 0.5, 3, false, true, null, null, B];
  for (const [i, v] of Object.entries(override)) args[Number(i)] = v;
  return native.trainStep(...args.slice(0, Math.max(length, ...Object.keys(override).map((k) => Number(k) + 1))));
}

const reference = trainStep();

test('token ids outside the vocabulary are refused (training and decoding)', () => {
  for (const bad of [-1, V, 2 ** 31 - 1, -(2 ** 31)]) {
    const t = tokens.slice();
    t[7] = bad;
    assert.throws(
      () => trainStep({ 5: t }),
      new RegExp(`tokens\\[7\\] = ${bad} is outside the vocabulary \\[0, ${V}\\)`),
    );
  }
  const N = 2,
    d = dims({ B: N, T: 0 });
  const enc = new Float32Array(N * L * E),
    keys = new Float32Array(N * L * A),
    hidden = new Float32Array(N * U);
  native.encode(params, d, features.subarray(0, N * L * C), enc, keys, hidden, false);
  const out = () => [new Float32Array(N * V), new Float32Array(N * L), new Float32Array(N * U)];
  assert.throws(
    () => native.decodeStep(ws, params, d, enc, keys, hidden, Int32Array.of(1, V), ...out(), false),
    /tokens\[1\] = 7 is outside the vocabulary/,
  );
  assert.throws(
    () => native.decodeStep(ws, params, d, enc, keys, hidden, Int32Array.of(-5, 1), ...out(), false),
    /tokens\[0\] = -5 is outside the vocabulary/,
  );
});

test('decodeStep with rows that share images: each row must name one of numImages, which encoded must hold', () => {
  const N = 3,
    d = dims({ B: N, T: 0 });
  const images = 2;
  const enc = new Float32Array(images * L * E),
    keys = new Float32Array(images * L * A),
    hidden = new Float32Array(N * U);
  native.encode(params, dims({ B: images, T: 0 }), features.subarray(0, images * L * C), enc, keys, hidden, false);
  const out = () => [new Float32Array(N * V), new Float32Array(N * L), new Float32Array(N * U)] as const;
  const step = (rows: Int32Array, numImages: number, e = enc) =>
    native.decodeStep(ws, params, d, e, keys, hidden, Int32Array.of(1, 1, 1), ...out(), false, rows, numImages);
  step(Int32Array.of(1, 0, 1), images);
  assert.throws(() => step(Int32Array.of(1, 2, 1), images), /imageOfRow\[1\] is outside \[0, numImages = 2\): 2/);
  assert.throws(() => step(Int32Array.of(-1, 0, 1), images), /imageOfRow\[0\] is outside/);
  assert.throws(() => step(Int32Array.of(0, 0), images), /imageOfRow has 2 elements, needs 3/);
  assert.throws(() => step(Int32Array.of(0, 0, 0), 0), /numImages/);
  assert.throws(() => step(Int32Array.of(0, 0, 2), 3), /encoded has \d+ elements, needs/);
});

test('negative, zero and huge sizes are refused before any product of them overflows', () => {
  assert.throws(() => trainStep({ 3: dims({ B: -1 }) }), /dims: B = -1 must be positive/);
  assert.throws(() => trainStep({ 3: dims({ T: -1 }) }), /dims: T = -1 must be non-negative/);
  assert.throws(() => trainStep({ 3: dims({ L: 0 }) }), /dims: L = 0 must be positive/);
  assert.throws(() => trainStep({ 3: dims({ V: -(2 ** 31) }) }), /dims: V = -2147483648 must be positive/);
  // B*L*E = 2^45 overflows int; L*C*E with every size 2^31-1 overflows size_t (2^93) as well.
  assert.throws(
    () => trainStep({ 3: dims({ B: 2 ** 15, L: 2 ** 15, E: 2 ** 15 }) }),
    /would hold more than 2\^31-1 elements/,
  );
  assert.throws(
    () => trainStep({ 3: dims({ L: INT_MAX, C: INT_MAX, E: INT_MAX }) }),
    /features \[N,L,C\] would hold more than 2\^31-1/,
  );
  assert.throws(() => trainStep({ 3: dims({ U: INT_MAX }) }), /would hold more than 2\^31-1 elements/); // 4U alone overflows int
  assert.throws(() => trainStep({ 3: dims({ T: INT_MAX }) }), /tokens \[B,T\+1\] would hold more/); // T+1 overflows int
  assert.throws(
    () => native.encode(params, dims({ B: 2 ** 20, T: 0, V: 2 ** 20 }), features, features, features, features, false),
    /would hold more than 2\^31-1 elements/,
  );
  // T = 0 (no decoder step, no target): no cross-entropy, nothing read or written out of bounds; the attention
  // penalty (lambda 0.5) sees no attention at all: lambda/B * B*L*(1 - 0)^2 = lambda * L
  const empty = trainStep({ 3: dims({ T: 0 }), 5: Int32Array.of(1, 1, 1) });
  assert.deepEqual(empty, { loss: 0.5 * L, crossEntropySum: 0, attentionPenalty: 0.5 * L, tokens: 0 });
  // sizes that fit but do not match the buffers: the buffers are checked against them
  assert.throws(
    () => trainStep({ 3: dims({ B: 1000 }) }),
    /params\[\d+\] has \d+ elements, needs|features has 45 elements, needs 15000/,
  );
  assert.throws(() => trainStep({ 3: dims({ C: 5000 }) }), /params\[0\] has 20 elements, needs 20000/);
  for (const [m, n, k] of [
    [-1, 4, 4],
    [4, 0, 4],
    [65536, 65536, 1],
    [INT_MAX, INT_MAX, INT_MAX],
    [1.5, 2, 2],
  ]) {
    assert.throws(
      () => native.sgemm(m, n, k, new Float32Array(16), new Float32Array(16), new Float32Array(16)),
      /must be an integer in|has 16 elements, needs|must each be at most 2\^31-1/,
    );
  }
});

test('short buffers are refused with their names and sizes', () => {
  const short = params.map((p, i) => (i === 9 ? p.subarray(1) : p));
  assert.throws(
    () => trainStep({ 1: short }),
    new RegExp(`params\\[9\\] has ${params[9].length - 1} elements, needs ${params[9].length}`),
  );
  assert.throws(() => trainStep({ 2: grads().map((g, i) => (i === 14 ? g.subarray(3) : g)) }), /grads\[14\] has/);
  assert.throws(() => trainStep({ 4: features.subarray(1) }), /features has 44 elements, needs 45/);
  assert.throws(() => trainStep({ 5: tokens.subarray(2) }), /tokens has 13 elements, needs 15/);
  assert.throws(() => trainStep({ 11: new Float32Array(2) }), /weights has 2 elements, needs 3/);
  assert.throws(() => trainStep({ 1: params.slice(0, 17) }), /params must be an array of 18 typed arrays/);
  assert.throws(
    () => native.adamUpdate(params[0], params[1], params[0], params[0], 1e-3, 0.9, 0.999, 1e-7, 1, 1),
    /grads has 4 elements, needs 20/,
  );
  assert.throws(
    () =>
      native.encode(
        params,
        dims({ T: 0 }),
        features,
        new Float32Array(3),
        new Float32Array(B * L * A),
        new Float32Array(B * U),
        false,
      ),
    /encoded has 3 elements, needs 36/,
  );
});

test('the wrong typed-array kinds and non-array arguments are refused', () => {
  assert.throws(() => trainStep({ 4: Float64Array.from(features) }), /features must be a Float32Array/);
  assert.throws(() => trainStep({ 5: Float32Array.from(tokens) }), /tokens must be a Int32Array/);
  assert.throws(() => trainStep({ 5: Uint32Array.from(tokens) }), /tokens must be a Int32Array/);
  assert.throws(() => trainStep({ 3: [3, 4, 3, 5, 4, 6, 5, 7] }), /dims must be a Int32Array/);
  assert.throws(
    () => trainStep({ 1: params.map((p, i) => (i === 4 ? Float64Array.from(p) : p)) }),
    /params\[4\] must be a Float32Array/,
  );
  assert.throws(
    () => trainStep({ 1: params.map((p, i) => (i === 2 ? Array.from(p) : p)) }),
    /params\[2\] must be a Float32Array/,
  );
  assert.throws(() => trainStep({ 0: {} }), /workspace must come from createWorkspace\(\)/);
  assert.throws(() => trainStep({ 0: null }), /workspace must come from createWorkspace\(\)/);
  assert.throws(() => trainStep({ 6: '0.2' }), /dropout must be a number/);
  assert.throws(() => trainStep({ 6: 1 }), /dropout must be in \[0, 1\)/);
  assert.throws(() => trainStep({ 8: -1 }), /dropoutSeed must be an integer in/);
  assert.throws(() => trainStep({ 9: 'yes' }), /resetState must be a boolean/);
  assert.throws(
    () =>
      native.adamUpdate(Float64Array.from(params[0]), params[0], params[0], params[0], 1e-3, 0.9, 0.999, 1e-7, 1, 1),
    /params must be a Float32Array/,
  );
  assert.throws(
    () => native.adamUpdate(params[0], params[0], params[0], params[0], 1e-3, 0.9, 0.999, 1e-7, 0, 1),
    /step must be an integer in \[1,/,
  );
  assert.throws(() => native.sumSquares([1, 2]), /x must be a Float32Array/);
  assert.throws(() => native.setThreads(0, 2), /blas threads must be an integer in \[1, 4096\]/);
});

test('missing arguments are refused by every entry point', () => {
  assert.throws(() => native.trainStep(), /trainStep\(.*\): expected at least 11 arguments, got 0/);
  assert.throws(() => native.trainStep(ws, params, null, dims()), /expected at least 11 arguments, got 4/);
  assert.throws(() => native.encode(params), /encode\(.*\): expected at least 7 arguments, got 1/);
  assert.throws(() => native.decodeStep(ws), /decodeStep\(.*\): expected at least 11 arguments, got 1/);
  assert.throws(() => native.adamUpdate(), /adamUpdate\(.*\): expected at least 10 arguments/);
  assert.throws(() => native.sumSquares(), /sumSquares\(x\): expected at least 1 arguments/);
  assert.throws(() => native.sgemm(4, 4), /sgemm\(.*\): expected at least 6 arguments/);
  assert.throws(() => native.setThreads(), /setThreads\(.*\): expected at least 2 arguments/);
  assert.throws(() => native.releaseWorkspace(), /releaseWorkspace\(ws\): expected at least 1 arguments/);
  // Present but undefined counts as given: each is then refused by its own check.
  assert.throws(() => trainStep({ 10: undefined }), /meanInit must be a boolean/);
  assert.throws(() => trainStep({ 4: undefined }), /features must be a Float32Array/);
});

test('image indices of rows that share images are checked against the images given', () => {
  const imageFeatures = features.subarray(0, 2 * L * C);
  assert.throws(
    () => trainStep({ 4: imageFeatures, 12: Int32Array.of(0, 2, 1), 13: 2 }),
    /imageOfRow\[1\] is outside \[0, numImages = 2\): 2/,
  );
  assert.throws(
    () => trainStep({ 4: imageFeatures, 12: Int32Array.of(0, -1, 1), 13: 2 }),
    /imageOfRow\[1\] is outside/,
  );
  assert.throws(() => trainStep({ 4: imageFeatures, 12: Int32Array.of(0, 1, 1) }), /numImages must be a number/);
  assert.throws(
    () => trainStep({ 4: imageFeatures, 12: Int32Array.of(0, 0, 0), 13: 0 }),
    /numImages must be an integer in \[1,/,
  );
  assert.throws(
    () => trainStep({ 4: imageFeatures, 12: Int32Array.of(0, 1, 1), 13: 3 }),
    /features has 30 elements, needs 45/,
  );
  assert.throws(
    () => trainStep({ 4: imageFeatures, 12: Int32Array.of(0, 1), 13: 2 }),
    /imageOfRow has 2 elements, needs 3/,
  );
  const ok = trainStep({ 4: imageFeatures, 12: Int32Array.of(1, 0, 1), 13: 2 });
  assert.ok(Number.isFinite(ok.loss));
});

/** A copy of `arrays` whose element `at` is a getter that runs `sideEffect` first (user JavaScript inside the call). */
function withGetter<A>(arrays: A[], at: number, sideEffect: () => void): A[] {
  const out = [...arrays];
  Object.defineProperty(out, at, {
    get() {
      sideEffect();
      return arrays[at];
    },
    enumerable: true,
  });
  return out;
}
const detach = (a: Float32Array) => {
  structuredClone(a.buffer, { transfer: [a.buffer] });
};

test("an element getter that detaches or shrinks another argument's buffer is refused, never read", () => {
  // Every JS value is fetched before any data pointer is taken: whatever the getter did shows up as a short buffer.
  const ps = params.map((p) => p.slice());
  assert.throws(
    () => trainStep({ 1: withGetter(ps, 5, () => detach(ps[2])) }),
    new RegExp(`params\\[2\\] has 0 elements, needs ${params[2].length}`),
  );
  // A resizable ArrayBuffer (ES2024; Node 20 has it, this TypeScript lib does not declare it yet).
  type Resizable = ArrayBuffer & { resize(bytes: number): void };
  const resizable = new (ArrayBuffer as unknown as new (bytes: number, o: { maxByteLength: number }) => Resizable)(
    params[3].byteLength,
    { maxByteLength: params[3].byteLength },
  );
  const tracking = new Float32Array(resizable);
  tracking.set(params[3]);
  const ps2 = params.map((p, i) => (i === 3 ? tracking : p.slice()));
  assert.throws(
    () => trainStep({ 1: withGetter(ps2, 17, () => resizable.resize(4)) }),
    new RegExp(`params\\[3\\] has 1 elements, needs ${params[3].length}`),
  );
  // a getter in grads detaching params, the features or an output buffer of decoding
  const ps3 = params.map((p) => p.slice());
  assert.throws(
    () => trainStep({ 1: ps3, 2: withGetter(grads(), 9, () => detach(ps3[0])) }),
    /params\[0\] has 0 elements/,
  );
  const f = features.slice();
  assert.throws(
    () => trainStep({ 2: withGetter(grads(), 0, () => detach(f)), 4: f }),
    /features has 0 elements, needs 45/,
  );
  const N = 2,
    d = dims({ B: N, T: 0 });
  const enc = new Float32Array(N * L * E),
    keys = new Float32Array(N * L * A),
    hidden = new Float32Array(N * U);
  assert.throws(
    () =>
      native.encode(
        withGetter(params, 1, () => detach(enc)),
        d,
        features,
        enc,
        keys,
        hidden,
        false,
      ),
    /encoded has 0 elements/,
  );
  const logits = new Float32Array(N * V),
    encoded = new Float32Array(N * L * E);
  native.encode(params, d, features, encoded, keys, hidden, false);
  assert.throws(
    () =>
      native.decodeStep(
        ws,
        withGetter(params, 11, () => detach(logits)),
        d,
        encoded,
        keys,
        hidden,
        Int32Array.of(1, 2),
        logits,
        new Float32Array(N * L),
        new Float32Array(N * U),
        false,
      ),
    /logits has 0 elements/,
  );
  // A Proxy is not an array to the addon; a getter that throws surfaces as the call's error.
  assert.throws(() => trainStep({ 1: new Proxy(params, {}) }), /params must be an array of 18 typed arrays/);
  assert.throws(
    () =>
      trainStep({
        1: withGetter(params, 4, () => {
          throw new Error('getter says no');
        }),
      }),
    /getter says no/,
  );
  // Each element is read once: params[0] picks float32 or float64 and is then used as read.
  let reads = 0;
  assert.deepEqual(
    trainStep({
      1: withGetter(params, 0, () => {
        reads++;
      }),
    }),
    reference,
  );
  assert.equal(reads, 1);
});

testNeeding(
  'onednn',
  native.gemmInfo().onednn ? null : 'this build has no oneDNN',
  'a oneDNN error becomes a JS error naming the primitive and its shapes',
  () => {
    assert.throws(
      () => native.throwForTest('onednn'),
      /native core error: oneDNN matmul f32 C\[-3,4\] = A\[-3,5\] \(ld 5\) x B\[5,4\] \(ld 4\), ldc 4, alpha 1\.0+, beta 0\.0+: \S/,
    );
  },
);

test('C++ exceptions (allocation failures) become JS errors, and the addon still works afterwards', () => {
  assert.throws(
    () => native.throwForTest('bad_alloc'),
    (e: Error) => e instanceof RangeError && /out of memory/.test(e.message),
  );
  assert.throws(() => native.throwForTest('length_error'), /out of memory: a native buffer would be too large/);
  assert.throws(() => native.throwForTest('runtime_error'), /native core error: runtime_error for a test/);
  assert.deepEqual(trainStep(), reference, 'a valid step after all the refused calls gives the same result');
  native.releaseWorkspace(ws);
  assert.deepEqual(trainStep(), reference, 'and after releasing the workspace (it grows again)');
});
