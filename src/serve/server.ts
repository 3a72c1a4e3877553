/**
 * `sat serve`: the captioning service over HTTP (fastify).
 *
 *   POST /v1/captions   image (raw image/* body or multipart field "image") -> caption, words (with attention
 *                       grids when asked), beam alternatives, model id, timings
 *   GET  /v1/model      what is loaded: model id, encoder, attention grid, vocabulary, decoding defaults, limits
 *   GET  /healthz       the process is up
 *   GET  /readyz        the model is loaded and the server takes requests (503 while loading or closing)
 *   GET  /metrics       Prometheus text
 *   GET  /              the web page (src/web/page), /assets/* its files
 *   GET  /v1/bundle/*   the export bundle of the served model, for captioning in the browser (onnxruntime-web)
 *   GET  /assets/web/*  the browser build of show-attend-tell/web that the page loads to do that
 *
 * The server listens before the model is loaded; captions are refused with 503 until it is. Every
 * refusal is a JSON error naming the limit and the fix (src/serve/refusal.ts). The service reads only
 * the bytes a client sends: it never opens a path or URL named in a request.
 *
 * Time bounds: a request's headers and body must arrive within --timeout (else the connection gets 408 and is
 * closed, and its queue place is given back), and its caption within --timeout of its arrival (else 503). close()
 * waits at most --timeout + CLOSE_MARGIN_MS for the requests in flight, then for the model to stop.
 *
 * While a server runs, sharp's image loaders are blocked process-wide except IMAGE_LOADERS (libvips can only block
 * and unblock them globally); when the last server of the process closes, every loader is unblocked again.
 */
import fs from 'node:fs';
import fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import sharp from 'sharp';
import type { CaptionResult } from '../decode/captioner-api.js';
import { ImageLoadError, loadRgb } from '../features/image.js';
import { Batcher, DeadlineError, EngineFailure, NoEngineError, QueueFullError, TicketReleasedError, type Ticket } from './batcher.js';
import type { CaptionEngine, EngineInfo } from './engine.js';
import { ServeMetrics } from './metrics.js';
import { PAGE_ROUTES, pageFiles, webBuildFiles } from './page-assets.js';
import { formatBytes, Refusal } from './refusal.js';
import type { FileSource, PublishedFile } from './static-files.js';
import { bodyTooLarge, parseOptions, readCaptionRequest, type CaptionOptions } from './request.js';

export interface ServeOptions {
  host: string;
  port: number;
  maxBytes: number;
  maxPixels: number;
  maxQueue: number;
  maxBatch: number;
  batchWaitMs: number;
  timeoutMs: number;
  maxBeam: number;
  defaultBeam: number;
  /** fastify's request log (pino, JSON lines on stdout). */
  log?: boolean;
  /** The export bundle published at /v1/bundle/ for the page's in-browser captioning (default: none). */
  bundle?: FileSource;
  /** The browser build of show-attend-tell/web published at /assets/web/ (default: this package's, webBuildFiles). */
  webBuild?: FileSource;
  /** The web page's files (index.html, style.css, app.js) served at / and /assets/ (default: this package's, pageFiles). */
  page?: FileSource;
}

export const DEFAULT_SERVE_OPTIONS: ServeOptions = {
  host: '127.0.0.1', port: 8080, maxBytes: 10 * 1024 * 1024, maxPixels: 50_000_000, maxQueue: 64, maxBatch: 8,
  batchWaitMs: 5, timeoutMs: 30_000, maxBeam: 10, defaultBeam: 3,
};

/** Image formats decoded from request bodies; every other libvips loader (SVG, PDF, ...) stays blocked. */
const IMAGE_LOADERS = ['VipsForeignLoadJpeg', 'VipsForeignLoadPng', 'VipsForeignLoadWebp', 'VipsForeignLoadNsgif', 'VipsForeignLoadTiff', 'VipsForeignLoadHeif'];

/** Servers of this process that block sharp's other loaders; the last one to close unblocks them. */
let loaderBlockers = 0;
function blockUntrustedLoaders(): () => void {
  if (loaderBlockers++ === 0) {
    sharp.block({ operation: ['VipsForeignLoad'] });
    sharp.unblock({ operation: IMAGE_LOADERS });
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--loaderBlockers === 0) sharp.unblock({ operation: ['VipsForeignLoad'] });
  };
}

/** close() gives the requests in flight --timeout plus this, then stops the model whatever it is doing. */
export const CLOSE_MARGIN_MS = 1000;

