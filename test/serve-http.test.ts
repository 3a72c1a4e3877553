/**
 * `sat serve` over real HTTP on 127.0.0.1 (random ports), with the tiny captioner of serve-fixture.ts
 * loaded in this process: every endpoint, every refusal of the limits table (each naming its limit and
 * fix, none disturbing the requests beside it), batching that answers exactly as one-by-one, and the engine
 * on both backends and on an export bundle giving the Captioner API's captions.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { buildBundle, writeBundle } from '../src/export/bundle.js';
import { loadCaptioner } from '../src/models/load-captioner.js';
import { loadRgb } from '../src/features/image.js';
import { Batcher, TicketReleasedError } from '../src/serve/batcher.js';
import { BUILD_FOLDERS } from '../src/serve/page-assets.js';
import { ERRORS } from '../src/serve/errors.js';
import { loadCaptionerEngine } from '../src/serve/captioner-adapter.js';
import { CAPTION_OPTION_LIMITS, type CaptionOptions } from '../src/decode/captioner-api.js';
import type { CaptionEngine } from '../src/serve/engine.js';
import { CLOSE_MARGIN_MS, startServer, type CaptionServer, type ServeOptions } from '../src/serve/server.js';
import { Rng } from '../src/util/rng.js';
import { gauge, makeTinyModel, refusal, solidImage, until, type TinyModel } from './helpers/serve-fixture.js';

let dir: string;
let tiny: TinyModel;
let engine: CaptionEngine;
let red: Buffer, blue: Buffer;
const servers: CaptionServer[] = [];

/** The engine, shared by the servers of this file; a server's close() must not dispose it. */
const shared = (): CaptionEngine => ({
  info: engine.info,
  captionBatch: (i, s) => engine.captionBatch(i, s),
  dispose: async () => undefined,
});

async function serve(
  options: Partial<ServeOptions> = {},
  load: () => Promise<CaptionEngine> = async () => shared(),
): Promise<CaptionServer> {
  const server = await startServer(load, { port: 0, ...options });
  servers.push(server);
  return server;
}

const post = (server: CaptionServer, body: Buffer | FormData, query = '', type = 'image/png') =>
  fetch(
    `${server.url}/v1/captions${query}`,
    body instanceof FormData
      ? { method: 'POST', body }
      : { method: 'POST', body: new Uint8Array(body), headers: { 'content-type': type } },
  );

const queueDepth = (server: CaptionServer) => gauge(server, 'sat_queue_depth');
const uploadsInFlight = (server: CaptionServer) => gauge(server, 'sat_uploads_in_flight');

/** An engine whose batches wait until `open()`; the gate closes again after each opening. */
function gated(): { engine: CaptionEngine; open(): void; batches: number[] } {
  let release: () => void = () => undefined;
  let gate = new Promise<void>((r) => (release = r));
  const batches: number[] = [];
  return {
    batches,
    open: () => {
      release();
      gate = new Promise<void>((r) => (release = r));
    },
    engine: {
      info: engine.info,
      dispose: async () => undefined,
      captionBatch: async (images, settings) => {
        batches.push(images.length);
        await gate;
        return engine.captionBatch(images, settings);
      },
    },
  };
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-serve-http-'));
  tiny = await makeTinyModel(dir);
  engine = await loadCaptionerEngine(tiny.run, { encoder: tiny.encoder });
  red = await solidImage('#e01010');
  blue = await solidImage('#1030e0', 'jpeg');
});

