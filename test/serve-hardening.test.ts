/**
 * `sat serve` under hostile and unlucky clients, over real HTTP on 127.0.0.1 (random ports), with the tiny captioner
 * of serve-fixture.ts: slow uploads hold upload places, never queue places, and are cut below the minimum rate
 * (well-behaved clients keep being answered); the connection cap and the headers timeout; a client that disconnects
 * takes its queued job with it; malformed multipart bodies are 400s; foreign Hosts and Origins are 403s; images
 * are decoded within a format list, a time limit and a pixel limit counted at memory cost; a model thread that
 * overruns its batch is ended and replaced, a dead one restarted with backoff, /readyz 503 meanwhile.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { loadCaptionerEngine } from '../src/serve/captioner-adapter.js';
import type { CaptionEngine } from '../src/serve/engine.js';
import { startServer, type CaptionServer, type ServeOptions } from '../src/serve/server.js';
import { SupervisedEngine, type ModelThread } from '../src/serve/supervisor.js';
import { Rng } from '../src/util/rng.js';
import { gauge, makeTinyModel, refusal, solidImage, until } from './helpers/serve-fixture.js';

let dir: string;
let engine: CaptionEngine;
let red: Buffer;
const servers: CaptionServer[] = [];

const shared = (): CaptionEngine => ({
  info: engine.info,
  captionBatch: (i, o) => engine.captionBatch(i, o),
  dispose: async () => undefined,
});

async function serve(
  options: Partial<ServeOptions> = {},
  load: () => Promise<CaptionEngine | CaptionEngine[]> = async () => shared(),
): Promise<CaptionServer> {
  const server = await startServer(load, { port: 0, ...options });
  servers.push(server);
  await server.ready;
  return server;
}

const post = (
  server: CaptionServer,
  body: Buffer,
  query = '',
  type = 'image/png',
  headers: Record<string, string> = {},
) =>
  fetch(`${server.url}/v1/captions${query}`, {
    method: 'POST',
    body: new Uint8Array(body),
    headers: { 'content-type': type, ...headers },
  });

/** A raw HTTP exchange on a connection of its own: writes `head` (+ body), resolves with the status (0: closed without one). */
function exchange(
  url: string,
  head: string,
  body: Buffer = Buffer.alloc(0),
): Promise<{ status: number; text: string }> {
  const { port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), '127.0.0.1');
    socket.setTimeout(10_000, () => socket.destroy()); // a bounded exchange: no answer within 10 s reads as closed
    let text = '';
    socket.on('data', (d) => (text += d));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), text }));
    socket.write(head);
    socket.end(body);
  });
}

/**
 * A slow-upload client: announces Content-Length 1000000, then sends a byte every `everyMs`; when the server ends
 * the connection it reconnects, until `stop()`. Counts the answers it got, by status.
 */
function slowUploader(url: string, everyMs: number) {
  const { port } = new URL(url);
  const statuses: Record<string, number> = {};
  let stopped = false;
  let socket: net.Socket | null = null;
  const connect = () => {
    if (stopped) return;
    const s = net.connect(Number(port), '127.0.0.1');
    socket = s;
    let text = '';
    s.on('data', (d) => (text += d));
    s.on('error', () => undefined);
    const drip = setInterval(() => s.writable && s.write('x'), everyMs);
    s.on('close', () => {
      clearInterval(drip);
      const status = /^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 'closed';
      statuses[status] = (statuses[status] ?? 0) + 1;
      setTimeout(connect, 10);
    });
    s.write(
      `POST /v1/captions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: image/png\r\nContent-Length: 1000000\r\n\r\n`,
    );
  };
  connect();
  return {
    statuses,
    stop: () => {
      stopped = true;
      (socket as net.Socket | null)?.destroy();
    },
  };
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-serve-hard-'));
  const tiny = await makeTinyModel(dir);
  engine = await loadCaptionerEngine(tiny.run, { encoder: tiny.encoder });
  red = await solidImage('#e01010');
});