export interface CaptionServer {
  app: FastifyInstance;
  /** http://host:port of the listening socket. */
  url: string;
  /** Resolves when the model is loaded; rejects with the loader's error. */
  ready: Promise<EngineInfo>;
  /**
   * Stop taking requests, answer those in flight (within --timeout + CLOSE_MARGIN_MS; connections still open then are
   * closed), then stop the model instances (a batch still running is abandoned). Rejects, after all that, when an
   * instance could not be stopped (a model thread stuck in native code: only ending the process stops it).
   */
  close(): Promise<void>;
}

type State = 'loading' | 'ready' | 'closing' | 'failed';

const round = (x: number, digits = 6) => Number(x.toPrecision(digits));
const ms = (x: number) => Math.round(x * 10) / 10;

/**
 * Start listening at once; load the engine in the background (GET /readyz says when it is there). Several
 * engines are instances of one model that run batches side by side.
 */
export async function startServer(loadEngine: () => Promise<CaptionEngine | CaptionEngine[]>, options: Partial<ServeOptions> = {}): Promise<CaptionServer> {
  const opts: ServeOptions = { ...DEFAULT_SERVE_OPTIONS, ...options };
  const metrics = new ServeMetrics(opts.maxBatch);
  let state: State = 'loading';
  let engine: CaptionEngine | null = null;
  let batcher: Batcher | null = null;
  let loadError: Error | null = null;

  const app = fastify({
    logger: opts.log ? { level: 'info' } : false,
    bodyLimit: opts.maxBytes,
    // While closing, requests on kept-alive connections are answered by the routes: captions refused (shutting_down), with the others
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    // A request (headers and body) must arrive within --timeout: a slow upload cannot hold its queue place longer.
    // Node answers 408 and closes the connection; it checks every connectionsCheckingInterval.
    requestTimeout: opts.timeoutMs,
    // A connection with no traffic at all for longer than any request may take is closed.
    connectionTimeout: opts.timeoutMs + CLOSE_MARGIN_MS,
    http: { connectionsCheckingInterval: Math.min(1000, Math.max(50, opts.timeoutMs / 4)), headersTimeout: Math.min(60_000, opts.timeoutMs) },
    // No proxy headers are trusted: the client is the socket's peer.
  });
  await app.register(multipart, {
    limits: { fileSize: opts.maxBytes, files: 1, fields: 8, fieldSize: 64, fieldNameSize: 32, parts: 10, headerPairs: 50 },
  });
  for (const type of ['application/octet-stream', /^image\/[\w.+-]+$/i]) {
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit: opts.maxBytes }, (_req, body, done) => done(null, body));
  }

  const ticketOf = new WeakMap<FastifyRequest, Ticket>();
  app.addHook('onResponse', async (request, reply) => {
    ticketOf.get(request)?.release();
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    if (route === '/v1/captions') metrics.latency.observe({ route }, reply.elapsedTime / 1000);
  });
  // While closing, every answer ends its connection, so kept-alive clients do not hold the shutdown open.
  app.addHook('onSend', async (_request, reply) => { if (state === 'closing') reply.header('connection', 'close'); });
  app.addHook('onRequestAbort', async (request) => ticketOf.get(request)?.release());

  app.setErrorHandler((error: FastifyError | Refusal, request, reply) => {
    const refusal = error instanceof Refusal ? error : asRefusal(error as FastifyError, opts);
    if (!refusal) {
      request.log.error(error);
      return reply.status(500).send({ error: { status: 500, code: 'internal', message: error.message, fix: 'this is a bug in sat serve: please report it with the request and the server log (start sat serve with --log).' } });
    }
    if (request.routeOptions.url === '/v1/captions') metrics.refusals.inc({ reason: refusal.code });
    return reply.status(refusal.status).headers(refusal.headers).send(refusal.toJSON());
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send(new Refusal(404, 'not_found', `no route ${request.method} ${request.url.split('?')[0]}.`,
      'see GET /v1/model and POST /v1/captions; the page is at GET /.').toJSON());
  });

  const notReady = () => {
    if (state === 'failed') return new Refusal(503, 'model_failed', `the model could not be loaded: ${loadError?.message}`, 'fix the model and restart sat serve.');
    if (state === 'ready' && batcher?.liveEngines === 0) return noEngineRefusal(null);
    if (state === 'closing') return new Refusal(503, 'shutting_down', 'the server is shutting down.', 'send the request to another instance, or retry once it is back.', undefined, { 'retry-after': '5' });
    return new Refusal(503, 'model_loading', 'the model is still loading.', 'retry in a few seconds; GET /readyz answers 200 once it is loaded.', undefined, { 'retry-after': '2' });
  };

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (state !== 'ready') return reply.status(503).send({ status: state, ...(loadError ? { error: loadError.message } : {}) });
    const alive = batcher!.liveEngines;
    if (alive === 0) return reply.status(503).send({ status: 'no_model', error: 'no model instance is running (their threads stopped): restart sat serve' });
    return { status: 'ready', model: engine!.info.id, instances: alive };
  });
  app.get('/metrics', async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  app.get('/v1/model', async () => {
    if (!engine) throw notReady();
    return { ...manifest(engine.info, opts), browser };
  });
  const bundle = opts.bundle ?? { none: 'this server publishes no export bundle of its model' };
  const webBuild = opts.webBuild ?? webBuildFiles();
  const page = opts.page ?? pageFiles();
  /** One file of `source`, or a refusal saying why there is none. */
  const fileOf = async (source: FileSource, name: string, where: string, noneFix: string): Promise<PublishedFile> => {
    if ('none' in source) throw new Refusal(404, 'not_found', `no file ${where}: ${source.none}.`, noneFix);
    let files;
    try {
      files = await source.files();
    } catch (e) {
      throw new Refusal(503, 'not_available', `${where} cannot be made: ${(e as Error).message}`, 'fix the cause named here; the next request tries again.');
    }
    const found = files.get(name);
    if (!found) throw new Refusal(404, 'not_found', `no file ${where}.`, `the files here are: ${[...files.keys()].join(', ')}.`);
    return found;
  };
  const sendFile = (reply: FastifyReply, found: PublishedFile) => {
    reply.type(found.type).header('content-length', found.size).header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff');
    return reply.send(found.body ? Buffer.from(found.body.buffer, found.body.byteOffset, found.body.byteLength) : fs.createReadStream(found.file!));
  };
  for (const [route, name] of Object.entries(PAGE_ROUTES)) {
    app.get(route, async (_request, reply) =>
      sendFile(reply, await fileOf(page, name, route, 'the API (POST /v1/captions, GET /v1/model) works without the page.')));
  }
  const publish = (prefix: string, source: FileSource) => {
    app.get(`${prefix}:name`, async (request, reply) =>
      sendFile(reply, await fileOf(source, (request.params as { name: string }).name, request.url.split('?')[0], 'the page\'s in-browser captioning is off on this server.')));
  };
  publish('/v1/bundle/', bundle);
  publish('/assets/web/', webBuild);
  const browser = 'none' in bundle || 'none' in webBuild
    ? { available: false, reason: 'none' in bundle ? bundle.none : (webBuild as { none: string }).none }
    : { available: true, module: '/assets/web/show-attend-tell.mjs', bundle: '/v1/bundle/' };

  app.post('/v1/captions', {
    onRequest: async (request) => {
      if (state !== 'ready' || !batcher || batcher.liveEngines === 0) throw notReady();
      try {
        ticketOf.set(request, batcher.reserve());
      } catch (e) {
        if (!(e instanceof QueueFullError)) throw e;
        throw new Refusal(503, 'queue_full', `the queue is full: ${e.depth} requests are waiting.`,
          `retry after ${e.retryAfterS} s (Retry-After), or start sat serve with a larger --max-queue.`,
          { name: '--max-queue', value: opts.maxQueue }, { 'retry-after': String(e.retryAfterS) });
      }
    },
  }, async (request) => {
    const ticket = ticketOf.get(request)!;
    const { image, raw } = await readCaptionRequest(request, opts.maxBytes);
    const info = engine!.info;
    const options = parseOptions(raw, { maxBeam: opts.maxBeam, defaultBeam: opts.defaultBeam, maxLength: info.maxLength });
    const t0 = performance.now();
    const rgb = await decodeImage(image, info.encoder.inputSize, opts.maxPixels);
    const imageMs = performance.now() - t0;
    const elapsed = performance.now() - ticket.admittedAt;
    if (elapsed >= opts.timeoutMs) throw timeoutRefusal(new DeadlineError(elapsed, 'queued'), opts);
    let result;
    try {
      result = await batcher!.submit(ticket, rgb, { beam: options.beam, alpha: options.alpha, maxLength: options.maxLength }, opts.timeoutMs);
    } catch (e) {
      if (e instanceof EngineFailure || e instanceof NoEngineError) request.log.error({ err: e }, 'the model could not caption this request');
      throw batchRefusal(e as Error, opts);
    }
    metrics.stage.observe({ stage: 'image' }, imageMs / 1000);
    metrics.stage.observe({ stage: 'queue' }, result.queueMs / 1000);
    return {
      model: info.id,
      ...captionJson(result.caption, options, info),
      options: { beam: options.beam, alpha: options.alpha, max_length: options.maxLength, attention: options.attention },
      batch_size: result.batchSize,
      timings_ms: {
        image: ms(imageMs), queue: ms(result.queueMs), model: ms(result.modelMs),
        total: ms(performance.now() - ticket.admittedAt),
      },
    };
  });

  const unblockLoaders = blockUntrustedLoaders();
  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (e) {
    unblockLoaders();
    throw e;
  }
  const address = app.server.address();
  const url = typeof address === 'object' && address
    ? `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}` : String(address);

  let loading: Promise<CaptionEngine | CaptionEngine[]>;
  const ready = (loading = loadEngine()).then((loaded) => {
    const instances = Array.isArray(loaded) ? loaded : [loaded];
    engine = instances[0];
    batcher = new Batcher(instances, opts, {
      onBatch: (size, modelMs) => {
        metrics.batchSize.observe(size);
        metrics.stage.observe({ stage: 'model' }, modelMs / 1000);
      },
      onQueueDepth: (depth) => metrics.queueDepth.set(depth),
    });
    if (state === 'loading') state = 'ready';
    return engine.info;
  }, (e: Error) => {
    state = 'failed';
    loadError = e;
    throw e;
  });
  ready.catch(() => undefined); // observed by the caller; /readyz reports it meanwhile

  let closing: Promise<void> | null = null;
  const close = () => closing ??= (async () => {
    if (state !== 'failed') state = 'closing';
    // Every admitted request has its answer within --timeout (its body and its caption have that deadline).
    const graceEnds = performance.now() + opts.timeoutMs + CLOSE_MARGIN_MS;
    const closed = app.close(); // stops listening, answers 503 on kept-alive connections, waits for requests in flight
    const answered = await within(Promise.all([closed, batcher?.drained()]), graceEnds - performance.now());
    app.server.closeIdleConnections();
    if (!answered) app.server.closeAllConnections();
    await closed;
    unblockLoaders();
    const loaded = await within(loading.catch(() => []), graceEnds - performance.now());
    if (!loaded) return void loading.then(disposeAll).catch(() => undefined); // still loading: stopped once it is loaded
    await disposeAll(loaded);
  })();
  return { app, url, ready, close };
}

