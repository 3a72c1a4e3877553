/**
 * bf16 training precision (src/model/precision.ts, native/bf16.h): the bf16 step's loss and gradients agree with
 * the fp32 step's within bounds derived from bf16's precision, a short training on synthetic shapes reaches the
 * same quality in both, resume is exact within bf16, decoding stays fp32, and bf16 is refused with the reason where
 * it cannot run; checkpoints record the precision used and asked, and a resumed run keeps it. The bf16 tests are
 * skipped (with the reason) on CPUs without AVX512-BF16 or AMX, or builds without oneDNN, unless bf16 is required
 * (test/helpers/capabilities.ts): then they fail. What 'auto' must pick comes from /proc/cpuinfo, not from the addon.
 *
 * Tolerances. bf16 keeps 8 significant bits, so rounding one operand costs at most u = 2^-8 relative error and a
 * product of two rounded operands up to 2u per term, accumulated in f32. The loss comes out of the forward products
 * only and averages per-token errors of either sign: |loss_bf16 - loss_fp32| <= u * loss. A gradient picks up the
 * rounding of every bf16 product on its way back from the loss; the longest way, to the feature projection,
 * passes through 8 (dlogits, df1, the GRU gate gradients and [dh W2 | dh Wr] of the recurrence, the attention keys'
 * gradient, the annotation vectors' gradient, the features), so the relative L2 error of every parameter's gradient
 * is bounded by 8 x 2u = 16u when all those errors add coherently. Independent roundings mostly cancel: the
 * measured errors (printed) are 1-11u, largest for the feature projection, whose gradient is a sum of two paths
 * (through the contexts and through the keys) that partly cancel. attention.V.bias has zero gradient in exact
 * arithmetic (softmax is shift-invariant), so it is compared on the scale of the other gradients.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { bf16Unavailable, createModel, resolvePrecision } from '../src/model/index.js';
import { loadBinding, type Precision } from '../src/model/binding.js';
import { PARAMETER_ORDER } from '../src/model/params.js';
import { train } from '../src/train/train.js';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { readSafetensors, writeSafetensors } from '../src/checkpoint/safetensors.js';
import { Rng } from '../src/util/rng.js';
import type { TrainConfig } from '../src/train/config.js';
import { oracleRun, QUIET_TRAIN } from './helpers/oracle-run.js';
import { cpuHasBf16, testNeeding } from './helpers/capabilities.js';
import { modelConfig, SMALL_SIZES } from './helpers/model-fixture.js';
import { straightAndResumed } from './helpers/train-resume.js';

const unavailable = bf16Unavailable();
/**
 * Whether 'auto' must pick bf16 here, from sources the addon does not control: the CPU's flags, the build (oneDNN
 * in it is checked against the installation by test/capabilities.test.ts) and the backend in use. Where the CPU
 * flags are unknown (no /proc/cpuinfo), from the addon.
 */
function bf16Expected(): boolean {
  const info = loadBinding().gemmInfo();
  const cpu = cpuHasBf16();
  return cpu === null ? unavailable === null : cpu && info.built.includes('onednn') && info.backend === 'onednn';
}
const u = 2 ** -8;

