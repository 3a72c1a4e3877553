/**
 * `sat bench train`: tokens/s and effective GFLOP/s of the native training step at the tutorial's shapes
 * (batch 64, 64x2048 features, E 256, U 512, A 512, vocab 5001, 16 steps) on random data, on every matmul backend
 * and precision this build and CPU run (CBLAS fp32, oneDNN fp32, oneDNN bf16), next to the PyTorch peer
 * peers/train_torch.py in fp32 and with bf16 autocast, and next to the matmul roofs: OpenBLAS sgemm, oneDNN f32 and
 * oneDNN bf16 on 1024^3 and the model's own shapes. Everything is measured in the same run: each round times one
 * step of every side (in an order that rotates between rounds) and then the roof products, so all see the same
 * machine load. Medians over the rounds; a side's roof is the best of its backend's per-shape medians.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { loadavg } from 'node:os';
import { loadBinding, type GemmBackend, type GemmInfo, type Precision } from '../model/binding.js';
import { bf16Unavailable, createModel } from '../model/index.js';
import { TUTORIAL_MODEL_DEFAULTS, type CaptionModel, type ModelConfig } from '../model/types.js';
import { ProgressBar } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import { median } from '../util/stats.js';
import { torchPeerCommand } from './torch-peer.js';

export interface TrainBenchOptions {
  /** Batch size B. */
  batch: number;
  /** Decoder steps T per caption. */
  steps: number;
  /** Timed rounds after one warm-up round; medians are reported. */
  repeats: number;
  /** Threads, every side (OpenBLAS + OpenMP workers / torch.set_num_threads). */
  threads: number;
  /** Python with PyTorch for the peers, or null to measure ours only. */
  python: string | null;
  /** Our sides (trainBenchSides); default: every one this build and CPU run. */
  sides?: TrainBenchSide[];
  /** Time the sections of our step per side (matmul vs elementwise). */
  profile?: boolean;
}

export const TRAIN_BENCH_DEFAULTS = {
  batch: 64,
  steps: 16,
  repeats: 5,
  threads: 2,
  python: '/usr/bin/python3',
} as const;
const SHAPES = { locations: 64, channels: 2048, vocabSize: 5001 };
/** Roof products as M x K x N: 1024^3, then the model's fc2 (rows x U x V), feature projection (B*L x C x E), and a per-step product. */
export const ROOF_SHAPES: readonly [number, number, number][] = [
  [1024, 1024, 1024],
  [1024, 512, 5001],
  [4096, 2048, 256],
  [64, 1024, 1536],
];
export const TRAIN_BENCH_SIDES = ['cblas/fp32', 'onednn/fp32', 'onednn/bf16'] as const;
export type TrainBenchSide = (typeof TRAIN_BENCH_SIDES)[number];

export interface Timing {
  step_s: number[];
  median_step_s: number;
  tokens_per_s: number;
  gflops: number;
  median_cpu_s: number;
}
export interface Roof {
  backend: GemmBackend;
  precision: Precision;
  shapes: Record<string, number>;
  roof_gflops: number;
}

export interface TrainBenchResult {
  config: ModelConfig & { batch: number; steps: number };
  threads: number;
  gflop_per_step: number;
  /** What ran: the BLAS and its kernels (OpenBLAS core name), oneDNN's version, effective ISA and matmul implementations. */
  kernels: GemmInfo;
  /** Our step per backend/precision, with the fraction of its matching roof. */
  ours: Partial<Record<TrainBenchSide, Timing & { roof: string; fraction_of_roof: number }>>;
  torch: { version: string; fp32: Timing; bf16: Timing } | null;
  /** GFLOP/s medians per shape ("MxKxN") and the roof (their best): OpenBLAS sgemm, oneDNN f32, oneDNN bf16 (f32 output). */
  roofs: Partial<Record<TrainBenchSide, Roof>>;
  ratios: Record<string, number>;
  profile?: Partial<Record<TrainBenchSide, { name: string; ms: number; matmul_ms: number }[]>>;
  loadavg_1min: [number, number];
}

/**
 * Matmul FLOPs of one training step as the model defines them (independent of our restructuring):
 * forward + backward, where backward costs two matmuls per forward matmul, except the feature projection,
 * whose input (the features) needs no gradient.
 */