/** Resolves with `promise`'s value, or with undefined once `ms` have passed. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), Math.max(0, ms)); });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Stop every instance; rejects, once all were asked, with the reasons of those that would not stop. */
async function disposeAll(loaded: CaptionEngine | CaptionEngine[]): Promise<void> {
  const results = await Promise.allSettled((Array.isArray(loaded) ? loaded : [loaded]).map((e) => e.dispose()));
  const failed = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
  if (failed.length > 0) throw new Error(failed.join('; '));
}

/** A caption job that did not end in a caption, as the answer to its request. */
function batchRefusal(e: Error, opts: ServeOptions): Error {
  if (e instanceof DeadlineError) return timeoutRefusal(e, opts);
  if (e instanceof NoEngineError) return noEngineRefusal(e);
  if (e instanceof EngineFailure) {
    return new Refusal(500, 'model_error', `the model failed on this image's batch: ${e.message}`,
      'retry once; if it fails again, the server log has the details (start sat serve with --log): report it with the image.');
  }
  if (e instanceof TicketReleasedError) return new Refusal(499, 'client_closed', 'the client closed the request before it was captioned.', 'none: nobody is waiting for this answer.');
  return e;
}

function noEngineRefusal(e: NoEngineError | null): Refusal {
  return new Refusal(503, 'model_unavailable', e ? `${e.message}.` : 'no model instance is running: their threads stopped.',
    'restart sat serve (a supervisor does this when GET /readyz answers 503); the server log says why the model stopped.', undefined, { 'retry-after': '5' });
}