testNeeding(
  'bf16',
  unavailable,
  "the bf16 step's loss and gradients agree with the fp32 step within bf16 bounds",
  () => {
    const native = loadBinding();
    const [B, T, L, C, E, U, A, V] = [12, 7, 10, 96, 32, 40, 24, 60];
    const config = modelConfig([L, C, E, U, A, V]);
    const dims = Int32Array.of(B, T, L, C, E, U, A, V);
    const lines: string[] = [];
    for (const seed of [1, 3]) {
      const model = createModel(config, { seed });
      const params = [...model.parameters().values()].map((t) => t.data);
      const rng = new Rng(seed);
      const features = Float32Array.from({ length: B * L * C }, () => rng.next() * 2 - 0.5);
      const tokens = new Int32Array(B * (T + 1));
      for (let b = 0; b < B; b++) {
        const len = 2 + rng.int(T);
        for (let t = 0; t <= T; t++) tokens[b * (T + 1) + t] = t < len ? 1 + rng.int(V - 1) : 0;
      }
      const ws = native.createWorkspace();
      // [dropout, lambda, dropout seed, resetState, meanInit]: the TF tutorial's model (none of them), and the paths
      // dropout, the regulariser, the paper's initial state and the tutorial's reset GRU add.
      const cases = [
        ['plain', [0, 0, 0, false, false]],
        ['dropout, lambda, mean init', [0.3, 0.5, 7, false, true]],
        ['dropout, lambda, reset', [0.3, 0.5, 7, true, false]],
      ] as const;
      for (const [label, [dropout, lambda, dropSeed, reset, meanInit]] of cases) {
        const run = (precision: Precision) => {
          const grads = params.map((p) => new Float32Array(p.length));
          const r = native.trainStep(
            ws,
            params,
            grads,
            dims,
            features,
            tokens,
            dropout,
            lambda,
            dropSeed,
            reset,
            meanInit,
            null,
            null,
            undefined,
            precision,
          );
          return { loss: r.loss, grads };
        };
        const fp32 = run('fp32'),
          bf16 = run('bf16');
        assert.ok(
          Math.abs(bf16.loss - fp32.loss) <= u * fp32.loss,
          `seed ${seed}, ${label}: loss ${bf16.loss} vs ${fp32.loss}`,
        );
        let largestNorm = 0;
        const errors = PARAMETER_ORDER.map((name, i) => {
          let diff = 0,
            norm = 0;
          for (let k = 0; k < params[i].length; k++) {
            diff += (bf16.grads[i][k] - fp32.grads[i][k]) ** 2;
            norm += fp32.grads[i][k] ** 2;
          }
          largestNorm = Math.max(largestNorm, Math.sqrt(norm / params[i].length));
          return { name, diff: Math.sqrt(diff), norm: Math.sqrt(norm), n: params[i].length };
        });
        const worst = errors
          .filter((e) => e.norm > 0 && e.name !== 'attention.V.bias')
          .map((e) => ({ ...e, rel: e.diff / e.norm }))
          .sort((a, b) => b.rel - a.rel);
        lines.push(
          `  seed ${seed}, ${label}: loss rel ${(Math.abs(bf16.loss - fp32.loss) / fp32.loss / u).toFixed(3)}u; gradient rel L2 ` +
            worst
              .slice(0, 3)
              .map((e) => `${e.name} ${(e.rel / u).toFixed(1)}u`)
              .join(', ') +
            ` ... ${worst.at(-1)!.name} ${(worst.at(-1)!.rel / u).toFixed(1)}u`,
        );
        for (const e of worst)
          assert.ok(
            e.rel <= 16 * u,
            `seed ${seed}, ${label}: ${e.name} gradient differs by ${(e.rel / u).toFixed(1)}u (relative L2)`,
          );
        const vBias = errors.find((e) => e.name === 'attention.V.bias')!;
        assert.ok(
          vBias.diff <= 16 * u * largestNorm,
          `attention.V.bias gradient ${vBias.diff} on the scale ${largestNorm}`,
        );
      }
      native.releaseWorkspace(ws);
      model.dispose();
    }
    console.log(`bf16 vs fp32 step (u = 2^-8; bounds: loss u, gradients 16u):\n${lines.join('\n')}`);
  },
);

const tiny: Partial<TrainConfig> = {
  embedDim: 16,
  units: 32,
  attentionUnits: 16,
  batchSize: 16,
  learningRate: 1e-2,
  epochs: 10,
  bucketBatches: 2,
  checkpointMinutes: 0,
  lrSchedule: 'constant',
  earlyStopPatience: 0,
  dropout: 0.2,
};
const quiet = QUIET_TRAIN;

