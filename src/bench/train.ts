/**
 * `sat bench train`: tokens/s and effective GFLOP/s of the native training step at the tutorial's shapes
 * (batch 64, 64x2048 features, E 256, U 512, A 512, vocab 5001, 16 steps) on random data, next to an
 * OpenBLAS sgemm peak (1024^3 through the addon) and the PyTorch peer bench/train_torch.py, all
 * measured in the same run: each round times one native step, one PyTorch step (a long-lived child
 * process) and three sgemms, so all three see the same machine load. Medians over the rounds.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { loadavg } from 'node:os';
import { loadBinding } from '../model/binding.js';
import { createModel } from '../model/index.js';
import { TUTORIAL_MODEL_DEFAULTS, type ModelConfig } from '../model/types.js';
import { ProgressBar } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import { packageFile } from '../util/package-files.js';
import { median } from '../util/stats.js';

export interface TrainBenchOptions {
  /** Batch size B. */
  batch: number;
  /** Decoder steps T per caption. */
  steps: number;
  /** Timed steps per side after one warm-up; medians are reported. */
  repeats: number;
  /** Threads, both sides (OpenBLAS + workers / torch.set_num_threads). */
  threads: number;
  /** Python with PyTorch for the peer, or null to measure ours only. */
  python: string | null;
}

export const TRAIN_BENCH_DEFAULTS = { batch: 64, steps: 16, repeats: 5, threads: 2, python: '/usr/bin/python3' } as const;
const SHAPES = { locations: 64, channels: 2048, vocabSize: 5001 };

export interface TrainBenchResult {
  config: ModelConfig & { batch: number; steps: number };
  threads: number;
  gflop_per_step: number;
  native: { step_s: number[]; median_step_s: number; tokens_per_s: number; gflops: number; median_cpu_s: number };
  sgemm_peak_gflops: number;
  torch: { step_s: number[]; median_step_s: number; tokens_per_s: number; median_cpu_s: number; version: string } | null;
  speedup_vs_torch: number | null;
  /** PyTorch CPU-seconds per step / ours: the work ratio, less sensitive to other processes' load than wall time. */
  cpu_time_ratio_vs_torch: number | null;
  fraction_of_sgemm_peak: number;
  loadavg_1min: [number, number];
}

/**
 * Matmul FLOPs of one training step as the model defines them (independent of our restructuring):
 * forward + backward, where backward costs two matmuls per forward matmul, except the feature projection, whose
 * input (the features) needs no gradient.
 */
export function trainStepFlops(c: ModelConfig, B: number, T: number, tokens: number): number {
  const { locations: L, channels: C, embedDim: E, units: U, attentionUnits: A, vocabSize: V } = c;
  const projection = 2 * B * L * C * E;
  const perStep = 2 * B * (U * A + L * A + L * E + 2 * E * 3 * U + U * 3 * U); // W2, V.tanh, context, GRU
  const forward = projection + 2 * B * L * E * A + T * perStep + 2 * tokens * (U * U + U * V);
  return 3 * forward - projection;
}