export function trainStepFlops(c: ModelConfig, B: number, T: number, tokens: number): number {
  const { locations: L, channels: C, embedDim: E, units: U, attentionUnits: A, vocabSize: V } = c;
  const projection = 2 * B * L * C * E;
  const perStep = 2 * B * (U * A + L * A + L * E + 2 * E * 3 * U + U * 3 * U); // W2, V.tanh, context, GRU
  const forward = projection + 2 * B * L * E * A + T * perStep + 2 * tokens * (U * U + U * V);
  return 3 * forward - projection;
}

/**
 * Our sides from a comma-separated list of backend/precision (`--train-sides`), or every one this build and CPU
 * run; one that cannot run here is refused with the reason.
 */
export function trainBenchSides(spec?: string): TrainBenchSide[] {
  const built = loadBinding().gemmInfo().built;
  const bf16Why = bf16Unavailable();
  if (spec === undefined) {
    return TRAIN_BENCH_SIDES.filter(
      (s) => built.includes(s.split('/')[0] as GemmBackend) && (s !== 'onednn/bf16' || !bf16Why),
    );
  }
  return spec.split(',').map((s) => {
    if (!TRAIN_BENCH_SIDES.includes(s as TrainBenchSide))
      throw new UserError(`--train-sides: "${s}" is not one of ${TRAIN_BENCH_SIDES.join(', ')}.`);
    if (!built.includes(s.split('/')[0] as GemmBackend))
      throw new UserError(`--train-sides ${s}: this build has only ${built.join(', ')}.`);
    if (s === 'onednn/bf16' && bf16Why) throw new UserError(`--train-sides ${s}: ${bf16Why}.`);
    return s as TrainBenchSide;
  });
}

export async function runTrainBench(opts: TrainBenchOptions): Promise<TrainBenchResult> {
  const { batch: B, steps: T, repeats, threads } = opts;
  const load0 = loadavg()[0];
  const native = loadBinding();
  const sides = opts.sides ?? trainBenchSides();
  const config: ModelConfig = { ...TUTORIAL_MODEL_DEFAULTS, ...SHAPES };
  const before = { backend: native.gemmInfo().backend, threads: native.threads() };
  const models = new Map<TrainBenchSide, CaptionModel>();
  let peer: TorchPeer | null = null;
  let measured: Measurements;
  try {
    native.setThreads(threads, threads);
    for (const side of sides)
      models.set(side, createModel(config, { seed: 1, precision: side.split('/')[1] as Precision }));
    if (opts.python !== null) peer = await startTorchPeer(opts.python, config, B, T, threads);
    measured = await measureRounds(models, peer, config, opts);
  } finally {
    peer?.close();
    for (const m of models.values()) m.dispose();
    native.setProfiling(false);
    native.setGemmBackend(before.backend);
    native.setThreads(before.threads.blas, before.threads.workers);
  }
  return summarise(measured, sides, peer, config, opts, [load0, loadavg()[0]]);
}

/** Per side (ours, torch/fp32, torch/bf16): the wall and CPU seconds of each timed step; roofs; profiles. */
interface Measurements {
  times: Map<string, { wall: number[]; cpu: number[] }>;
  /** "side|MxKxN" -> GFLOP/s of each timed product. */
  roofGflops: Map<string, number[]>;
  profiles: Map<TrainBenchSide, Map<string, [number, number]>>;
}

/**
 * Round 0 warms every side up, then `repeats` timed rounds: one step of every side, in an order that rotates
 * between rounds, then the roof products.
 */