after(async () => {
  for (const s of servers) await s.close();
  await engine?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test(
  'slow uploads: they hold upload places, never queue places, are cut below --min-upload-rate, and well-behaved clients are all answered',
  { timeout: 30_000 },
  async () => {
    const server = await serve({
      maxUploads: 16,
      maxQueue: 4,
      minUploadRate: 2000,
      uploadGraceMs: 300,
      batchWaitMs: 0,
    });
    const attackers = Array.from({ length: 12 }, () => slowUploader(server.url, 100));
    try {
      await until(async () => (await gauge(server, 'sat_uploads_in_flight')) >= 12);
      assert.equal(await gauge(server, 'sat_queue_depth'), 0, 'slow bodies take no queue place');
      // 4 well-behaved clients, 5 requests each, while the attack goes on for longer than the grace
      const answers = await Promise.all(
        Array.from({ length: 4 }, async () => {
          const out: number[] = [];
          for (let i = 0; i < 5; i++) {
            out.push((await post(server, red, '?beam=1')).status);
            await new Promise((r) => setTimeout(r, 50));
          }
          return out;
        }),
      );
      assert.deepEqual(answers.flat(), Array(20).fill(200));
      await until(() => attackers.every((a) => (a.statuses['408'] ?? 0) > 0), 5000); // each cut once its grace passed
    } finally {
      for (const a of attackers) a.stop();
    }
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /sat_refusals_total\{reason="upload_too_slow"\} \d+/);
  },
);

test(
  'with every upload place taken, the slowest upload below the minimum rate is cut to make room',
  { timeout: 30_000 },
  async () => {
    const server = await serve({ maxUploads: 2, minUploadRate: 10_000, uploadGraceMs: 60_000 });
    const attackers = [slowUploader(server.url, 1000), slowUploader(server.url, 1000)];
    try {
      await until(async () => (await gauge(server, 'sat_uploads_in_flight')) === 2);
      await new Promise((r) => setTimeout(r, 300)); // old enough to judge
      const answer = await post(server, red, '?beam=1');
      assert.equal(answer.status, 200, await answer.text());
      await until(() => attackers.some((a) => a.statuses['408'] === 1));
    } finally {
      for (const a of attackers) a.stop();
    }
    // with no minimum rate nobody can be judged slow: the next upload is refused instead
    const strict = await serve({ maxUploads: 1, minUploadRate: 0 });
    const holder = slowUploader(strict.url, 1000);
    try {
      await until(async () => (await gauge(strict, 'sat_uploads_in_flight')) === 1);
      await new Promise((r) => setTimeout(r, 300));
      const error = await refusal(await post(strict, red), 503, 'uploads_full');
      assert.equal(error.limit.value, 1);
    } finally {
      holder.stop();
    }
  },
);

test(
  '--max-connections closes connections over the cap at once; --headers-timeout ends connections whose headers stall',
  { timeout: 30_000 },
  async () => {
    const server = await serve({ maxConnections: 2, headersTimeoutMs: 300 });
    const { port } = new URL(server.url);
    const connect = async () => {
      const s = net.connect(Number(port), '127.0.0.1');
      s.on('error', () => undefined);
      const closed = new Promise((r) => s.once('close', r));
      await new Promise((r) => s.once('connect', r));
      return { s, closed };
    };
    const t0 = performance.now();
    const silent = await connect(); // sends nothing; ended while over half the connections are taken
    await new Promise((r) => setTimeout(r, 50));
    const begun = await connect();
    begun.s.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`); // headers begun, never ended
    await new Promise((r) => setTimeout(r, 50));
    const over = await exchange(
      server.url,
      `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(over.status, 0, 'a third connection is closed without an answer');
    const timeout = new Promise((r) => setTimeout(r, 5000, 'timeout'));
    assert.notEqual(
      await Promise.race([Promise.all([silent.closed, begun.closed]), timeout]),
      'timeout',
      'both stalled connections were ended',
    );
    assert.ok(performance.now() - t0 < 3000, `headers timeout took ${Math.round(performance.now() - t0)} ms`);
    const ok = await exchange(
      server.url,
      `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(ok.status, 200);

    // no pressure: a connection that has sent nothing yet (a browser's pre-opened one) may idle past --headers-timeout
    const roomy = await serve({ maxConnections: 100, headersTimeoutMs: 300 });
    const s = net.connect(Number(new URL(roomy.url).port), '127.0.0.1');
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(s.destroyed, false);
    s.destroy();
  },
);

test(
  'a client that disconnects takes its queued job with it: its image never reaches the model',
  { timeout: 30_000 },
  async () => {
    let release: () => void = () => undefined;
    const seen: number[] = [];
    const gated: CaptionEngine = {
      info: engine.info,
      dispose: async () => undefined,
      captionBatch: async (images, o) => {
        seen.push(images.length);
        await new Promise<void>((r) => (release = r));
        return engine.captionBatch(images, o);
      },
    };
    const server = await serve({ batchWaitMs: 0, maxBatch: 1 }, async () => gated);
    const first = post(server, red, '?beam=1');
    await until(() => seen.length === 1);
    const leaving = new AbortController();
    const gone = fetch(`${server.url}/v1/captions?beam=1`, {
      method: 'POST',
      body: new Uint8Array(red),
      headers: { 'content-type': 'image/png' },
      signal: leaving.signal,
    });
    await until(async () => (await gauge(server, 'sat_queue_depth')) === 1);
    leaving.abort();
    await assert.rejects(gone);
    await until(async () => (await gauge(server, 'sat_queue_depth')) === 0);
    release();
    assert.equal((await first).status, 200);
    const third = post(server, red, '?beam=1');
    await until(() => seen.length === 2);
    release();
    assert.equal((await third).status, 200);
    assert.deepEqual(seen, [1, 1], 'the abandoned job never ran');
  },
);

test(
  'malformed multipart bodies are 400 bad_multipart: no boundary, a truncated body, a boundary over 70 characters',
  { timeout: 30_000 },
  async () => {
    const server = await serve();
    const { port } = new URL(server.url);
    const form = (boundary: string, body: string) =>
      `POST /v1/captions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: multipart/form-data${boundary}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
    const part = (b: string) =>
      `--${b}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n`;
    const long = 'x'.repeat(71);
    const cases = [
      ['no boundary', form('', part('abc') + 'PNGDATA\r\n--abc--\r\n'), part('abc') + 'PNGDATA\r\n--abc--\r\n'],
      ['truncated body', form('; boundary=abc', part('abc') + 'PNGDATA'), part('abc') + 'PNGDATA'],
      [
        'long boundary',
        form(`; boundary=${long}`, part(long) + `PNGDATA\r\n--${long}--\r\n`),
        part(long) + `PNGDATA\r\n--${long}--\r\n`,
      ],
    ] as const;
    for (const [what, head, body] of cases) {
      const answer = await exchange(server.url, head, Buffer.from(body));
      assert.equal(answer.status, 400, `${what}: ${answer.text.split('\r\n\r\n')[1]}`);
      assert.match(answer.text, /"code":"bad_multipart"/, what);
    }
    const text = new FormData();
    text.append('image', new Blob(['not an image'], { type: 'text/plain' }), 'a.txt');
    await refusal(
      await fetch(`${server.url}/v1/captions`, { method: 'POST', body: text }),
      415,
      'unsupported_media_type',
    );
    assert.equal((await post(server, red)).status, 200);
  },
);

test(
  "Host and Origin: foreign ones are 403 with the fix; the server's own and --allow-origin ones pass",
  { timeout: 30_000 },
  async () => {
    const server = await serve();
    const { port } = new URL(server.url);
    const get = (route: string, headers: Record<string, string>) =>
      new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
        http
          .get(`${server.url}${route}`, { headers, agent: false }, (res) => {
            let body = '';
            res.on('data', (d) => (body += d));
            res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
          })
          .on('error', reject);
      });
    const rebound = await get('/v1/model', { host: `attacker.example:${port}` });
    assert.equal(rebound.status, 403);
    assert.equal(JSON.parse(rebound.body).error.code, 'host_not_allowed');
    assert.match(JSON.parse(rebound.body).error.fix, /--allow-origin/);
    assert.equal((await get('/metrics', { host: `attacker.example:${port}` })).status, 403);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `10.1.2.3:${port}`])
      assert.equal((await get('/healthz', { host })).status, 200, host);

    const foreign = await post(server, red, '', 'image/png', { origin: 'http://attacker.example' });
    const error = await refusal(foreign, 403, 'origin_not_allowed');
    assert.match(error.message, /attacker\.example/);
    await refusal(await fetch(`${server.url}/v1/model`, { headers: { origin: 'null' } }), 403, 'origin_not_allowed');
    assert.equal(
      (await post(server, red, '', 'image/png', { origin: server.url })).status,
      200,
      "the server's own page",
    );

    const open = await serve({ allowOrigins: ['https://caption.example.org'] });
    const allowed = await post(open, red, '', 'image/png', { origin: 'https://caption.example.org' });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://caption.example.org');
    const preflight = await fetch(`${open.url}/v1/captions`, {
      method: 'OPTIONS',
      headers: { origin: 'https://caption.example.org', 'access-control-request-method': 'POST' },
    });
    assert.equal(preflight.status, 204);
    assert.match(preflight.headers.get('access-control-allow-methods')!, /POST/);
    const proxied = await new Promise<number>((resolve) =>
      http.get(`${open.url}/healthz`, { headers: { host: 'caption.example.org' }, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      }),
    );
    assert.equal(proxied, 200, 'the --allow-origin host name is answered');
    await refusal(
      await post(open, red, '', 'image/png', { origin: 'https://other.example.org' }),
      403,
      'origin_not_allowed',
    );
  },
);