after(async () => {
  for (const s of servers) await s.close();
  await engine?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('endpoints: healthz, readyz (503 while loading), model manifest, metrics, the page', async () => {
  let finishLoading: (e: CaptionEngine) => void = () => undefined;
  const server = await serve({}, () => new Promise((resolve) => (finishLoading = resolve)));
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.deepEqual(await (await fetch(`${server.url}/healthz`)).json(), { status: 'ok' });
  assert.equal((await fetch(`${server.url}/readyz`)).status, 503);
  await refusal(await post(server, red), 503, 'model_loading');
  await refusal(await fetch(`${server.url}/v1/model`), 503, 'model_loading');
  finishLoading(shared());
  await server.ready;
  const ready = await fetch(`${server.url}/readyz`);
  assert.equal(ready.status, 200);
  assert.equal((await ready.json()).model, engine.info.modelId);

  const manifest = await (await fetch(`${server.url}/v1/model`)).json();
  assert.match(manifest.id, /^checkpoints-best-[0-9a-f]{12}$/);
  assert.equal(manifest.backend, engine.info.backend);
  assert.deepEqual(manifest.attention_grid, [4, 4]);
  assert.equal(manifest.encoder.input_size, 16);
  assert.deepEqual(manifest.decoding.max_length, { min: 1, default: 4, max: 4 });
  // the shared limits table (CAPTION_OPTION_LIMITS) under wire names, with the service's caps on top
  assert.deepEqual(manifest.decoding.beam, { min: 1, default: 3, max: 10 });
  assert.deepEqual(manifest.decoding.alpha, {
    min: CAPTION_OPTION_LIMITS.alpha.min,
    max: CAPTION_OPTION_LIMITS.alpha.max,
    default: 0,
  });
  for (const key of Object.keys(CAPTION_OPTION_LIMITS)) {
    const listed = manifest.decoding[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)];
    // consensus reranking is listed only for a model with a caption memory; this one has none
    if (key.startsWith('consensus')) assert.equal(listed, undefined, key);
    else assert.ok(listed, key);
  }
  assert.equal(manifest.limits.max_bytes, 10 * 1024 * 1024);

  assert.equal((await post(server, red)).status, 200);
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  for (const line of [
    /sat_http_requests_total\{route="\/v1\/captions",method="POST",status="200"\} 1/,
    /sat_http_requests_total\{route="\/v1\/captions",method="POST",status="503"\} 1/,
    /sat_http_request_duration_seconds_bucket\{le="[\d.]+",route="\/v1\/captions"\}/,
    /sat_queue_depth 0/,
    /sat_batch_size_count 1/,
    /sat_refusals_total\{reason="model_loading"\} 1/,
    /sat_caption_stage_seconds_count\{stage="model"\} 1/,
  ]) {
    assert.match(metrics, line);
  }
  const page = await fetch(`${server.url}/`);
  assert.match(page.headers.get('content-type')!, /text\/html/);
  assert.match(await page.text(), /<script type="module" src="\/assets\/app.js">/);
  assert.match((await fetch(`${server.url}/assets/app.js`)).headers.get('content-type')!, /javascript/);
  await refusal(await fetch(`${server.url}/etc/passwd`), 404, 'not_found');
});

test('POST /v1/captions: raw body and multipart, attention grids, alternatives, timings', async () => {
  const server = await serve();
  await server.ready;
  const raw = await post(server, red, '?attention=true&beam=3');
  assert.equal(raw.status, 200);
  const a = await raw.json();
  assert.equal(a.caption, 'a red square');
  assert.equal(a.model, engine.info.modelId);
  assert.deepEqual(a.attention_grid, [4, 4]);
  assert.deepEqual(
    a.words.map((w: { word: string }) => w.word),
    ['a', 'red', 'square'],
  );
  for (const w of a.words) {
    assert.equal(w.attention.length, 4);
    const sum = w.attention.flat().reduce((s: number, x: number) => s + x, 0);
    assert.ok(Math.abs(sum - 1) < 1e-3, `attention sums to ${sum}`);
  }
  assert.ok(a.alternatives.length >= 1 && a.alternatives.length <= 3);
  assert.equal(a.alternatives[0].caption, 'a red square');
  assert.equal(a.alternatives[0].log_prob, a.log_prob);
  for (let i = 1; i < a.alternatives.length; i++) assert.ok(a.alternatives[i].score <= a.alternatives[i - 1].score);
  assert.deepEqual(Object.keys(a.timings_ms), ['image', 'queue', 'model', 'total']);
  assert.deepEqual(a.options, { beam: 3, alpha: 0, max_length: 4, attention: true });

  const form = new FormData();
  form.append('beam', '2');
  form.append('image', new Blob([new Uint8Array(blue)], { type: 'image/jpeg' }), 'blue.jpg');
  const multi = await post(server, form);
  const b = await multi.json();
  assert.equal(multi.status, 200, JSON.stringify(b));
  assert.equal(b.caption, 'a blue circle');
  assert.deepEqual(b.words, [{ word: 'a' }, { word: 'blue' }, { word: 'circle' }]); // no attention unless asked
  assert.equal(b.options.beam, 2);
});

test("caption options are the Captioner API's, passed down unchanged and checked by its one function; the service adds only its caps", async () => {
  const seen: CaptionOptions[] = [];
  const recording: CaptionEngine = {
    info: engine.info,
    dispose: async () => undefined,
    captionBatch: (i, o) => {
      seen.push(o);
      return engine.captionBatch(i, o);
    },
  };
  const server = await serve({ batchWaitMs: 0 }, async () => recording);
  await server.ready;
  const answer = async (query: string) => {
    const r = await post(server, red, query);
    return { status: r.status, body: await r.json() };
  };

  const sampled = await answer('?sample=true&temperature=0.5&seed=7&suppress_unk=1');
  assert.equal(sampled.status, 200, JSON.stringify(sampled.body));
  assert.deepEqual(seen.at(-1), {
    sample: true,
    temperature: 0.5,
    seed: 7,
    suppressUnk: true,
    maxLength: 4,
    alternatives: true,
  });
  assert.deepEqual(sampled.body.options, {
    beam: 1,
    alpha: 0,
    max_length: 4,
    attention: false,
    sample: true,
    temperature: 0.5,
    seed: 7,
    suppress_unk: true,
  });
  const beamed = await answer('?beam=3&alpha=0.5&alternatives=2');
  assert.equal(beamed.status, 200, JSON.stringify(beamed.body));
  assert.deepEqual(seen.at(-1), { beam: 3, alpha: 0.5, alternatives: 2, maxLength: 4 });
  assert.ok(beamed.body.alternatives.length >= 1 && beamed.body.alternatives.length <= 2);
  // options the decoder gained (top_k, top_p, block_trigrams, groups, diversity) pass through with no change here
  const newer = await answer('?sample=1&top_k=5&top_p=0.9&block_trigrams=true');
  assert.equal(newer.status, 200, JSON.stringify(newer.body));
  assert.deepEqual(seen.at(-1), {
    sample: true,
    topK: 5,
    topP: 0.9,
    blockTrigrams: true,
    maxLength: 4,
    alternatives: true,
  });
  await answer('');
  assert.deepEqual(
    seen.at(-1),
    { beam: 3, alpha: 0, maxLength: 4, alternatives: true },
    "the service's defaults: --beam, the model's longest caption, the alternatives",
  );

  // the shared limits and rules refuse, named by their wire names; no limit of the service's own beside them
  const shared = [
    ['?alpha=5.5', /alpha must be a number from 0 to 5/],
    ['?beam=1&alpha=1', /alpha .* applies to beam search/],
    ['?beam=2&sample=1', /beam and sample exclude each other/],
    ['?temperature=2', /temperature applies to sample only/],
    ['?beam=2&alternatives=3', /alternatives must be/],
    ['?sample=maybe', /sample="maybe"/],
  ] as const;
  for (const [query, message] of shared) {
    const error = await refusal(await post(server, red, query), 400, 'bad_option');
    assert.match(error.message, message, query);
  }
  assert.equal(seen.length, 4, 'refused options never reach the model');
  const noMemory = await refusal(await post(server, red, '?consensus=5'), 400, 'bad_option');
  assert.match(noMemory.message, /consensus: this model has no caption memory/);
  assert.match(noMemory.fix, /sat export --memory RUN/);
});

test('consensus reranking: on a model with a caption memory, within --max-consensus and --max-consensus-samples', async () => {
  const seen: CaptionOptions[] = [];
  const withMemory: CaptionEngine = {
    info: { ...engine.info, consensus: true },
    dispose: async () => undefined,
    captionBatch: (i, o) => {
      seen.push(o);
      const { consensus, consensusSamples, consensusWeight, ...plain } = o;
      void [consensus, consensusSamples, consensusWeight];
      return engine.captionBatch(i, plain);
    },
  };
  const server = await serve({ batchWaitMs: 0, maxConsensus: 40, maxConsensusSamples: 8 }, async () => withMemory);
  await server.ready;
  const manifest = await (await fetch(`${server.url}/v1/model`)).json();
  assert.deepEqual(manifest.decoding.consensus, { min: 1, max: 40 });
  assert.deepEqual(manifest.decoding.consensus_samples, { min: 0, max: 8, default: 8 });
  assert.deepEqual(manifest.decoding.consensus_weight, { min: 0, max: 100, default: 0.05 });
  assert.equal((await post(server, red, '?consensus=30')).status, 200);
  assert.deepEqual(seen.at(-1), {
    consensus: 30,
    consensusSamples: 8,
    beam: 3,
    alpha: 0,
    maxLength: 4,
    alternatives: true,
  });
  const refused = [
    ['?consensus=41', /consensus must be an integer from 1 to 40/, /--max-consensus/],
    ['?consensus=5&consensus_samples=9', /consensus_samples must be an integer from 0 to 8/, /--max-consensus-samples/],
    ['?consensus_weight=1', /consensus_weight applies to consensus reranking only/, /./],
    ['?consensus=5&sample=1', /consensus reranks beam search's hypotheses/, /./],
  ] as const;
  for (const [query, message, fix] of refused) {
    const error = await refusal(await post(server, red, query), 400, 'bad_option');
    assert.match(error.message, message, query);
    assert.match(`${error.fix} ${error.limit?.name ?? ''}`, fix, query);
  }
  assert.equal(seen.length, 1, 'refused options never reach the model');
});

test('every limit refuses with its status, names the limit and the fix, and never disturbs the requests beside it', async () => {
  const server = await serve({ maxBytes: 4096, maxPixels: 1300 }); // the good images have 40 x 30 = 1200 pixels
  await server.ready;
  const rng = new Rng(3);
  const noise = await sharp(Buffer.from(Array.from({ length: 60 * 60 * 3 }, () => rng.int(256))), {
    raw: { width: 60, height: 60, channels: 3 },
  })
    .png()
    .toBuffer();
  assert.ok(noise.length > 4096);
  const big = new FormData();
  big.append('image', new Blob([new Uint8Array(noise)], { type: 'image/png' }), 'noise.png');
  const corrupt = (await solidImage('#808080', 'jpeg', 30, 20)).subarray(0, 120);
  const wide = await solidImage('#e01010', 'png', 50, 30); // 1500 pixels > 1300
  const form = (fields: Record<string, string>) => {
    const f = new FormData();
    for (const [k, v] of Object.entries(fields)) f.append(k, v);
    return f;
  };

  const cases: [Promise<Response>, number, string, string | null][] = [
    [post(server, noise), 413, 'body_too_large', '--max-bytes'],
    [post(server, big), 413, 'body_too_large', '--max-bytes'],
    [post(server, Buffer.from('plain text'), '', 'text/plain'), 415, 'unsupported_media_type', null],
    [post(server, Buffer.from('{"image": "x"}'), '', 'application/json'), 415, 'unsupported_media_type', null],
    [post(server, Buffer.from('<a/>'), '', 'application/xml'), 415, 'unsupported_media_type', null],
    [post(server, Buffer.alloc(0)), 415, 'not_an_image_body', null],
    [
      post(
        server,
        Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>'),
        '',
        'image/svg+xml',
      ),
      415,
      'not_an_image',
      null,
    ],
    [post(server, Buffer.from('hello, not an image')), 415, 'not_an_image', null],
    [post(server, Buffer.from('GIF89a and then nothing')), 415, 'format_not_enabled', '--image-formats'],
    [post(server, corrupt, '', 'image/jpeg'), 422, 'corrupt_image', null],
    [post(server, wide), 422, 'too_many_pixels', '--max-pixels'],
    [post(server, red, '?beam=0'), 400, 'bad_option', '--max-beam'],
    [post(server, red, '?beam=11'), 400, 'bad_option', '--max-beam'],
    [post(server, red, '?max_length=5'), 400, 'bad_option', null],
    [post(server, red, '?beams=2'), 400, 'unknown_option', null],
    [post(server, form({ note: 'x' })), 400, 'missing_image', null],
  ];
  // valid requests sent in the same moment as the refused ones
  const good = [post(server, red), post(server, blue, '?beam=2', 'image/jpeg'), post(server, red, '?beam=1')];
  for (const [response, status, code, limit] of cases) {
    const error = await refusal(await response, status, code);
    if (limit) assert.equal(error.limit.name, limit, JSON.stringify(error));
  }
  const answers = await Promise.all(good.map(async (r) => (await r).json()));
  assert.deepEqual(
    answers.map((x) => x.caption),
    ['a red square', 'a blue circle', 'a red square'],
  );
  const corruptError = await (await post(server, corrupt, '', 'image/jpeg')).json();
  assert.match(corruptError.error.message, /premature end|corrupt|truncated/i); // sharp's reason
});

test('queue over --max-queue: 503 with Retry-After; past --timeout: 503; the others are answered', async () => {
  const g = gated();
  const server = await serve({ maxQueue: 2, maxBatch: 1, batchWaitMs: 0, timeoutMs: 60_000 }, async () => g.engine);
  await server.ready;
  const first = post(server, red); // runs, held at the gate
  await until(() => g.batches.length === 1);
  const queued = [post(server, blue, '', 'image/jpeg'), post(server, red)];
  await until(async () => (await queueDepth(server)) === 2);
  const full = await post(server, red);
  const error = await refusal(full, 503, 'queue_full');
  assert.equal(error.limit.name, '--max-queue');
  assert.ok(Number(full.headers.get('retry-after')) >= 1);
  for (let i = 1; i <= 3; i++) {
    g.open();
    if (i < 3) await until(() => g.batches.length === i + 1);
  }
  const answered = await Promise.all([first, ...queued].map(async (r) => (await (await r).json()).caption));
  assert.deepEqual(answered, ['a red square', 'a blue circle', 'a red square']);

  const slow = gated();
  const timed = await serve({ timeoutMs: 150, batchWaitMs: 0 }, async () => slow.engine);
  await timed.ready;
  const late = await post(timed, red);
  const lateError = await refusal(late, 503, 'timeout');
  assert.equal(lateError.limit.name, '--timeout');
  slow.open();
  const next = post(timed, blue, '', 'image/jpeg');
  await until(() => slow.batches.length === 2);
  slow.open();
  assert.equal((await (await next).json()).caption, 'a blue circle');
});

test('batching: concurrent requests share model batches, grouped by options, with the answers of one-by-one requests', async () => {
  const server = await serve({ batchWaitMs: 100, maxBatch: 4 });
  await server.ready;
  const requests = [
    [red, 3],
    [blue, 3],
    [red, 1],
    [blue, 3],
    [red, 3],
    [blue, 1],
  ] as const;
  const strip = (a: { caption: string; log_prob: number; words: unknown; alternatives: unknown }) => ({
    caption: a.caption,
    log_prob: a.log_prob,
    words: a.words,
    alternatives: a.alternatives,
  });
  const alone = [];
  for (const [image, beam] of requests)
    alone.push(
      await (await post(server, image, `?beam=${beam}&attention=1`, image === red ? 'image/png' : 'image/jpeg')).json(),
    );
  assert.ok(alone.every((a) => a.batch_size === 1));
  const together = await Promise.all(
    requests.map(async ([image, beam]) =>
      (await post(server, image, `?beam=${beam}&attention=1`, image === red ? 'image/png' : 'image/jpeg')).json(),
    ),
  );
  assert.deepEqual(together.map(strip), alone.map(strip));
  const sizes = together.map((a) => a.batch_size);
  assert.ok(
    sizes.some((s) => s > 1),
    `batch sizes ${sizes}`,
  );
  assert.equal(
    sizes.filter((_, i) => requests[i][1] === 3).every((s) => s <= 4),
    true,
  );
});

test("the engine gives the Captioner API's captions, on both backends and from an export bundle of the same model", async () => {
  const bundleDir = path.join(dir, 'bundle');
  writeBundle(bundleDir, await buildBundle(tiny.run, { encoder: tiny.encoder }));
  const api = await loadCaptioner(tiny.run, { encoder: tiny.encoder, backend: 'native' });
  const engines = [
    await loadCaptionerEngine(tiny.run, { encoder: tiny.encoder, backend: 'native' }),
    await loadCaptionerEngine(bundleDir),
  ];
  try {
    const rgb = await Promise.all([red, blue].map((image) => api.preprocess(image)));
    const expected = await api.captionBatch([red, blue], { beam: 3, alternatives: true });
    assert.deepEqual(
      expected.map((c) => c.caption),
      ['a red square', 'a blue circle'],
    );
    for (const e of engines) {
      assert.equal(e.info.modelId, engine.info.modelId, 'one model, one id, whichever backend or file');
      const { captions } = await e.captionBatch(rgb, { beam: 3, alpha: 0, maxLength: 4, alternatives: true });
      assert.deepEqual(
        captions.map((c) => c.caption),
        expected.map((c) => c.caption),
        e.info.backend,
      );
      captions.forEach((c, i) => {
        assert.ok(
          Math.abs(c.logProb - expected[i].logProb) < 1e-4,
          `${e.info.backend}: log p ${c.logProb} vs ${expected[i].logProb}`,
        );
        assert.deepEqual(
          c.alternatives.map((a) => a.caption),
          expected[i].alternatives.map((a) => a.caption),
        );
      });
    }
    assert.deepEqual(
      engines.map((e) => [e.info.backend, e.info.dtype]),
      [
        ['native', 'fp32'],
        ['onnx', 'fp32'],
      ],
    );
    await assert.rejects(loadCaptionerEngine(bundleDir, { backend: 'native' }), /native backend needs the checkpoint/);
  } finally {
    await api.dispose();
    for (const e of engines) await e.dispose();
  }
});

/** A fake engine whose model thread can die: `kill()` makes it dead; `dieOnNextBatch` kills it as its next batch runs. */
function mortal(name: string): {
  engine: CaptionEngine;
  kill(): void;
  dieOnNextBatch: boolean;
  batches: number;
  disposed: boolean;
} {
  const m = {
    alive: true,
    dieOnNextBatch: false,
    batches: 0,
    disposed: false,
    kill: () => {
      m.alive = false;
    },
    engine: {
      info: engine.info,
      get alive() {
        return m.alive;
      },
      dispose: async () => {
        m.disposed = true;
      },
      captionBatch: async (images: Uint8Array[], options: CaptionOptions) => {
        m.batches++;
        if (m.dieOnNextBatch) {
          m.alive = false;
          throw new Error(`the model thread ${name} crashed: out of memory`);
        }
        return engine.captionBatch(images, options);
      },
    } as CaptionEngine,
  };
  return m;
}

test('a dead model instance takes no more batches: its batch is retried on a live one; none alive: /readyz and captions 503', async () => {
  const [a, b] = [mortal('A'), mortal('B')];
  a.dieOnNextBatch = true;
  const server = await serve({ batchWaitMs: 0 }, async () => [a.engine, b.engine] as unknown as CaptionEngine);
  await server.ready;
  const answers = await Promise.all(
    [red, red, red, red].map(async (image) => (await post(server, image, '?beam=1')).json()),
  );
  assert.deepEqual(
    answers.map((x) => x.caption),
    Array(4).fill('a red square'),
    JSON.stringify(answers),
  );
  assert.equal(a.batches, 1, 'the dead instance got no batch after the one it died on');
  assert.deepEqual(await (await fetch(`${server.url}/readyz`)).json(), {
    status: 'ready',
    model: engine.info.modelId,
    instances: 1,
  });

  b.kill();
  const readyz = await fetch(`${server.url}/readyz`);
  assert.equal(readyz.status, 503);
  assert.match((await readyz.json()).error, /restart sat serve/);
  const error = await refusal(await post(server, red), 503, 'model_unavailable');
  assert.match(error.fix, /restart sat serve/);
  await server.close();
  assert.ok(a.disposed && b.disposed);
});

test('a batch whose instance fails but lives is a 500 naming the cause; a batch on the last instance that dies is a 503', async () => {
  const failing: CaptionEngine = {
    info: engine.info,
    dispose: async () => undefined,
    captionBatch: async () => {
      throw new Error('onnxruntime: bad allocation');
    },
  };
  const server = await serve({}, async () => failing);
  await server.ready;
  const error = await refusal(await post(server, red), 500, 'model_error');
  assert.match(error.message, /onnxruntime: bad allocation/);
  assert.doesNotMatch(error.fix, /bug/);

  const last = mortal('C');
  last.dieOnNextBatch = true;
  const lone = await serve({}, async () => last.engine);
  await lone.ready;
  const gone = await refusal(await post(lone, red), 503, 'model_unavailable');
  assert.match(gone.message, /the model thread C crashed/);
});

test('batcher: "full" counts only jobs with the head\'s settings; a released ticket cannot be submitted', async () => {
  const sizes: number[] = [];
  const counting: CaptionEngine = {
    info: engine.info,
    dispose: async () => undefined,
    captionBatch: async (images, s) => {
      sizes.push(images.length);
      return engine.captionBatch(images, s);
    },
  };
  const batcher = new Batcher(counting, { maxBatch: 2, batchWaitMs: 60_000, maxQueue: 8 });
  const rgb = new Uint8Array(16 * 16 * 3).fill(200);
  const greedy = { beam: 1, alpha: 0, maxLength: 4 },
    beam2 = { beam: 2, alpha: 0, maxLength: 4 };
  const tickets = Array.from({ length: 4 }, () => batcher.reserve());
  const first = batcher.submit(tickets[0], rgb, greedy, 60_000);
  const other = batcher.submit(tickets[1], rgb, beam2, 60_000);
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(
    sizes,
    [],
    'two queued jobs with different settings are not a full batch while a request is on its way',
  );
  const second = batcher.submit(tickets[2], rgb, greedy, 60_000);
  await Promise.all([first, second]);
  assert.deepEqual(sizes, [2]);
  tickets[3].release();
  await other;
  assert.deepEqual(sizes, [2, 1]);
  await assert.rejects(batcher.submit(tickets[3], rgb, greedy, 60_000), TicketReleasedError);
});

/** POST the first half of `body` and stop sending; resolves with the status the server answers (0: connection closed). */
function stalledUpload(url: string, body: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const request = http.request(`${url}/v1/captions`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'image/png', 'content-length': body.length },
    });
    request.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    request.on('error', () => resolve(0));
    request.write(body.subarray(0, body.length >> 1));
  });
}

