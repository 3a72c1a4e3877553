/**
 * A soak of `sat serve` on 127.0.0.1: `concurrency` client loops until the deadline, each request of a kind
 * drawn at random (seeded):
 *
 *   good        a 64x64 JPEG as the raw body                                  expect 200
 *   bad         bytes that are no image, sent as image/jpeg                   expect 4xx
 *   oversized   2x --max-bytes of body                                        expect 413
 *   slow        Content-Length 100 kB, then one byte every 200 ms             expect 408 (or a close by the server)
 *   malformed   multipart without a boundary, truncated, or with a 200-char boundary   expect 400
 *   disconnect  half a body, then the client closes the socket               (no answer to expect)
 *
 * Every 2 s the server's RSS (/proc/PID/status VmRSS) and open file descriptors (/proc/PID/fd) are sampled, and
 * from its /metrics the V8 heap of the server thread and of the model thread that ran the latest batch, the
 * server thread's external memory (Buffers) and libvips' operation cache; each slope is a least-squares line
 * through the samples after the first quarter of the run (warm-up). RSS growing while the heaps and the cache stay
 * flat points at native memory: allocator fragmentation across threads, or onnxruntime's arenas.
 * Requests use raw sockets with `Connection: close`, each bounded by a client-side deadline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../src/util/rng.js';
import { quantile } from '../../src/util/stats.js';
import { REPO, tally, type CampaignContext, type Row } from './common.js';

const KINDS = ['good', 'bad', 'oversized', 'slow', 'malformed', 'disconnect'] as const;
type Kind = (typeof KINDS)[number];
/** Half of the requests are good; the rest are split evenly between the faulty kinds. */
const WEIGHTS: Record<Kind, number> = {
  good: 0.5,
  bad: 0.1,
  oversized: 0.1,
  slow: 0.1,
  malformed: 0.1,
  disconnect: 0.1,
};
const EXPECTED: Record<Kind, (status: string) => boolean> = {
  good: (s) => s === '200',
  bad: (s) => /^4\d\d$/.test(s),
  oversized: (s) => s === '413',
  slow: (s) => s === '408' || s === 'closed by server',
  malformed: (s) => s === '400',
  disconnect: () => true,
};
const MAX_BYTES = 1 << 20;
const SERVER_TIMEOUT_S = 10;
/** A client gives up on any request after this long (bounded loops). */
const CLIENT_DEADLINE_MS = (SERVER_TIMEOUT_S + 20) * 1000;

export interface SoakOptions {
  model: string;
  seconds: number;
  concurrency: number;
  /** Flags added to `sat serve` (e.g. --image-cache-mb 50 for sharp's default cache). */
  serveArgs?: string[];
}

/** What is sampled every 2 s: RSS and fds from /proc, the rest (MB) from /metrics (NaN when a scrape failed). */
const SERIES = {
  rssMB: 'RSS',
  heapMB: 'server heap',
  threadHeapMB: 'model-thread heap',
  externalMB: 'external',
  imageCacheMB: 'image cache',
  fds: 'fds',
} as const;
type Series = keyof typeof SERIES;
type Sample = { t: number } & Record<Series, number>;

const METRICS: Partial<Record<Series, string>> = {
  heapMB: 'sat_nodejs_heap_size_used_bytes',
  threadHeapMB: 'sat_model_thread_heap_used_bytes',
  externalMB: 'sat_nodejs_external_memory_bytes',
  imageCacheMB: 'sat_image_cache_bytes',
};
/** `status`: the HTTP status, or what happened instead (closed by server, EPIPE, client deadline ...). */
interface Outcome {
  kind: Kind;
  status: string;
  ms: number;
  variant?: string;
}

