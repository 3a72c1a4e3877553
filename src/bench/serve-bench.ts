/**
 * `sat bench serve`: a bounded load generator against `sat serve` on 127.0.0.1, next to the PyTorch peer
 * peers/serve_torch.py (torchvision MobileNetV2 + the PyTorch twin of the decoder, eager, behind Python's
 * http.server, one request at a time) measured in the same run, with the same images and the same beam.
 *
 *   both servers start as child processes and are warmed up;
 *   `rounds` alternating rounds of seconds/rounds each: ours, then the peer, at `concurrency` clients
 *   that each POST one image (raw JPEG body) and wait for the answer before sending the next;
 *   reported per side: captions/s (answers 200 per second of wall time), latency p50/p95/p99, errors.
 *
 * --overload (ours only): throughput for seconds/2, then a burst of 4 x --max-queue requests at once
 * (every answer must be 200 or 503; none may hang past the client timeout or be dropped), then
 * throughput again for seconds/2: after the burst the server must be as fast as before.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { checkpointWeightsFile } from '../checkpoint/checkpoint.js';
import { UserError } from '../util/errors.js';
import { ProgressBar } from '../util/progress.js';
import { quantile } from '../util/stats.js';
import { torchPeerCommand, torchPeerPath } from './torch-peer.js';

export interface ServeBenchOptions {
  /** Run folder or checkpoint to serve; the peer loads the same checkpoint's decoder weights. */
  model: string;
  /** Encoder weights for our server (sat serve --encoder-weights), when the checkpoint's encoder needs them. */
  encoderWeights?: string;
  /** Folder of JPEG files; the first `limit` by name are sent, round-robin. */
  images: string;
  limit: number;
  concurrency: number;
  /** Measured seconds per side, split into `rounds` alternating rounds. */
  seconds: number;
  rounds: number;
  beam: number;
  /** Our server: sat serve --backend, --instances, --threads, --blas-threads, --max-batch, --batch-wait-ms, --max-queue. */
  server: {
    backend: 'native' | 'onnx';
    instances: number;
    threads: number;
    blasThreads: number;
    maxBatch: number;
    batchWaitMs: number;
    maxQueue: number;
  };
  /** torch.set_num_threads of the peer. */
  peerThreads: number;
  /** Python with torch + torchvision for the peer, or null for ours only. */
  python: string | null;
  /** The overload check instead of the comparison. */
  overload: boolean;
}

export interface LoadStats {
  /** CPU seconds the server process used per caption answered (all its threads): robust to other load on the machine. */
  cpu_ms_per_caption?: number;
  requests: number;
  ok: number;
  /** Non-200 answers by status, plus "timeout" (no answer within the client timeout) and "network" (connection failed). */
  errors: Record<string, number>;
  seconds: number;
  captions_per_s: number;
  latency_ms: { p50: number; p95: number; p99: number; mean: number; max: number };
  /** Our server only: mean images per model batch, from the answers. */
  mean_batch_size?: number;
}

export interface ServeBenchResult {
  model: string;
  images: number;
  beam: number;
  concurrency: number;
  ours: LoadStats & { server: Record<string, number | string> };
  peer: (LoadStats & { torch: string; threads: number }) | null;
  captions_per_s_ratio: number | null;
  p95_ratio: number | null;
  p50_ratio: number | null;
  overload?: {
    max_queue: number;
    burst: number;
    answers: Record<string, number>;
    hung: number;
    dropped: number;
    before: LoadStats;
    after: LoadStats;
    after_over_before: number;
    /** Every burst answer 200 or 503 (none hung or dropped) and throughput after >= 0.8 x before (the margin is for a shared machine's noise). */
    passed: boolean;
  };
  machine: { cpus: number; loadavg_1min: [number, number] };
}

/** The peer's threads (peers/serve_torch.py's own default too), and a --max-queue small enough for the overload burst to fill. */
export const SERVE_BENCH_DEFAULTS = { peerThreads: 2, maxQueue: 16 } as const;

const CLIENT_TIMEOUT_MS = 120_000;

const round1 = (x: number) => Math.round(x * 10) / 10;

interface Sample {
  ms: number;
  status: string;
  batch?: number;
}

/** One POST of `body`; never throws: failures come back as a status string. */
async function captionOnce(url: string, body: Uint8Array<ArrayBuffer>, beam: number): Promise<Sample> {
  const t0 = performance.now();
  try {
    const r = await fetch(`${url}/v1/captions?beam=${beam}`, {
      method: 'POST',
      headers: { 'content-type': 'image/jpeg' },
      body,
      signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
    });
    const json = (await r.json().catch(() => ({}))) as { batch_size?: number };
    return { ms: performance.now() - t0, status: String(r.status), batch: json.batch_size };
  } catch (e) {
    return { ms: performance.now() - t0, status: (e as Error).name === 'TimeoutError' ? 'timeout' : 'network' };
  }
}

