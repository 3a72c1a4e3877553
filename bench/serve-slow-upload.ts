/**
 * Slow-upload attack on `sat serve` (loopback only; not part of npm test): well-behaved clients at --concurrency
 * (8) for --seconds without an attack, then for --seconds while --attackers (64) connections each announce
 * `Content-Length: 1000000` and send one byte a second, reconnecting as soon as the server cuts them. Prints one
 * JSON object: per phase the well-behaved clients' success rate and latency p50/p95, the attackers' answers by
 * status, and the attacked p95 over the unattacked one.
 *
 *   node --import tsx bench/serve-slow-upload.ts --model BUNDLE_OR_RUN --images DIR [--encoder-weights DIR]
 *        [--seconds 20] [--concurrency 8] [--attackers 64] [--limit 50] [--checkout DIR] [-- extra sat serve flags]
 *
 * The server is `sat serve` as a child process (its model on threads of its own), on 127.0.0.1 and a free port;
 * --checkout runs another checkout's src/cli.ts instead (e.g. an older version, as the peer of the same run).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { quantile } from '../src/util/stats.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    model: { type: 'string' },
    images: { type: 'string' },
    'encoder-weights': { type: 'string' },
    seconds: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '8' },
    attackers: { type: 'string', default: '64' },
    limit: { type: 'string', default: '50' },
    checkout: { type: 'string' },
  },
});
if (!values.model || !values.images)
  throw new Error(
    'usage: bench/serve-slow-upload.ts --model M --images DIR [--encoder-weights DIR] [--seconds 20] [--concurrency 8] [--attackers 64] [-- sat serve flags]',
  );
const seconds = Number(values.seconds),
  concurrency = Number(values.concurrency),
  attackerCount = Number(values.attackers);
const files = fs
  .readdirSync(values.images)
  .filter((f) => /\.jpe?g$/i.test(f))
  .sort()
  .slice(0, Number(values.limit));
if (files.length === 0) throw new Error(`no JPEG files in ${values.images}`);
const images = files.map((f) => new Uint8Array(fs.readFileSync(path.join(values.images!, f))));

const args = [
  '--import',
  'tsx',
  'src/cli.ts',
  'serve',
  '--model',
  path.resolve(values.model),
  '--port',
  '0',
  ...(values['encoder-weights'] ? ['--encoder-weights', path.resolve(values['encoder-weights'])] : []),
  ...positionals,
];
const child = spawn(process.execPath, args, {
  stdio: ['ignore', 'ignore', 'pipe'],
  cwd: values.checkout ? path.resolve(values.checkout) : undefined,
});
let log = '';
const url = await new Promise<string>((resolve, reject) => {
  createInterface({ input: child.stderr! }).on('line', (line) => {
    log += `${line}\n`;
    const m = /ready: .* page at (http:\/\/127\.0\.0\.1:\d+)\//.exec(line);
    if (m) resolve(m[1]);
  });
  child.on('exit', (code) => reject(new Error(`sat serve exited (${code}) before it was ready:\n${log}`)));
});
const port = Number(new URL(url).port);

interface Sample {
  ms: number;
  status: string;
}

/** Closed-loop well-behaved clients for `s` seconds; each request has a 60 s client timeout. */
async function goodClients(s: number): Promise<Sample[]> {
  const samples: Sample[] = [];
  const deadline = performance.now() + s * 1000;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline && samples.length < 100_000) {
        const t0 = performance.now();
        let status: string;
        try {
          const r = await fetch(`${url}/v1/captions?beam=3`, {
            method: 'POST',
            headers: { 'content-type': 'image/jpeg' },
            body: images[next++ % images.length],
            signal: AbortSignal.timeout(60_000),
          });
          await r.arrayBuffer();
          status = String(r.status);
        } catch (e) {
          status = (e as Error).name === 'TimeoutError' ? 'timeout' : 'network';
        }
        samples.push({ ms: performance.now() - t0, status });
      }
    }),
  );
  return samples;
}

/** `n` slow uploaders: a byte a second after the headers; reconnect 10 ms after the server ends a connection. */
function attack(n: number) {
  const answers: Record<string, number> = {};
  let stopped = false;
  const sockets = new Set<net.Socket>();
  const connect = () => {
    if (stopped) return;
    const s = net.connect(port, '127.0.0.1');
    sockets.add(s);
    let text = '';
    s.on('data', (d) => (text += d));
    s.on('error', () => undefined);
    const drip = setInterval(() => s.writable && s.write('x'), 1000);
    s.on('close', () => {
      clearInterval(drip);
      sockets.delete(s);
      const status = /^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 'closed';
      answers[status] = (answers[status] ?? 0) + 1;
      setTimeout(connect, 10);
    });
    s.write(
      `POST /v1/captions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000\r\n\r\n`,
    );
  };
  for (let i = 0; i < n; i++) connect();
  return {
    answers,
    stop: () => {
      stopped = true;
      for (const s of sockets) s.destroy();
    },
  };
}

function summary(samples: Sample[]) {
  const ok = samples
    .filter((x) => x.status === '200')
    .map((x) => x.ms)
    .sort((a, b) => a - b);
  const statuses: Record<string, number> = {};
  for (const x of samples) statuses[x.status] = (statuses[x.status] ?? 0) + 1;
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    requests: samples.length,
    success_rate: r((1000 * ok.length) / Math.max(1, samples.length)) / 10,
    statuses,
    latency_ms: { p50: r(quantile(ok, 0.5)), p95: r(quantile(ok, 0.95)) },
  };
}

try {
  await goodClients(Math.min(5, seconds / 4)); // warm-up, not counted
  const calm = summary(await goodClients(seconds));
  const attackers = attack(attackerCount);
  await new Promise((r) => setTimeout(r, 3000)); // the attack settles in (every upload place it can take, a grace passed)
  const attacked = summary(await goodClients(seconds));
  attackers.stop();
  console.log(
    JSON.stringify(
      {
        model: values.model,
        checkout: values.checkout ?? '.',
        images: images.length,
        concurrency,
        attackers: attackerCount,
        seconds,
        serve_flags: positionals,
        unattacked: calm,
        attacked,
        attacker_answers: attackers.answers,
        p95_attacked_over_unattacked: Math.round((attacked.latency_ms.p95 / calm.latency_ms.p95) * 100) / 100,
      },
      null,
      2,
    ),
  );
} finally {
  child.kill('SIGTERM');
}