async function measureRounds(
  models: Map<TrainBenchSide, CaptionModel>,
  peer: TorchPeer | null,
  config: ModelConfig,
  opts: TrainBenchOptions,
): Promise<Measurements> {
  const { batch: B, steps: T, repeats } = opts;
  const profiling = opts.profile === true;
  const native = loadBinding();
  const rng = new Rng(7);
  const features = Float32Array.from({ length: B * config.locations * config.channels }, () => rng.next());
  const tokens = Int32Array.from({ length: B * (T + 1) }, () => 1 + rng.int(config.vocabSize - 1)); // all real
  const batch = { size: B, steps: T, features, tokens };
  const m: Measurements = { times: new Map(), roofGflops: new Map(), profiles: new Map() };
  const record = (key: string, wall: number, cpu: number) => {
    const t = m.times.get(key) ?? { wall: [], cpu: [] };
    t.wall.push(wall);
    t.cpu.push(cpu);
    m.times.set(key, t);
  };
  const ourStep = (side: TrainBenchSide, timed: boolean) => {
    native.setGemmBackend(side.split('/')[0] as GemmBackend);
    native.setProfiling(profiling && timed);
    native.profile();
    const t0 = performance.now(),
      c0 = process.cpuUsage();
    models.get(side)!.trainStep(batch, { learningRate: 1e-3 });
    const c = process.cpuUsage(c0);
    if (!timed) return;
    record(side, (performance.now() - t0) / 1000, (c.user + c.system) / 1e6);
    const sections = m.profiles.get(side) ?? new Map<string, [number, number]>();
    for (const e of native.profile()) {
      const v = sections.get(e.name) ?? [0, 0];
      sections.set(e.name, [v[0] + e.seconds, v[1] + e.matmulSeconds]);
    }
    m.profiles.set(side, sections);
  };
  const measureRoofs = (timed: boolean) => {
    for (const side of TRAIN_BENCH_SIDES) {
      const [backend, precision] = side.split('/') as [GemmBackend, Precision];
      if (!native.gemmInfo().built.includes(backend) || (precision === 'bf16' && bf16Unavailable())) continue;
      for (const [rows, k, n] of ROOF_SHAPES) {
        const seconds = native.gemmPeak(backend, precision, rows, n, k, 2);
        if (!timed) continue;
        const key = `${side}|${rows}x${k}x${n}`;
        m.roofGflops.set(key, [...(m.roofGflops.get(key) ?? []), ...seconds.map((s) => (2 * rows * n * k) / s / 1e9)]);
      }
    }
  };

  const order: string[] = [...models.keys(), ...(peer ? ['torch/fp32', 'torch/bf16'] : [])];
  const bar = new ProgressBar({
    total: repeats + 1,
    label: `train bench rounds (${order.join(', ')}, roofs)`,
    unit: 'round',
  });
  try {
    for (let round = 0; round <= repeats; round++) {
      const timed = round > 0;
      for (const side of order.map((_, i) => order[(i + round) % order.length])) {
        if (side.startsWith('torch/')) {
          const r = await peer!.step(side === 'torch/bf16' ? 'bf16' : 'fp32');
          if (timed) record(side, r.wall, r.cpu);
        } else {
          ourStep(side as TrainBenchSide, timed);
        }
      }
      measureRoofs(timed);
      bar.tick(
        1,
        order
          .filter((s) => m.times.has(s))
          .map((s) => `${s} ${m.times.get(s)!.wall.at(-1)!.toFixed(2)} s`)
          .join(', '),
      );
    }
  } finally {
    bar.finish();
  }
  return m;
}