function summarise(samples: Sample[], seconds: number): LoadStats {
  const ok = samples.filter((s) => s.status === '200');
  const latencies = ok.map((s) => s.ms).sort((a, b) => a - b);
  const errors: Record<string, number> = {};
  for (const s of samples) if (s.status !== '200') errors[s.status] = (errors[s.status] ?? 0) + 1;
  const batches = ok.map((s) => s.batch).filter((b): b is number => b !== undefined);
  return {
    requests: samples.length,
    ok: ok.length,
    errors,
    seconds: round1(seconds),
    captions_per_s: Math.round((ok.length / seconds) * 100) / 100,
    latency_ms: {
      p50: round1(quantile(latencies, 0.5)),
      p95: round1(quantile(latencies, 0.95)),
      p99: round1(quantile(latencies, 0.99)),
      mean: round1(latencies.reduce((s, x) => s + x, 0) / Math.max(1, latencies.length)),
      max: round1(latencies.at(-1) ?? NaN),
    },
    ...(batches.length > 0
      ? { mean_batch_size: Math.round((batches.reduce((s, b) => s + b, 0) / batches.length) * 100) / 100 }
      : {}),
  };
}

/**
 * `concurrency` closed-loop clients for `seconds`: each sends the next image as soon as its previous
 * answer came. No request starts after the deadline; the ones in flight then are waited for and counted.
 */