testNeeding(
  'bf16',
  unavailable,
  'a short training on synthetic shapes reaches the same quality in bf16 as in fp32; resume is exact in bf16',
  async () => {
    const runDir = await oracleRun('sat-precision-', 60);
    const outcome: Record<string, { devLoss: number; cider: number; first: number }> = {};
    for (const precision of ['fp32', 'bf16'] as const) {
      const o = await train({
        runDir,
        checkpointDir: path.join(runDir, precision),
        overrides: { ...tiny, precision },
        ...quiet,
      });
      const h = o.progress.history;
      // Greedy captions of the few dev images flip a word at a time, so CIDEr is taken over the last 3 epochs.
      const cider = h.slice(-3).reduce((sum, e) => sum + e.metric!.value, 0) / 3;
      outcome[precision] = { devLoss: h.at(-1)!.valLoss!, cider, first: h[0].valLoss! };
      const { meta } = loadCheckpoint(path.join(runDir, precision));
      assert.equal(meta.config.precision, precision, 'stored in the checkpoint');
      assert.deepEqual(meta.precision, {
        asked: precision,
        used: precision,
        reason: precision === 'fp32' ? 'as asked' : meta.precision!.reason,
      });
      o.store.close();
      o.model.dispose();
    }
    const { fp32, bf16 } = outcome;
    console.log(
      `10 epochs on 60 shapes images: fp32 dev loss ${fp32.first.toFixed(3)} -> ${fp32.devLoss.toFixed(4)}, CIDEr (last 3 epochs) ` +
        `${fp32.cider.toFixed(3)}; bf16 dev loss ${bf16.first.toFixed(3)} -> ${bf16.devLoss.toFixed(4)}, CIDEr ${bf16.cider.toFixed(3)}`,
    );
    assert.ok(fp32.devLoss < 0.75 * fp32.first && fp32.cider > 1, 'fp32 learns');
    assert.ok(
      Math.abs(bf16.devLoss - fp32.devLoss) <= 0.02 * fp32.devLoss,
      `dev loss bf16 ${bf16.devLoss} vs fp32 ${fp32.devLoss}`,
    );
    assert.ok(
      Math.abs(bf16.cider - fp32.cider) <= 0.1 * fp32.cider,
      `dev CIDEr bf16 ${bf16.cider} vs fp32 ${fp32.cider}`,
    );

    // 2 epochs straight vs 1 + --resume + 1, both bf16: bit for bit.
    const short = { ...tiny, precision: 'bf16' as const, epochs: 2 };
    const { a, b } = await straightAndResumed(runDir, short);
    assert.equal(b.model.config.embedDim, 16);
    assert.deepEqual(
      b.progress.history.map((e) => e.trainLoss),
      a.progress.history.map((e) => e.trainLoss),
    );
    for (const [name, t] of a.model.parameters()) assert.deepEqual(b.model.parameters().get(name)!.data, t.data, name);
    for (const o of [a, b]) {
      o.store.close();
      o.model.dispose();
    }
  },
);

testNeeding('bf16', unavailable, 'decoding and evalLoss stay fp32 in a bf16 model', () => {
  const config = modelConfig(SMALL_SIZES);
  const fp32 = createModel(config, { seed: 4 }),
    bf16 = createModel(config, { seed: 4, precision: 'bf16' });
  const rng = new Rng(2);
  const features = Float32Array.from({ length: 2 * 5 * 12 }, () => rng.next());
  const batch = { size: 2, steps: 3, features, tokens: Int32Array.of(1, 4, 5, 2, 1, 3, 2, 0) };
  assert.equal(bf16.evalLoss(batch).loss, fp32.evalLoss(batch).loss);
  const s32 = fp32.encode(features, 2),
    s16 = bf16.encode(features, 2);
  assert.deepEqual(s16, s32);
  assert.deepEqual(bf16.step(s16, Int32Array.of(1, 1)), fp32.step(s32, Int32Array.of(1, 1)));
  // ... while their training steps differ (the bf16 one's products take bf16 operands).
  fp32.trainStep(batch, { learningRate: 1e-3 });
  bf16.trainStep(batch, { learningRate: 1e-3 });
  assert.notDeepEqual(bf16.parameters().get('fc2.kernel')!.data, fp32.parameters().get('fc2.kernel')!.data);
  fp32.dispose();
  bf16.dispose();
});

test('precision: auto says what it chose; bf16 is refused with the reason where it cannot run', () => {
  const native = loadBinding();
  const before = native.gemmInfo().backend;
  const auto = resolvePrecision('auto');
  const bf16 = bf16Expected();
  assert.equal(auto.precision, bf16 ? 'bf16' : 'fp32', `auto: ${auto.reason}`);
  assert.match(auto.reason, bf16 ? /^auto: this CPU has bf16 instructions \(oneDNN ISA \w+\)/ : /^auto: /);
  assert.deepEqual(resolvePrecision('fp32'), { precision: 'fp32', reason: 'as asked' });
  try {
    native.setGemmBackend('cblas'); // bf16 needs oneDNN: refused with the reason, here and in the binding
    assert.throws(
      () => resolvePrecision('bf16'),
      native.gemmInfo().onednn
        ? /precision bf16: the matmul backend is cblas .*Use --precision fp32/
        : /precision bf16: this build of the native core has no oneDNN \(install libdnnl-dev, then `npm rebuild`\)\. Use --precision fp32/,
    );
    assert.equal(resolvePrecision('auto').precision, 'fp32');
    const model = createModel(
      {
        locations: 2,
        channels: 3,
        embedDim: 4,
        units: 4,
        attentionUnits: 3,
        vocabSize: 5,
        dropout: 0,
        attentionLambda: 0,
      },
      { precision: 'bf16' },
    );
    const batch = { size: 1, steps: 2, features: new Float32Array(6), tokens: Int32Array.of(1, 3, 2) };
    assert.throws(
      () => model.trainStep(batch, { learningRate: 1e-3 }),
      /precision 'bf16' needs the oneDNN matmul backend, and the backend is cblas/,
    );
    model.dispose();
  } finally {
    native.setGemmBackend(before);
  }
});