/** Medians over the rounds, each side's fraction of its roof, the ratios between sides and the profiles per step. */
function summarise(
  { times, roofGflops, profiles }: Measurements,
  sides: TrainBenchSide[],
  peer: TorchPeer | null,
  config: ModelConfig,
  opts: TrainBenchOptions,
  load: [number, number],
): TrainBenchResult {
  const { batch: B, steps: T, repeats, threads } = opts;
  const gflop = trainStepFlops(config, B, T, B * T) / 1e9;
  const timing = (key: string): Timing => {
    const t = times.get(key)!;
    const m = median(t.wall);
    return {
      step_s: t.wall,
      median_step_s: m,
      tokens_per_s: (B * T) / m,
      gflops: gflop / m,
      median_cpu_s: median(t.cpu),
    };
  };
  const roofs: TrainBenchResult['roofs'] = {};
  for (const side of TRAIN_BENCH_SIDES) {
    const shapes: Record<string, number> = {};
    for (const [m, k, n] of ROOF_SHAPES) {
      const g = roofGflops.get(`${side}|${m}x${k}x${n}`);
      if (g) shapes[`${m}x${k}x${n}`] = median(g);
    }
    if (Object.keys(shapes).length === 0) continue;
    const [backend, precision] = side.split('/') as [GemmBackend, Precision];
    roofs[side] = { backend, precision, shapes, roof_gflops: Math.max(...Object.values(shapes)) };
  }
  const ours: TrainBenchResult['ours'] = {};
  for (const side of sides) {
    const t = timing(side);
    ours[side] = { ...t, roof: side, fraction_of_roof: t.gflops / roofs[side]!.roof_gflops };
  }
  const torch = peer ? { version: peer.version, fp32: timing('torch/fp32'), bf16: timing('torch/bf16') } : null;
  const ratios: Record<string, number> = {};
  const speed = (a?: Timing, b?: Timing) => (a && b ? a.tokens_per_s / b.tokens_per_s : undefined);
  const put = (name: string, v: number | undefined) => {
    if (v !== undefined) ratios[name] = v;
  };
  put('onednn_fp32_vs_cblas_fp32', speed(ours['onednn/fp32'], ours['cblas/fp32']));
  put('onednn_bf16_vs_onednn_fp32', speed(ours['onednn/bf16'], ours['onednn/fp32']));
  put('onednn_bf16_vs_torch_bf16', speed(ours['onednn/bf16'], torch?.bf16));
  put('onednn_fp32_vs_torch_fp32', speed(ours['onednn/fp32'], torch?.fp32));
  put('cblas_fp32_vs_torch_fp32', speed(ours['cblas/fp32'], torch?.fp32));
  const result: TrainBenchResult = {
    config: { ...config, batch: B, steps: T },
    threads,
    gflop_per_step: gflop,
    kernels: loadBinding().gemmInfo(),
    ours,
    torch,
    roofs,
    ratios,
    loadavg_1min: load,
  };
  if (opts.profile === true) {
    result.profile = {};
    for (const [side, sections] of profiles) {
      result.profile[side] = [...sections].map(([name, [s, mm]]) => ({
        name,
        ms: (1000 * s) / repeats,
        matmul_ms: (1000 * mm) / repeats,
      }));
    }
  }
  return result;
}

type TorchPeer = Awaited<ReturnType<typeof startTorchPeer>>;

/** peers/train_torch.py --serve (src/bench/torch-peer.ts): set up once, then one timed step per request, in the precision asked. */
async function startTorchPeer(python: string, c: ModelConfig, B: number, T: number, threads: number) {
  const peer = torchPeerCommand(python, 'train_torch', [
    '--serve',
    '--batch',
    String(B),
    '--steps',
    String(T),
    '--threads',
    String(threads),
    '--locations',
    String(c.locations),
    '--channels',
    String(c.channels),
    '--embed',
    String(c.embedDim),
    '--units',
    String(c.units),
    '--attention',
    String(c.attentionUnits),
    '--vocab',
    String(c.vocabSize),
  ]);
  const script = peer.script;
  process.stderr.write(`starting the PyTorch peer: ${python} -m peers.train_torch --serve\n`);
  const child = spawn(peer.command, peer.args, { stdio: ['pipe', 'pipe', 'inherit'], cwd: peer.cwd });
  const failed = new Promise<never>((_, reject) => {
    const fail = (why: string) =>
      reject(
        new UserError(
          `the PyTorch peer failed (${python} ${script}: ${why}). ` +
            'Point --python at a Python with torch (e.g. /usr/bin/python3 with the python3-torch package, or `pip install torch`), ' +
            'or pass --no-torch.',
        ),
      );
    child.on('error', (e) => fail(e.message));
    child.on('exit', (code) => fail(`exited with ${code}`));
  });
  failed.catch(() => undefined); // observed below; avoid an unhandled rejection after a clean close
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await Promise.race([lines.next(), failed]);
    if (r.done) throw new UserError(`the PyTorch peer (${script}) closed its output early.`);
    return JSON.parse(r.value);
  };
  let ready: { torch: unknown };
  try {
    ready = await next();
  } catch (e) {
    child.removeAllListeners('exit');
    child.kill();
    throw e;
  }
  return {
    version: String(ready.torch),
    async step(precision: Precision): Promise<{ wall: number; cpu: number }> {
      child.stdin!.write(`step ${precision}\n`);
      const r = await next();
      return { wall: r.step_s as number, cpu: r.cpu_s as number };
    },
    close(): void {
      child.removeAllListeners('exit');
      child.stdin!.end('quit\n');
    },
  };
}