async function runLoad(
  url: string,
  images: Uint8Array<ArrayBuffer>[],
  concurrency: number,
  seconds: number,
  beam: number,
  onAnswer: () => void = () => undefined,
): Promise<{ samples: Sample[]; seconds: number }> {
  const samples: Sample[] = [];
  let next = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  const client = async () => {
    while (performance.now() < deadline && samples.length < 1_000_000) {
      samples.push(await captionOnce(url, images[next++ % images.length], beam));
      onAnswer();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  return { samples, seconds: (performance.now() - t0) / 1000 };
}

/** CPU seconds (user + system, all threads) a process has used so far, from /proc; NaN where there is no /proc. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

/** Start a server child process; resolves with its URL once `readyLine` matches a line of its output. */
function startChild(
  command: string,
  args: string[],
  readyLine: RegExp,
  what: string,
  cwd?: string,
): Promise<{ child: ChildProcess; url: string; line: string }> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
  let log = '';
  return new Promise((resolve, reject) => {
    const onLine = (line: string) => {
      log += line + '\n';
      const m = readyLine.exec(line);
      if (m) resolve({ child, url: m[1], line });
    };
    createInterface({ input: child.stdout! }).on('line', onLine);
    createInterface({ input: child.stderr! }).on('line', onLine);
    child.on('error', (e) => reject(new UserError(`${what} did not start (${command}: ${e.message}).`)));
    child.on('exit', (code) => reject(new UserError(`${what} exited (code ${code}) before it was ready:\n${log}`)));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.removeAllListeners('exit');
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

function readImages(dir: string, limit: number): Uint8Array<ArrayBuffer>[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory())
    throw new UserError(
      `--images ${dir}: no such folder. Pass a folder of JPEG files, e.g. ../shared/data/flickr8k/Flicker8k_Dataset.`,
    );
  const files = fs
    .readdirSync(dir)
    .filter((f) => /\.jpe?g$/i.test(f))
    .sort()
    .slice(0, limit);
  if (files.length === 0) throw new UserError(`--images ${dir}: no .jpg files there.`);
  return files.map((f) => new Uint8Array(fs.readFileSync(path.join(dir, f))));
}

export async function runServeBench(o: ServeBenchOptions): Promise<ServeBenchResult> {
  const { model, concurrency, seconds, rounds, beam } = o;
  const images = readImages(o.images, o.limit);
  const checkpoint = checkpointWeightsFile(model);
  const load0 = loadavg()[0];

  const maxQueue = o.server.maxQueue;
  const server = {
    backend: o.server.backend,
    instances: o.server.instances,
    threads: o.server.threads,
    blas_threads: o.server.blasThreads,
    max_batch: o.server.maxBatch,
    batch_wait_ms: o.server.batchWaitMs,
    max_queue: maxQueue,
  };
  const cli = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../cli.ts' : '../cli.js', import.meta.url));
  const serveArgs = [
    ...process.execArgv,
    cli,
    'serve',
    '--model',
    model,
    '--port',
    '0',
    '--backend',
    server.backend,
    '--no-bundle',
    '--instances',
    String(server.instances),
    '--threads',
    String(server.threads),
    '--blas-threads',
    String(server.blas_threads),
    '--max-batch',
    String(server.max_batch),
    '--batch-wait-ms',
    String(server.batch_wait_ms),
    '--max-queue',
    String(maxQueue),
    '--max-beam',
    String(Math.max(10, beam)),
    ...(o.encoderWeights ? ['--encoder-weights', o.encoderWeights] : []),
  ];
  process.stderr.write(
    `starting sat serve (--backend ${server.backend}, ${server.instances} instance(s), ${describeThreads(server)} each)\n`,
  );
  const ours = await startChild(
    process.execPath,
    serveArgs,
    /ready: .* page at (http:\/\/127\.0\.0\.1:\d+)\//,
    'sat serve',
  );
  const { python, peerThreads: threads } = o;
  let peer: { child: ChildProcess; url: string; line: string } | null = null;
  try {
    if (python && !o.overload) {
      const peerCommand = torchPeerCommand(python, 'serve_torch', [
        '--checkpoint',
        torchPeerPath(checkpoint),
        '--port',
        '0',
        '--threads',
        String(threads),
      ]);
      process.stderr.write(`starting the PyTorch peer: ${python} -m peers.serve_torch (${threads} threads)\n`);
      peer = await startChild(
        peerCommand.command,
        peerCommand.args,
        /"listening": "(http:\/\/127\.0\.0\.1:\d+)"/,
        'the PyTorch peer (point --python at a Python with torch and torchvision, or pass --no-torch)',
        peerCommand.cwd,
      );
    }
    const peerVersion = peer ? String(JSON.parse(peer.line).torch) : '';
    // Warm-up, not measured: first requests pay one-off costs (thread pools, allocations, lazy loading).
    for (const side of [ours, peer]) if (side) await runLoad(side.url, images, concurrency, 2, beam);

    if (o.overload) {
      const overload = await runOverload(ours.url, ours.child.pid, images, concurrency, seconds, beam, maxQueue);
      return {
        model,
        images: images.length,
        beam,
        concurrency,
        ours: { ...overload.before, server },
        peer: null,
        captions_per_s_ratio: null,
        p95_ratio: null,
        p50_ratio: null,
        overload,
        machine: { cpus: cpus().length, loadavg_1min: [load0, loadavg()[0]] },
      };
    }

    const sides = peer ? [ours, peer] : [ours];
    const bar = new ProgressBar({
      total: Math.round(seconds * sides.length),
      label: `serve bench (concurrency ${concurrency}, ${sides.length === 2 ? 'ours + PyTorch peer' : 'ours'})`,
      unit: 's',
    });
    const collected = sides.map(() => ({ samples: [] as Sample[], seconds: 0, cpu: 0 }));
    for (let r = 0; r < rounds; r++) {
      for (let s = 0; s < sides.length; s++) {
        let ticked = 0;
        const t0 = performance.now();
        const timer = setInterval(() => {
          const now = Math.floor((performance.now() - t0) / 1000);
          if (now > ticked) {
            bar.tick(now - ticked, s === 0 ? 'ours' : 'peer');
            ticked = now;
          }
        }, 250);
        const cpu0 = cpuSeconds(sides[s].child.pid);
        const run = await runLoad(sides[s].url, images, concurrency, seconds / rounds, beam);
        clearInterval(timer);
        collected[s].cpu += cpuSeconds(sides[s].child.pid) - cpu0;
        collected[s].samples.push(...run.samples);
        collected[s].seconds += run.seconds;
      }
    }
    bar.finish();
    const stats = (i: number) => {
      const st = summarise(collected[i].samples, collected[i].seconds);
      return { ...st, cpu_ms_per_caption: round1((1000 * collected[i].cpu) / Math.max(1, st.ok)) };
    };
    const oursStats = { ...stats(0), server };
    const peerStats = peer ? { ...stats(1), torch: peerVersion, threads } : null;
    const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
    return {
      model,
      images: images.length,
      beam,
      concurrency,
      ours: oursStats,
      peer: peerStats,
      captions_per_s_ratio: peerStats ? ratio(oursStats.captions_per_s, peerStats.captions_per_s) : null,
      p95_ratio: peerStats ? ratio(oursStats.latency_ms.p95, peerStats.latency_ms.p95) : null,
      p50_ratio: peerStats ? ratio(oursStats.latency_ms.p50, peerStats.latency_ms.p50) : null,
      machine: { cpus: cpus().length, loadavg_1min: [load0, loadavg()[0]] },
    };
  } finally {
    await stopChild(ours.child);
    if (peer) await stopChild(peer.child);
  }
}

async function runOverload(
  url: string,
  pid: number | undefined,
  images: Uint8Array<ArrayBuffer>[],
  concurrency: number,
  seconds: number,
  beam: number,
  maxQueue: number,
) {
  const bar = new ProgressBar({
    total: 3,
    label: `overload: ${seconds / 2} s at concurrency ${concurrency}, a burst of ${4 * maxQueue}, ${seconds / 2} s again`,
    unit: 'phase',
  });
  const measured = async () => {
    const cpu0 = cpuSeconds(pid);
    const run = await runLoad(url, images, concurrency, seconds / 2, beam);
    bar.tick(1);
    const stats = summarise(run.samples, run.seconds);
    return { ...stats, cpu_ms_per_caption: round1((1000 * (cpuSeconds(pid) - cpu0)) / Math.max(1, stats.ok)) };
  };
  const b = await measured();
  const burst = await Promise.all(
    Array.from({ length: 4 * maxQueue }, (_, i) => captionOnce(url, images[i % images.length], beam)),
  );
  const answers: Record<string, number> = {};
  for (const s of burst) answers[s.status] = (answers[s.status] ?? 0) + 1;
  bar.tick(1, JSON.stringify(answers));
  const a = await measured();
  bar.finish();
  const afterOverBefore = Math.round((a.captions_per_s / b.captions_per_s) * 100) / 100;
  const onlyOkOr503 = Object.keys(answers).every((status) => status === '200' || status === '503');
  return {
    max_queue: maxQueue,
    burst: burst.length,
    answers,
    hung: answers.timeout ?? 0,
    dropped: answers.network ?? 0,
    before: b,
    after: a,
    after_over_before: afterOverBefore,
    passed: onlyOkOr503 && afterOverBefore >= 0.8,
  };
}

const describeThreads = (s: Record<string, number | string>) =>
  s.backend === 'native'
    ? `${s.threads} onnxruntime + ${s.blas_threads} BLAS threads`
    : `${s.threads} onnxruntime threads`;

export function formatServeBench(r: ServeBenchResult): string {
  const line = (name: string, s: LoadStats) =>
    `  ${name.padEnd(22)} ${s.captions_per_s.toFixed(2).padStart(7)} captions/s   p50 ${s.latency_ms.p50.toFixed(0).padStart(5)} ms   ` +
    `p95 ${s.latency_ms.p95.toFixed(0).padStart(5)} ms   p99 ${s.latency_ms.p99.toFixed(0).padStart(5)} ms   ${s.ok}/${s.requests} ok` +
    `${Object.keys(s.errors).length ? `, errors ${JSON.stringify(s.errors)}` : ''}${s.mean_batch_size ? `, mean batch ${s.mean_batch_size}` : ''}` +
    `${s.cpu_ms_per_caption !== undefined ? `, ${s.cpu_ms_per_caption.toFixed(0)} CPU-ms/caption` : ''}`;
  const srv = r.ours.server;
  const lines = [
    `sat bench serve: ${r.model}, beam ${r.beam}, ${r.images} images, concurrency ${r.concurrency}; ` +
      `ours: --backend ${srv.backend}, ${srv.instances} instance(s) x (${describeThreads(srv)}), max batch ${srv.max_batch}, batch wait ${srv.batch_wait_ms} ms`,
  ];
  if (r.overload) {
    const o = r.overload;
    lines.push(
      line('before the burst', o.before),
      line('after the burst', o.after),
      `  burst of ${o.burst} (4 x --max-queue ${o.max_queue}): ${JSON.stringify(o.answers)}; hung ${o.hung}, dropped ${o.dropped}; after/before throughput ${o.after_over_before}`,
      `  ${o.passed ? 'PASS' : 'FAIL'}: every answer 200 or 503, none hung or dropped, throughput after >= 0.8 x before`,
    );
  } else {
    lines.push(line('sat serve', r.ours));
    if (r.peer) {
      lines.push(line(`PyTorch peer (${r.peer.threads} thr)`, r.peer));
      lines.push(
        `  ours / peer: ${r.captions_per_s_ratio}x captions/s, p50 ${r.p50_ratio}x, p95 ${r.p95_ratio}x (latency: lower is better)`,
      );
    }
  }
  lines.push(
    `  (${r.machine.cpus} CPUs, 1-min load average ${r.machine.loadavg_1min[0].toFixed(1)} -> ${r.machine.loadavg_1min[1].toFixed(1)}; sides alternate in rounds)`,
  );
  return lines.join('\n');
}