async function decodeImage(image: Uint8Array, size: number, maxPixels: number): Promise<Uint8Array> {
  try {
    return await loadRgb(image, size, maxPixels, 'the uploaded image');
  } catch (e) {
    if (!(e instanceof ImageLoadError)) throw e;
    if (e.kind === 'too-large') {
      throw new Refusal(422, 'too_many_pixels', `the image has more than ${maxPixels} pixels (${e.message}).`,
        'send a smaller image (downscale it first), or start sat serve with a larger --max-pixels.', { name: '--max-pixels', value: maxPixels });
    }
    // including a format whose loader is blocked here (SVG, PDF ...)
    if (e.kind === 'not-an-image') {
      throw new Refusal(415, 'not_an_image', e.message, 'send a JPEG, PNG, WebP, GIF, TIFF or AVIF/HEIF image.');
    }
    throw new Refusal(422, 'corrupt_image', e.message, 'the image data is truncated or damaged: send the file again, or re-save it with an image editor.');
  }
}

function timeoutRefusal(e: DeadlineError, opts: ServeOptions): Refusal {
  return new Refusal(503, 'timeout', `no caption within --timeout ${opts.timeoutMs / 1000} s (waited ${Math.round(e.waitedMs)} ms, ${e.stage === 'queued' ? 'still queued' : 'its batch still running'}).`,
    'retry later, when the server is less busy, or start sat serve with a larger --timeout.', { name: '--timeout', value: opts.timeoutMs / 1000 }, { 'retry-after': '1' });
}