test('--timeout bounds reading the body: a stalled upload holds an upload place, never a queue place, is cut off, and cannot hold up close()', async () => {
  const server = await serve({ timeoutMs: 400, maxUploads: 1, maxQueue: 1, minUploadRate: 0, batchWaitMs: 0 });
  await server.ready;
  const stalled = stalledUpload(server.url, red);
  await until(async () => (await uploadsInFlight(server)) === 1);
  assert.equal(await queueDepth(server), 0, 'a body still arriving takes no queue place');
  const full = await refusal(await post(server, blue, '', 'image/jpeg'), 503, 'uploads_full');
  assert.equal(full.limit.name, '--max-uploads');
  assert.ok([0, 408].includes(await stalled), 'the stalled upload is answered 408 or its connection closed');
  await until(async () => (await uploadsInFlight(server)) === 0);
  assert.equal((await (await post(server, blue, '', 'image/jpeg')).json()).caption, 'a blue circle');

  const again = stalledUpload(server.url, red);
  await until(async () => (await uploadsInFlight(server)) === 1);
  const t0 = performance.now();
  await server.close();
  assert.ok(
    performance.now() - t0 < 400 + CLOSE_MARGIN_MS + 1000,
    `close() took ${Math.round(performance.now() - t0)} ms`,
  );
  assert.ok([0, 408, 503].includes(await again));
});