export async function runTrainBench(opts: TrainBenchOptions): Promise<TrainBenchResult> {
  const { batch: B, steps: T, repeats, threads } = opts;
  const load0 = loadavg()[0];

  const native = loadBinding();
  native.setThreads(threads, threads);
  const config: ModelConfig = { ...TUTORIAL_MODEL_DEFAULTS, ...SHAPES };
  const model = createModel(config, { seed: 1 });
  const rng = new Rng(7);
  const features = Float32Array.from({ length: B * config.locations * config.channels }, () => rng.next());
  const tokens = Int32Array.from({ length: B * (T + 1) }, () => 1 + rng.int(config.vocabSize - 1)); // all real
  const batch = { size: B, steps: T, features, tokens };

  const n = 1024;
  const a = Float32Array.from({ length: n * n }, () => rng.next()), b = a.slice(), c = new Float32Array(n * n);
  const sgemmOnce = () => {
    const t0 = performance.now();
    native.sgemm(n, n, n, a, b, c);
    return (2 * n ** 3) / ((performance.now() - t0) / 1000) / 1e9;
  };
  const cpu: number[] = [], torchCpu: number[] = [];
  const nativeOnce = () => {
    const t0 = performance.now(), c0 = process.cpuUsage();
    model.trainStep(batch, { learningRate: 1e-3 });
    const c = process.cpuUsage(c0);
    return { wall: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6 };
  };
  const peer = opts.python === null ? null : await startTorchPeer(opts.python, config, B, T, threads);

  const bar = new ProgressBar({ total: repeats + 1, label: `train bench rounds (native${peer ? ' + PyTorch' : ''} + sgemm)`, unit: 'round' });
  const steps: number[] = [], torchSteps: number[] = [], sgemm: number[] = [];
  sgemmOnce();
  for (let round = 0; round <= repeats; round++) { // round 0 warms both sides up
    const { wall: dt, cpu: dtCpu } = nativeOnce();
    const { wall: dtTorch, cpu: dtTorchCpu } = peer ? await peer.step() : { wall: NaN, cpu: NaN };
    const peaks = [sgemmOnce(), sgemmOnce(), sgemmOnce()];
    if (round > 0) {
      steps.push(dt); torchSteps.push(dtTorch); sgemm.push(...peaks); cpu.push(dtCpu); torchCpu.push(dtTorchCpu);
    }
    bar.tick(1, `native ${dt.toFixed(2)} s${peer ? `, torch ${dtTorch.toFixed(2)} s` : ''}`);
  }
  bar.finish();
  peer?.close();
  model.dispose();
  const gflop = trainStepFlops(config, B, T, B * T) / 1e9;
  const nativeMedian = median(steps);
  const torch: TrainBenchResult['torch'] = peer
    ? { step_s: torchSteps, median_step_s: median(torchSteps), tokens_per_s: (B * T) / median(torchSteps), median_cpu_s: median(torchCpu), version: peer.version }
    : null;
  const tokensPerS = (B * T) / nativeMedian;
  const peak = median(sgemm);
  return {
    config: { ...config, batch: B, steps: T },
    threads,
    gflop_per_step: gflop,
    native: { step_s: steps, median_step_s: nativeMedian, tokens_per_s: tokensPerS, gflops: gflop / nativeMedian, median_cpu_s: median(cpu) },
    sgemm_peak_gflops: peak,
    torch,
    speedup_vs_torch: torch ? tokensPerS / torch.tokens_per_s : null,
    cpu_time_ratio_vs_torch: torch ? torch.median_cpu_s / median(cpu) : null,
    fraction_of_sgemm_peak: gflop / nativeMedian / peak,
    loadavg_1min: [load0, loadavg()[0]],
  };
}

/** bench/train_torch.py --serve: set up once, then one timed step per request. */
async function startTorchPeer(python: string, c: ModelConfig, B: number, T: number, threads: number) {
  const script = packageFile('bench', 'train_torch.py');
  packageFile('scripts', 'torch_model.py'); // the model the peer imports
  const args = [script, '--serve', '--batch', String(B), '--steps', String(T), '--threads', String(threads),
    '--locations', String(c.locations), '--channels', String(c.channels), '--embed', String(c.embedDim),
    '--units', String(c.units), '--attention', String(c.attentionUnits), '--vocab', String(c.vocabSize)];
  process.stderr.write(`starting the PyTorch peer: ${python} bench/train_torch.py --serve\n`);
  const child = spawn(python, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const failed = new Promise<never>((_, reject) => {
    const fail = (why: string) => reject(new UserError(`the PyTorch peer failed (${python} ${script}: ${why}). ` +
      'Point --python at a Python with torch (e.g. /usr/bin/python3 with the python3-torch package, or `pip install torch`), ' +
      'or pass --no-torch.'));
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
  const ready = await next();
  return {
    version: String(ready.torch),
    async step(): Promise<{ wall: number; cpu: number }> {
      child.stdin!.write('step\n');
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
  const lines = [
    `train step, B ${c.batch} x T ${c.steps}, features ${c.locations}x${c.channels}, E ${c.embedDim}, U ${c.units}, A ${c.attentionUnits}, V ${c.vocabSize}; ${r.threads} threads; ${r.gflop_per_step.toFixed(1)} GFLOP/step`,
    `  native:  ${r.native.tokens_per_s.toFixed(0)} tokens/s (median ${r.native.median_step_s.toFixed(3)} s/step over ${r.native.step_s.length} rounds, ${r.native.median_cpu_s.toFixed(2)} CPU-s), ${r.native.gflops.toFixed(1)} GFLOP/s`,
    `  sgemm 1024^3 peak: ${r.sgemm_peak_gflops.toFixed(1)} GFLOP/s -> native reaches ${(100 * r.fraction_of_sgemm_peak).toFixed(0)}% of it`,
  ];
  if (r.torch) {
    lines.push(`  PyTorch ${r.torch.version}: ${r.torch.tokens_per_s.toFixed(0)} tokens/s (median ${r.torch.median_step_s.toFixed(3)} s/step, ${r.torch.median_cpu_s.toFixed(2)} CPU-s)`);
    lines.push(`  speed-up vs PyTorch: ${r.speedup_vs_torch!.toFixed(2)}x wall time, ${r.cpu_time_ratio_vs_torch!.toFixed(2)}x CPU time`);
  }
  lines.push(`  (1-min load average ${r.loadavg_1min[0].toFixed(1)} -> ${r.loadavg_1min[1].toFixed(1)}; medians over rounds that alternate the sides)`);
  return lines.join('\n');
}
