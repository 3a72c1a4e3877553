/**
 * Two builds of the native addon side by side, for changes to native/ that must not change results or get slower:
 *   1. --check: both compute the same floats, bit for bit: the loss and every gradient of training steps in
 *      float32 and float64 over dropout, the regulariser, both GRU and initial-state modes, per-caption weights,
 *      rows that share images, padded rows, at small and at the TF tutorial's shapes;
 *   2. timing: the training step at the TF tutorial's shapes (batch 64, T 16, 64x2048 features, E 256, U 512,
 *      A 512, V 5001) on each build, alternating builds step by step (the order flips every round), medians of wall
 *      and CPU time (src/util/stats.ts).
 * Usage: node --import tsx checks/native-ab.ts OLD.node NEW.node [--check-only | --time-only] [--rounds 9]
 *          [--threads 2] [--backend cblas|onednn] [--precision fp32|bf16]
 * (--backend applies to NEW, --precision to NEW's timing only: an older build knows neither.)
 * Build OLD from another checkout (`npx node-gyp rebuild` there) and copy its build/Release/sat_native.node aside.
 */
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { NativeBinding } from '../src/model/binding.js';
import { median } from '../src/util/stats.js';

process.env.OMP_WAIT_POLICY ??= 'PASSIVE'; // as loadBinding() sets it
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'check-only': { type: 'boolean' },
    'time-only': { type: 'boolean' },
    rounds: { type: 'string', default: '9' },
    threads: { type: 'string', default: '2' },
    backend: { type: 'string' },
    precision: { type: 'string', default: 'fp32' },
  },
});
if (positionals.length !== 2) {
  console.error(
    'usage: node --import tsx checks/native-ab.ts OLD.node NEW.node [--check-only | --time-only] [--rounds N] [--threads N] [--backend cblas|onednn] [--precision fp32|bf16]',
  );
  process.exit(2);
}
const require = createRequire(import.meta.url);
const builds = positionals.map((file) => ({ file, native: require(resolve(file)) as NativeBinding }));
if (values.backend) builds[1].native.setGemmBackend(values.backend as 'cblas' | 'onednn');
type FloatArrayCtor = Float32ArrayConstructor | Float64ArrayConstructor;

let seed = 12345;
const rnd = () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed / 2 ** 32;
};
const sizesOf = (C: number, E: number, U: number, A: number, V: number) => [
  C * E,
  E,
  E * A,
  A,
  U * A,
  A,
  A,
  1,
  V * E,
  2 * E * 3 * U,
  U * 3 * U,
  2 * 3 * U,
  U * U,
  U,
  U * V,
  V,
  E * U,
  U,
];

const filled = (Ty: FloatArrayCtor, n: number, f: () => number) => {
  const a = new Ty(n);
  for (let i = 0; i < n; i++) a[i] = f();
  return a;
};

function batch(d: number[], Ty: FloatArrayCtor, padded: boolean) {
  const [B, T, L, C, E, U, A, V] = d;
  const params = sizesOf(C, E, U, A, V).map((n) => filled(Ty, n, () => (rnd() * 2 - 1) * 0.1));
  const features = filled(Ty, B * L * C, rnd);
  const tokens = new Int32Array(B * (T + 1));
  for (let b = 0; b < B; b++) {
    const len = padded ? 2 + Math.floor(rnd() * T) : T + 1;
    for (let t = 0; t <= T; t++) tokens[b * (T + 1) + t] = t < len ? 1 + Math.floor(rnd() * (V - 1)) : 0;
  }
  return { params, features, tokens, dims: Int32Array.from(d) };
}

function digest(r: object, grads: ArrayLike<number>[]): string {
  const h = createHash('sha256').update(JSON.stringify(r));
  for (const g of grads)
    h.update(Buffer.from((g as Float32Array).buffer, (g as Float32Array).byteOffset, (g as Float32Array).byteLength));
  return h.digest('hex').slice(0, 16);
}