test('a hung model cannot hang close(): its requests get 503 at --timeout, then the instance is disposed', async () => {
  let disposed = false,
    running = false;
  const hung: CaptionEngine = {
    info: engine.info,
    dispose: async () => {
      disposed = true;
    },
    captionBatch: () => {
      running = true;
      return new Promise(() => undefined);
    },
  };
  const server = await serve({ timeoutMs: 300, batchWaitMs: 0 }, async () => hung);
  await server.ready;
  const pending = post(server, red);
  await until(() => running);
  const t0 = performance.now();
  const closed = server.close();
  await refusal(await pending, 503, 'timeout');
  await closed;
  assert.ok(disposed);
  assert.ok(
    performance.now() - t0 < 300 + CLOSE_MARGIN_MS + 1000,
    `close() took ${Math.round(performance.now() - t0)} ms`,
  );
});

test('the page is optional: a server without its files answers the API and says at GET / why there is no page', async () => {
  const server = await serve({
    page: { none: 'this installation of show-attend-tell has no dist/page (run `npm run build`)' },
  });
  await server.ready;
  const error = await refusal(await fetch(`${server.url}/`), 404, 'not_found');
  assert.match(error.message, /npm run build/);
  assert.equal((await post(server, red)).status, 200);
  // what an installed package reads is what it ships
  const files = (JSON.parse(fs.readFileSync('package.json', 'utf8')) as { files: string[] }).files;
  for (const dir of Object.values(BUILD_FOLDERS)) assert.ok(files.includes(dir), `package.json "files" ships ${dir}`);
});