export function startServer(
  ctx: CampaignContext,
  model: string,
  serveArgs: string[] = [],
): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const bundle = fs.existsSync(path.join(model, 'manifest.json'));
  const args = [
    ...ctx.sat.slice(1),
    'serve',
    '--model',
    model,
    '--port',
    '0',
    '--max-bytes',
    String(MAX_BYTES),
    '--timeout',
    String(SERVER_TIMEOUT_S),
    ...(bundle ? ['--backend', 'onnx'] : []),
    ...serveArgs,
  ];
  const child = spawn(ctx.sat[0], args, { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sat serve did not start in 120 s:\n${stderr}`)), 120_000);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1], stderr: () => stderr });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sat serve exited (${code}) before listening:\n${stderr}`));
    });
  });
}

/** SIGTERM (the server finishes what is in flight), SIGKILL after 40 s. */
export async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  await new Promise((r) => {
    child.once('exit', r);
    setTimeout(r, 40_000).unref();
  });
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

export async function waitReady(url: string, seconds: number): Promise<void> {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`sat serve at ${url} was not ready within ${seconds} s`);
}

/**
 * Send `head` and `body` (all at once, or one byte every `slowMs`) over a fresh socket and read the status line
 * of the answer. `closeAfterMs`: the client hangs up then, whatever happened; `stop`: checked before each slow byte.
 */
export function rawRequest(
  url: URL,
  head: string,
  body: Buffer,
  opts: { slowMs?: number; closeAfterMs?: number; stop?: () => boolean } = {},
): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(Number(url.port), url.hostname);
    let answer = '',
      done = false,
      drip: NodeJS.Timeout | null = null;
    const finish = (status: string) => {
      if (done) return;
      done = true;
      if (drip) clearInterval(drip);
      clearTimeout(deadline);
      socket.destroy();
      resolve(status);
    };
    const deadline = setTimeout(
      () => finish(opts.closeAfterMs !== undefined ? 'closed by client' : 'client deadline'),
      opts.closeAfterMs ?? CLIENT_DEADLINE_MS,
    );
    socket.on('connect', () => {
      socket.write(head);
      if (opts.slowMs === undefined) {
        socket.write(body);
        return;
      }
      let i = 0;
      drip = setInterval(() => {
        if (opts.stop?.()) finish('stopped');
        else if (i < body.length && !socket.destroyed) socket.write(body.subarray(i, ++i));
      }, opts.slowMs);
    });
    socket.on('data', (d: Buffer) => {
      answer += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(answer);
      if (m) finish(m[1]);
    });
    socket.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? 'socket error'));
    socket.on('close', () => finish(answer ? 'unparsed answer' : 'closed by server'));
  });
}

/** A POST request head naming the server's own host:port (a server may refuse other Host headers). */
export const header = (url: URL, path: string, type: string, length: number) =>
  `POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: ${type}\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`;

const MALFORMED = ['no boundary', 'truncated', 'long boundary'] as const;

function malformedMultipart(variant: number, jpeg: Buffer): { type: string; body: Buffer } {
  const part = (b: string) =>
    Buffer.concat([
      Buffer.from(
        `--${b}\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`,
      ),
      jpeg,
      Buffer.from(`\r\n--${b}--\r\n`),
    ]);
  if (variant === 0) return { type: 'multipart/form-data', body: part('x') }; // no boundary parameter
  if (variant === 1) {
    const b = part('soakboundary');
    return { type: 'multipart/form-data; boundary=soakboundary', body: b.subarray(0, Math.floor(b.length * 0.6)) };
  }
  const long = 'b'.repeat(200);
  return { type: `multipart/form-data; boundary=${long}`, body: part(long) };
}

async function oneRequest(kind: Kind, url: URL, jpeg: Buffer, rng: Rng, variant: number): Promise<string> {
  const endpoint = '/v1/captions?beam=1';
  switch (kind) {
    case 'good':
      return rawRequest(url, header(url, endpoint, 'image/jpeg', jpeg.length), jpeg);
    case 'bad': {
      const junk = Buffer.from('this is not an image '.repeat(50));
      return rawRequest(url, header(url, endpoint, 'image/jpeg', junk.length), junk);
    }
    case 'oversized': {
      const big = Buffer.alloc(2 * MAX_BYTES, 7);
      return rawRequest(url, header(url, endpoint, 'image/jpeg', big.length), big);
    }
    case 'slow':
      return rawRequest(url, header(url, endpoint, 'image/jpeg', 100_000), Buffer.alloc(100_000, 1), { slowMs: 200 });
    case 'malformed': {
      const m = malformedMultipart(variant, jpeg);
      return rawRequest(url, header(url, endpoint, m.type, m.body.length), m.body);
    }
    case 'disconnect':
      return rawRequest(url, header(url, endpoint, 'image/jpeg', jpeg.length * 2), jpeg, {
        closeAfterMs: 50 + rng.int(500),
      });
  }
}