function check(): boolean {
  // [dropout, lambda, seed, resetState, meanInit, weights?, images sharing rows (0: none)]
  const cases = [
    [0, 0, 0, false, false, false, 0],
    [0.3, 0.7, 11, false, false, false, 0],
    [0.3, 0.7, 11, true, true, false, 0],
    [0.5, 0.1, 3, false, true, true, 0],
    [0.2, 0.5, 5, false, true, true, 3],
    [0, 0.5, 5, true, false, false, 2],
  ] as const;
  let same = true;
  for (const Ty of [Float32Array, Float64Array]) {
    const b = batch([6, 5, 7, 9, 8, 10, 6, 13], Ty, true);
    for (const [dropout, lambda, s, reset, mean, weighted, images] of cases) {
      const out = builds.map(({ native }) => {
        const ws = native.createWorkspace();
        const grads = b.params.map((p) => new Ty(p.length));
        const w = weighted ? new Ty([0.7, -1.3, 0.2, 1, 0.5, 2]) : null;
        const imageOfRow = images ? Int32Array.from({ length: 6 }, (_, i) => i % images) : null;
        const features = images ? b.features.subarray(0, images * 7 * 9) : b.features;
        const r = native.trainStep(
          ws,
          b.params as Float32Array[],
          grads as Float32Array[],
          b.dims,
          features as Float32Array,
          b.tokens,
          dropout,
          lambda,
          s,
          reset,
          mean,
          w as Float32Array | null,
          imageOfRow,
          images || undefined,
        );
        native.releaseWorkspace(ws);
        return digest(r, grads);
      });
      if (out[0] !== out[1]) {
        same = false;
        console.log(`differ: ${Ty.name} ${JSON.stringify(cases.find((c) => c[2] === s && c[3] === reset))}`);
      }
    }
  }
  const big = batch([64, 16, 64, 2048, 256, 512, 512, 5001], Float32Array, true);
  for (const [dropout, lambda, s, reset, mean] of [
    [0.5, 0.1, 9, false, true],
    [0, 0, 0, false, false],
  ] as const) {
    const out = builds.map(({ native }) => {
      const ws = native.createWorkspace();
      const grads = big.params.map((p) => new Float32Array(p.length));
      const r = native.trainStep(
        ws,
        big.params as Float32Array[],
        grads,
        big.dims,
        big.features as Float32Array,
        big.tokens,
        dropout,
        lambda,
        s,
        reset,
        mean,
      );
      native.releaseWorkspace(ws);
      return digest(r, grads);
    });
    if (out[0] !== out[1]) {
      same = false;
      console.log(`differ: tutorial shapes, dropout ${dropout}, lambda ${lambda}`);
    }
  }
  console.log(same ? 'bit-identical: every case, float32 and float64' : 'NOT bit-identical');
  return same;
}

function time(): void {
  const rounds = Number(values.rounds),
    threads = Number(values.threads);
  const b = batch([64, 16, 64, 2048, 256, 512, 512, 5001], Float32Array, false);
  const sides = builds.map(({ file, native }, i) => {
    native.setThreads(threads, threads);
    return {
      file,
      native,
      ws: native.createWorkspace(),
      grads: b.params.map((p) => new Float32Array(p.length)),
      wall: [] as number[],
      cpu: [] as number[],
    };
  });
  const bf16 = values.precision === 'bf16';
  for (let round = 0; round <= rounds; round++) {
    for (const side of round % 2 ? sides : [...sides].reverse()) {
      const t0 = performance.now(),
        c0 = process.cpuUsage();
      const f32 = b.params as Float32Array[],
        features = b.features as Float32Array;
      if (bf16 && side === sides[1])
        side.native.trainStep(
          side.ws,
          f32,
          side.grads,
          b.dims,
          features,
          b.tokens,
          0,
          0,
          0,
          false,
          false,
          null,
          null,
          undefined,
          'bf16',
        );
      else side.native.trainStep(side.ws, f32, side.grads, b.dims, features, b.tokens, 0, 0, 0, false, false);
      const c = process.cpuUsage(c0);
      if (round > 0) {
        side.wall.push((performance.now() - t0) / 1000);
        side.cpu.push((c.user + c.system) / 1e6);
      }
    }
  }
  const [old, neu] = sides;
  for (const [name, s] of [
    ['OLD', old],
    ['NEW', neu],
  ] as const) {
    console.log(
      `${name} ${s.file}: median ${median(s.wall).toFixed(3)} s/step (${(1024 / median(s.wall)).toFixed(0)} tokens/s), ${median(s.cpu).toFixed(3)} CPU-s; ` +
        `steps ${s.wall.map((x) => x.toFixed(3)).join(' ')}`,
    );
  }
  console.log(
    `NEW / OLD: ${(median(old.wall) / median(neu.wall)).toFixed(2)}x wall, ${(median(old.cpu) / median(neu.cpu)).toFixed(2)}x CPU time ` +
      `(${threads} threads, ${rounds} rounds alternating)`,
  );
}

const ok = values['time-only'] ? true : check();
if (!values['check-only']) time();
process.exitCode = ok ? 0 : 1;