test("sharp's loaders: SVG is refused while a server runs and decodes again once the last one closed", async () => {
  const svg = Buffer.from(
    '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8" fill="red"/></svg>',
  );
  for (const s of servers) await s.close();
  const red = [0xff, 0, 0];
  assert.deepEqual([...(await loadRgb(svg, 16)).subarray(0, 3)], red);
  const server = await serve();
  await assert.rejects(loadRgb(svg, 16), /not an image/);
  await server.close();
  const after = await loadRgb(svg, 16);
  assert.equal(after.length, 16 * 16 * 3);
  assert.deepEqual([...after.subarray(0, 3)], red);
});

test("sat bench serve: sat serve's flags with its names and defaults; the old --encoder-threads still read, with a note", async () => {
  const { default: bench } = await import('../src/cli/bench.js');
  const { SERVE_OPTIONS, serveOptionsFromArgs } = await import('../src/cli/serve.js');
  const { parseCommandArgs } = await import('../src/cli/command.js');
  const { serveBenchOptionsFromArgs } = await import('../src/cli/bench-serve.js');
  const parse = (...argv: string[]) => {
    const notes: string[] = [];
    const o = serveBenchOptionsFromArgs(
      parseCommandArgs(bench, ['serve', '--model', 'm', '--images', 'i', ...argv]).values,
      (n) => notes.push(n),
    );
    return { o, notes };
  };
  const { o, notes } = parse();
  const served = serveOptionsFromArgs(
    parseCommandArgs({ name: 'serve', summary: '', usage: '', options: SERVE_OPTIONS, run: async () => undefined }, [])
      .values,
  );
  assert.deepEqual(
    { ...o.server, maxQueue: 0 },
    {
      backend: SERVE_OPTIONS.backend.default,
      instances: Number(SERVE_OPTIONS.instances.default),
      threads: Number(SERVE_OPTIONS.threads.default),
      blasThreads: Number(SERVE_OPTIONS['blas-threads'].default),
      maxBatch: served.maxBatch,
      batchWaitMs: served.batchWaitMs,
      maxQueue: 0,
    },
  );
  assert.deepEqual(notes, []);
  assert.equal(parse('--threads', '3', '--peer-threads', '4').o.server.threads, 3);
  assert.equal(parse('--threads', '3', '--peer-threads', '4').o.peerThreads, 4);
  const old = parse('--encoder-threads', '5');
  assert.equal(old.o.server.threads, 5);
  assert.match(old.notes.join('\n'), /--encoder-threads is now --threads/);
  assert.match(parse('--threads', '3').notes.join('\n'), /--peer-threads/);
});

test('docs/serve-errors.md lists every code of the refusal catalogue with its status', () => {
  const doc = fs.readFileSync('docs/serve-errors.md', 'utf8');
  const listed = new Map([...doc.matchAll(/^\| `(\w+)` \| (\d+) \|/gm)].map((m) => [m[1], Number(m[2])]));
  assert.deepEqual(
    Object.fromEntries(listed),
    Object.fromEntries(Object.values(ERRORS).map((e) => [e.code, e.status])),
  );
});