test(
  'images: 16-bit and interlaced images count at their memory cost; GIF and TIFF are opt-in; decoding has a time limit',
  { timeout: 30_000 },
  async () => {
    const server = await serve({ maxPixels: 1300 }); // a 30 x 30 8-bit RGB image (900 pixels) passes
    const solid = (w: number, h: number) =>
      sharp({ create: { width: w, height: h, channels: 3, background: '#e01010' } });
    const plain = await solid(30, 30).png().toBuffer();
    const interlaced = await solid(30, 30).png({ progressive: true }).toBuffer();
    const deep = await sharp(Buffer.from(new Uint16Array(30 * 30 * 3).fill(50_000).buffer), {
      raw: { width: 30, height: 30, channels: 3 } as never,
    })
      .toColourspace('rgb16')
      .png()
      .toBuffer();
    assert.equal((await sharp(deep).metadata()).depth, 'ushort');
    assert.equal((await sharp(interlaced).metadata()).isProgressive, true);
    assert.equal((await post(server, plain)).status, 200);
    for (const [what, image] of [
      ['interlaced', interlaced],
      ['16-bit', deep],
    ] as const) {
      const error = await refusal(await post(server, image), 422, 'too_many_pixels');
      assert.match(error.message, /counts as 1800 pixels/, what);
      assert.equal(error.limit.name, '--max-pixels');
    }

    const gif = await solid(20, 20).gif().toBuffer();
    const tiff = await solid(20, 20).tiff().toBuffer();
    for (const image of [gif, tiff]) {
      const error = await refusal(await post(server, image, '', 'image/gif'), 415, 'format_not_enabled');
      assert.equal(error.limit.name, '--image-formats');
    }
    const wider = await serve({ imageFormats: ['jpeg', 'png', 'webp', 'gif', 'tiff'] });
    assert.equal((await post(wider, gif, '', 'image/gif')).status, 200);
    assert.equal((await post(wider, tiff, '', 'image/tiff')).status, 200);

    // A 1600 x 1600 noise image takes several milliseconds to decode, well past the 1 ms limit: it is refused
    // whether the timer fires first or the decode ends first (a decode that ends after the deadline is refused too).
    const rng = new Rng(5);
    const side = 1600;
    const pixels = new Uint8Array(side * side * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = rng.int(256);
    const noise = await sharp(pixels, { raw: { width: side, height: side, channels: 3 } })
      .png()
      .toBuffer();
    const hurried = await serve({ imageTimeoutMs: 1 });
    const error = await refusal(await post(hurried, noise), 422, 'image_too_slow');
    assert.equal(error.limit.name, '--image-timeout');
    assert.equal((await post(server, plain)).status, 200, 'the server beside it still decodes');
  },
);

/** A fake model thread: `hang` makes its batches never return, `crash()` ends it as a crash would. */
function fakeThread(name: string) {
  let gone: (e: Error) => void = () => undefined;
  const ended = new Promise<Error>((r) => (gone = r));
  const t = {
    alive: true,
    hang: false,
    terminated: false,
    batches: 0,
    crash: (why = `${name} crashed`) => {
      t.alive = false;
      gone(new Error(why));
    },
    thread: {
      info: engine.info,
      get alive() {
        return t.alive;
      },
      whenGone: () => ended,
      terminate: async () => {
        t.terminated = true;
        t.alive = false;
        gone(new Error(`${name} terminated`));
      },
      dispose: async () => {
        t.alive = false;
      },
      captionBatch: (images: Uint8Array[], o: object) => {
        t.batches++;
        return t.hang ? new Promise(() => undefined) : engine.captionBatch(images, o);
      },
    } as unknown as ModelThread,
  };
  return t;
}

test(
  'watchdog: a batch past --batch-timeout retires its thread (terminated when stuck past the grace); a new one is started with backoff; /readyz is 503 until it is ready',
  { timeout: 30_000 },
  async () => {
    const first = fakeThread('first');
    first.hang = true;
    const spares = [fakeThread('second'), fakeThread('third'), fakeThread('fourth')];
    let started = 0;
    let gate: Promise<void> | null = null;
    let letStart: () => void = () => undefined;
    gate = new Promise<void>((r) => (letStart = r));
    const events: string[] = [];
    const supervised = new SupervisedEngine(
      first.thread,
      async () => {
        if (gate) await gate;
        return spares[started++].thread;
      },
      {
        batchTimeoutMs: 200,
        retireGraceMs: 300,
        restartBackoffMs: { first: 20, max: 1000 },
        onEvent: (m) => events.push(m),
      },
    );
    const server = await serve({ batchWaitMs: 0, timeoutMs: 10_000 }, async () => supervised);
    assert.equal((await fetch(`${server.url}/readyz`)).status, 200);
    const pending = post(server, red, '?beam=1');
    await until(() => first.terminated, 3000);
    assert.match(events[0], /ran past --batch-timeout 0.2 s; a new one starts in 20 ms/);
    const readyz = await fetch(`${server.url}/readyz`);
    assert.equal(readyz.status, 503, 'no instance can work while its thread is replaced');
    assert.equal((await readyz.json()).status, 'recovering');
    const error = await refusal(await post(server, red), 503, 'model_unavailable');
    assert.match(error.message, /being replaced/);
    await until(() => supervised.starts === 2);
    gate = null;
    letStart();
    const answer = await pending;
    assert.equal(answer.status, 200, "the overrun batch's job ran again on the new thread");
    assert.equal((await answer.json()).caption, 'a red square');
    assert.equal((await fetch(`${server.url}/readyz`)).status, 200);

    // threads that die between batches are replaced too; the backoff doubles until a batch goes well
    events.length = 0;
    spares[0].crash();
    await until(() => started === 2);
    await until(() => supervised.alive);
    spares[1].crash();
    await until(() => started === 3 && supervised.alive);
    assert.deepEqual(
      events.filter((e) => /starts in/.test(e)).map((e) => /starts in (\d+) ms/.exec(e)![1]),
      ['20', '40'],
    );
    assert.equal((await post(server, red, '?beam=1')).status, 200);
    assert.equal(spares[2].batches, 1);
  },
);

test(
  "sat serve's flags for the limits: parsed, checked, with messages naming the flag",
  { timeout: 30_000 },
  async () => {
    const { SERVE_OPTIONS, serveOptionsFromArgs } = await import('../src/cli/serve.js');
    const { parseCommandArgs } = await import('../src/cli/command.js');
    const parse = (...argv: string[]) =>
      serveOptionsFromArgs(
        parseCommandArgs(
          { name: 'serve', summary: '', usage: '', options: SERVE_OPTIONS, run: async () => undefined },
          argv,
        ).values,
      );
    const defaults = parse();
    assert.deepEqual(
      [
        defaults.maxUploads,
        defaults.minUploadRate,
        defaults.uploadGraceMs,
        defaults.headersTimeoutMs,
        defaults.maxConnections,
        defaults.imageFormats,
        defaults.allowOrigins,
      ],
      [128, 8192, 2000, 10_000, 512, ['jpeg', 'png', 'webp'], []],
    );
    const o = parse(
      '--max-uploads',
      '4',
      '--min-upload-rate',
      '0',
      '--image-formats',
      'jpg,PNG,avif',
      '--allow-origin',
      'https://a.example',
      '--allow-origin',
      'http://b.example:8080',
      '--image-timeout',
      '0.5',
    );
    assert.deepEqual(
      [o.maxUploads, o.minUploadRate, o.imageFormats, o.allowOrigins, o.imageTimeoutMs],
      [4, 0, ['jpeg', 'png', 'heif'], ['https://a.example', 'http://b.example:8080'], 500],
    );
    assert.throws(() => parse('--image-formats', 'jpeg,bmp'), /--image-formats .*unknown bmp/);
    assert.throws(() => parse('--allow-origin', 'https://a.example/path'), /--allow-origin .* no path/);
    assert.throws(() => parse('--allow-origin', 'a.example'), /--allow-origin "a.example" is not an origin/);
    assert.throws(() => parse('--max-uploads', '0'), /--max-uploads/);
  },
);