function pickKind(rng: Rng): Kind {
  let r = rng.next();
  for (const k of KINDS) {
    if ((r -= WEIGHTS[k]) < 0) return k;
  }
  return 'good';
}

async function sampleServer(pid: number, url: string, t: number): Promise<Sample | null> {
  let rssMB: number, fds: number;
  try {
    const rss = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    rssMB = rss ? Number(rss[1]) / 1024 : NaN;
    fds = fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null; // the server is gone
  }
  let text = '';
  try {
    text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(1500) })).text();
  } catch {
    /* a busy server: the /metrics series of this sample are NaN */
  }
  const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20;
  const sample = { t, rssMB, fds } as Sample;
  for (const [series, name] of Object.entries(METRICS)) sample[series as Series] = metric(name);
  return sample;
}

/** Least-squares slope of y over x (per minute when x is in seconds), NaN with fewer than 3 points. */
function slopePerMinute(points: { x: number; y: number }[]): number {
  if (points.length < 3) return NaN;
  const n = points.length,
    mx = points.reduce((s, p) => s + p.x, 0) / n,
    my = points.reduce((s, p) => s + p.y, 0) / n;
  const sxy = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0),
    sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  return (sxy / sxx) * 60;
}

export async function soakCampaign(ctx: CampaignContext, opts: SoakOptions): Promise<Row[]> {
  const jpeg = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 200, g: 40, b: 40 } } })
    .jpeg()
    .toBuffer();
  ctx.log(`soak: sat serve --model ${opts.model}, ${opts.concurrency} clients for ${opts.seconds} s`);
  const server = await startServer(ctx, opts.model, opts.serveArgs);
  let exited: string | null = null,
    stopping = false;
  server.child.on('exit', (code, signal) => {
    if (!stopping) exited = `exit ${code ?? signal}`;
  });
  const outcomes: Outcome[] = [];
  const samples: Sample[] = [];
  try {
    await waitReady(server.url, 300);
    const url = new URL(server.url);
    const t0 = Date.now();
    const end = t0 + opts.seconds * 1000;
    const sampler = setInterval(() => {
      void sampleServer(server.child.pid!, server.url, (Date.now() - t0) / 1000).then((s) => s && samples.push(s));
    }, 2000);
    const client = async (i: number) => {
      const rng = new Rng(ctx.seed * 1000 + i);
      while (Date.now() < end && exited === null) {
        const kind = pickKind(rng),
          variant = rng.int(MALFORMED.length);
        const start = performance.now();
        const status = await oneRequest(kind, url, jpeg, rng, variant);
        outcomes.push({
          kind,
          status,
          ms: performance.now() - start,
          ...(kind === 'malformed' ? { variant: MALFORMED[variant] } : {}),
        });
      }
    };
    await Promise.all(Array.from({ length: opts.concurrency }, (_, i) => client(i)));
    clearInterval(sampler);
    const series = path.join(ctx.work, 'soak-samples.csv'); // kept with --keep, for plotting
    const columns = ['t', 'rssMB', 'fds', ...Object.keys(METRICS)] as (keyof Sample)[];
    fs.writeFileSync(
      series,
      [columns.join(','), ...samples.map((x) => columns.map((c) => x[c]).join(','))].join('\n') + '\n',
    );
    ctx.log(`soak: samples in ${series}`);
  } finally {
    stopping = true;
    await stopServer(server.child);
  }
  // A replaced model thread starts a new onnxruntime session: RSS steps up while the old one's memory is returned.
  const replaced = server
    .stderr()
    .split('\n')
    .filter((l) => /model thread replaced: (?!the new one is ready)/.test(l));
  for (const line of replaced) ctx.log(`soak: ${line.trim()}`);
  return soakRows(opts, outcomes, samples, exited, replaced.length);
}