/** fastify's own refusals (body limit, content type, multipart limits) in the service's format. */
function asRefusal(error: FastifyError, opts: ServeOptions): Refusal | null {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
      return bodyTooLarge(opts.maxBytes);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return new Refusal(415, 'unsupported_media_type', `Content-Type ${JSON.stringify(error.message.split(': ').pop())} is not accepted.`,
        'send the image as the body with Content-Type image/jpeg (image/png, ...), or as the field "image" of a multipart/form-data form.');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new Refusal(400, 'bad_content_length', 'the Content-Length header does not match the body.', 'send the body with a correct Content-Length.');
    case 'FST_PARTS_LIMIT':
    case 'FST_FILES_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new Refusal(413, 'form_too_large', `the form has too many parts (${error.message}).`, 'send one file "image" and at most the fields beam, alpha, max_length and attention.');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new Refusal(415, 'not_an_image_body', 'the body is JSON, not an image.', 'send the image bytes as the body with Content-Type image/jpeg, or as the multipart field "image".');
    default:
      if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
        return new Refusal(error.statusCode, 'bad_request', error.message, 'check the request against GET /v1/model and the README.');
      }
      return null;
  }
}

function captionJson(c: CaptionResult, options: CaptionOptions, info: EngineInfo) {
  const [h, w] = info.grid;
  const asGrid = (a: Float32Array) => Array.from({ length: h }, (_, r) => Array.from(a.subarray(r * w, (r + 1) * w), (x) => round(x, 4)));
  return {
    caption: c.caption,
    finished: c.finished,
    log_prob: round(c.logProb),
    words: c.words.map((w) => (options.attention ? { word: w.word, attention: asGrid(w.attention) } : { word: w.word })),
    ...(options.attention ? { attention_grid: info.grid } : {}),
    alternatives: c.alternatives.map((a) => ({ caption: a.caption, log_prob: round(a.logProb), score: round(a.score), finished: a.finished })),
  };
}

function manifest(info: EngineInfo, opts: ServeOptions) {
  return {
    id: info.id,
    backend: info.backend,
    dtype: info.dtype,
    encoder: { id: info.encoder.id, input_size: info.encoder.inputSize, locations: info.encoder.locations },
    attention_grid: info.grid,
    vocab_size: info.vocabSize,
    decoding: { beam: { default: opts.defaultBeam, max: opts.maxBeam }, alpha: { default: 0, max: 5 }, max_length: { default: info.maxLength, max: info.maxLength } },
    limits: {
      max_bytes: opts.maxBytes, max_bytes_text: formatBytes(opts.maxBytes), max_pixels: opts.maxPixels, max_queue: opts.maxQueue,
      max_batch: opts.maxBatch, batch_wait_ms: opts.batchWaitMs, timeout_s: opts.timeoutMs / 1000,
    },
    inputs: { image: 'raw body (Content-Type image/*) or multipart field "image"', formats: ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif/heif'] },
    model: info.details,
  };
}