test('checkpoints record the precision used (never auto) and asked; --resume keeps it, --init may change it', async () => {
  const native = loadBinding();
  const backend = native.gemmInfo().backend;
  const runDir = await oracleRun('sat-precision-resume-', 40);
  const dir = (name: string) => path.join(runDir, name);
  const one = { ...tiny, epochs: 1 };
  const done = (o: { store: { close(): void }; model: { dispose(): void } }) => {
    o.store.close();
    o.model.dispose();
  };
  const cblas = async <T>(body: () => Promise<T>): Promise<T> => {
    native.setGemmBackend('cblas'); // bf16 cannot run on CBLAS, whatever the CPU: 'auto' resolves to fp32
    try {
      return await body();
    } finally {
      native.setGemmBackend(backend);
    }
  };

  // 'auto' is resolved before training; the checkpoint's config says what ran, its meta what was asked and why.
  done(
    await cblas(() =>
      train({ runDir, checkpointDir: dir('auto'), overrides: { ...one, precision: 'auto' }, ...quiet }),
    ),
  );
  const auto = loadCheckpoint(dir('auto'), 'latest');
  assert.equal(auto.meta.config.precision, 'fp32');
  assert.equal(auto.meta.precision!.asked, 'auto');
  assert.equal(auto.meta.precision!.used, 'fp32');
  // Why bf16 cannot run on CBLAS: the backend in use, or (a build without oneDNN, e.g. macOS) the build.
  const whyNot = native.gemmInfo().built.includes('onednn')
    ? 'the matmul backend is cblas .*bf16 needs onednn'
    : 'this build of the native core has no oneDNN .*';
  assert.match(auto.meta.precision!.reason, new RegExp(`^auto: ${whyNot}`));

  // Another explicit precision on --resume is refused, naming both ways on.
  await assert.rejects(
    train({ runDir, checkpointDir: dir('auto'), overrides: { epochs: 2, precision: 'bf16' }, resume: true, ...quiet }),
    /--resume: \S+latest\.safetensors was trained in fp32, and a run keeps its precision when it continues \(asked: bf16\)\. Drop --precision \(or pass auto\) to continue in fp32, or start a new run .*--init \S+ --precision bf16 with another --checkpoints folder/,
  );
  // 'auto' on --resume means the recorded precision, even where a fresh 'auto' would pick bf16.
  const resumed = await train({
    runDir,
    checkpointDir: dir('auto'),
    overrides: { epochs: 2, precision: 'auto' },
    resume: true,
    ...quiet,
  });
  assert.equal(resolvePrecision('auto').precision, bf16Expected() ? 'bf16' : 'fp32');
  assert.equal((resumed.model as unknown as { precision: string }).precision, 'fp32');
  assert.deepEqual(loadCheckpoint(dir('auto'), 'latest').meta.precision, {
    asked: 'auto',
    used: 'fp32',
    reason: 'resumed: latest.safetensors was trained in fp32',
  });
  done(resumed);

  // A checkpoint trained in bf16 resumes only where bf16 runs: elsewhere the refusal says why and how to go on in fp32.
  fs.cpSync(dir('auto'), dir('bf16'), { recursive: true });
  const file = path.join(dir('bf16'), 'latest.safetensors');
  const { tensors, metadata } = readSafetensors(file);
  const meta = JSON.parse(metadata['sat.checkpoint']);
  meta.config.precision = 'bf16';
  meta.config.epochs = 1;
  meta.progress.epoch = 1;
  meta.precision = { asked: 'bf16', used: 'bf16', reason: 'as asked' };
  writeSafetensors(file, tensors, { ...metadata, 'sat.checkpoint': JSON.stringify(meta) });
  for (const precision of [undefined, 'auto'] as const) {
    await assert.rejects(
      cblas(() =>
        train({ runDir, checkpointDir: dir('bf16'), overrides: { epochs: 3, precision }, resume: true, ...quiet }),
      ),
      new RegExp(
        `--resume: \\S+ was trained in bf16, which cannot run here: ${whyNot}\\. Resume it where bf16 runs, or start a new run .*--init \\S+latest\\.safetensors --precision fp32 with another --checkpoints folder`,
      ),
    );
  }
  // --init starts a new run from those weights, in the precision asked (fp32 by default).
  done(await cblas(() => train({ runDir, checkpointDir: dir('init'), init: file, overrides: one, ...quiet })));
  assert.deepEqual(loadCheckpoint(dir('init'), 'latest').meta.precision, {
    asked: 'fp32',
    used: 'fp32',
    reason: 'as asked',
  });
});