function soakRows(
  opts: SoakOptions,
  outcomes: Outcome[],
  samples: Sample[],
  exited: string | null,
  replaced: number,
): Row[] {
  const rows: Row[] = [];
  for (const kind of KINDS) {
    const mine = outcomes.filter((o) => o.kind === kind);
    const ok = mine.filter((o) => EXPECTED[kind](o.status));
    const label = (o: Outcome) => (o.variant ? `${o.variant}: ${o.status}` : o.status);
    const unexpected = mine.filter((o) => !EXPECTED[kind](o.status)).map(label);
    let figures = `statuses: ${tally(mine.map(label)) || 'none'}`;
    if (kind === 'good' && mine.length > 0) {
      const ms = ok.map((o) => o.ms);
      figures =
        `${((100 * ok.length) / mine.length).toFixed(1)}% success, p50 ${quantile(ms, 0.5).toFixed(0)} ms, p95 ${quantile(ms, 0.95).toFixed(0)} ms; ` +
        figures;
    }
    rows.push({
      scenario: 'soak',
      subject: kind,
      trials: mine.length,
      ok: ok.length,
      figures,
      failures: unexpected.length ? `unexpected: ${tally(unexpected)}` : '',
    });
  }
  const warm = samples.filter((s) => s.t >= opts.seconds / 4);
  const trend = (series: Series, unit: string) => {
    const points = warm.filter((s) => Number.isFinite(s[series])).map((s) => ({ x: s.t, y: s[series] }));
    if (points.length < 3) return `${SERIES[series]} -`;
    const digits = series === 'fds' ? 0 : 1;
    return (
      `${SERIES[series]} ${points[0].y.toFixed(digits)}->${points.at(-1)!.y.toFixed(digits)}${unit} ` +
      `(${slopePerMinute(points).toFixed(2)}${unit}/min)`
    );
  };
  const memory = (['rssMB', 'heapMB', 'threadHeapMB', 'externalMB', 'imageCacheMB'] as const).map((k) =>
    trend(k, ' MB'),
  );
  // Settling (growth that slows to nothing) and a leak (growth that keeps its pace) differ in the later half.
  const half = opts.seconds / 4 + (opts.seconds * 3) / 8;
  const rssSlope = (part: Sample[]) => slopePerMinute(part.map((s) => ({ x: s.t, y: s.rssMB }))).toFixed(2) + ' MB/min';
  memory.push(
    `RSS slope in the first and last half after warm-up ${rssSlope(warm.filter((s) => s.t < half))}, ` +
      rssSlope(warm.filter((s) => s.t >= half)),
  );
  const five = outcomes.filter((o) => o.status === '500').length;
  const fiveXX = outcomes.filter((o) => /^5\d\d$/.test(o.status) && o.status !== '503' && o.status !== '500').length;
  rows.push({
    scenario: 'soak',
    subject: 'server',
    trials: samples.length,
    ok: exited === null && five === 0 ? 'yes' : 'no',
    figures:
      `${opts.seconds} s x ${opts.concurrency} clients; 500s: ${five}; after warm-up (${warm.length} samples): ` +
      `${memory.join(', ')}, ${trend('fds', '')}; peak RSS ${Math.max(...samples.map((s) => s.rssMB)).toFixed(0)} MB; ` +
      `model threads replaced: ${replaced}`,
    failures: [
      exited ? `server died during the soak (${exited})` : '',
      five ? `${five} answers 500` : '',
      fiveXX ? `${fiveXX} other 5xx (not 503)` : '',
    ]
      .filter(Boolean)
      .join('; '),
  });
  return rows;
}