export function formatTrainBench(r: TrainBenchResult): string {
  const c = r.config;
  const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
  const k = r.kernels;
  const lines = [
    `train step, B ${c.batch} x T ${c.steps}, features ${c.locations}x${c.channels}, E ${c.embedDim}, U ${c.units}, A ${c.attentionUnits}, V ${c.vocabSize}; ${r.threads} threads; ${r.gflop_per_step.toFixed(1)} GFLOP/step`,
    `  kernels: CBLAS = ${k.blas}` +
      (k.onednn
        ? `; oneDNN ${k.onednn.version}, ISA ${k.onednn.isa}, matmuls ${k.onednn.kernels.join(', ') || 'none'}`
        : '; no oneDNN in this build'),
  ];
  const row = (label: string, t: Timing) =>
    `  ${label.padEnd(22)} ${t.tokens_per_s.toFixed(0).padStart(6)} tokens/s  ${t.gflops.toFixed(1).padStart(6)} GFLOP/s  (median ${t.median_step_s.toFixed(3)} s/step, ${t.median_cpu_s.toFixed(2)} CPU-s)`;
  for (const [side, t] of Object.entries(r.ours)) {
    lines.push(`${row(`ours ${side}`, t)}  ${pct(t.fraction_of_roof)} of the ${side} roof`);
  }
  if (r.torch) {
    lines.push(row(`PyTorch ${r.torch.version} fp32`, r.torch.fp32));
    lines.push(row(`PyTorch bf16 autocast`, r.torch.bf16));
  }
  lines.push('  matmul roofs, GFLOP/s (M x K x N):');
  for (const [side, roof] of Object.entries(r.roofs)) {
    const name =
      side === 'cblas/fp32' ? `${k.blas} sgemm` : side === 'onednn/fp32' ? 'oneDNN f32' : 'oneDNN bf16 (f32 out)';
    lines.push(
      `    ${name.padEnd(26)} ${Object.entries(roof.shapes)
        .map(([s, g]) => `${s} ${g.toFixed(0)}`)
        .join(', ')}; roof ${roof.roof_gflops.toFixed(0)}`,
    );
  }
  const ratio = (key: string, text: string) =>
    r.ratios[key] !== undefined ? [`${text} ${r.ratios[key].toFixed(2)}x`] : [];
  const ratios = [
    ...ratio('onednn_fp32_vs_cblas_fp32', 'oneDNN fp32 / CBLAS fp32'),
    ...ratio('onednn_bf16_vs_onednn_fp32', 'oneDNN bf16 / oneDNN fp32'),
    ...ratio('onednn_bf16_vs_torch_bf16', 'oneDNN bf16 / PyTorch bf16 autocast'),
    ...ratio('onednn_fp32_vs_torch_fp32', 'oneDNN fp32 / PyTorch fp32'),
    ...ratio('cblas_fp32_vs_torch_fp32', 'CBLAS fp32 / PyTorch fp32'),
  ];
  if (ratios.length) lines.push(`  tokens/s ratios: ${ratios.join('; ')}`);
  if (r.profile) {
    for (const [side, sections] of Object.entries(r.profile)) {
      const total = sections.reduce((s, e) => s + e.ms, 0),
        mm = sections.reduce((s, e) => s + e.matmul_ms, 0);
      lines.push(
        `  profile ${side}: ${total.toFixed(1)} ms/step in sections, ${mm.toFixed(1)} ms in matmuls; elementwise by section:`,
      );
      const rest = sections
        .map((e) => ({ ...e, rest: e.ms - e.matmul_ms }))
        .sort((a, b) => b.rest - a.rest)
        .filter((e) => e.rest >= (0.05 * (total - mm)) / sections.length);
      lines.push('    ' + rest.map((e) => `${e.name} ${e.rest.toFixed(1)}`).join(', '));
    }
  }
  lines.push(
    `  (1-min load average ${r.loadavg_1min[0].toFixed(1)} -> ${r.loadavg_1min[1].toFixed(1)}; medians over rounds that rotate the sides)`,
  );
  return lines.join('\n');
}
