/**
 * `sat serve`: the captioning service over HTTP (fastify). This file holds the options and the lifecycle: it
 * builds the app (hooks, the error mapping, the routes of src/serve/routes/), listens, loads the model in the
 * background and closes. The routes:
 *
 *   POST /v1/captions   routes/captions.ts
 *   GET  /v1/model      routes/model.ts
 *   GET  /healthz, /readyz, /metrics   routes/health.ts
 *   GET  /, /assets/*, /v1/bundle/*, /assets/web/*   routes/files.ts
 *
 * The server listens before the model is loaded; captions are refused with 503 until it is. Every refusal is a
 * JSON error from the catalogue (src/serve/errors.ts) naming the limit and the fix. The service reads only the
 * bytes a client sends: it never opens a path or URL named in a request.
 *
 * A refusal sent before the request's body was read (413, 408, 415 ...) is followed by a lingering close
 * (src/serve/linger.ts): the client can finish sending and read it, where an immediate close would reset the
 * connection under its feet.
 *
 * Time bounds: a request's headers and body must arrive within --timeout (else the connection gets 408 and is
 * closed, and its queue place is given back), and its caption within --timeout of its arrival (else 503). close()
 * waits at most --timeout + CLOSE_MARGIN_MS for the requests in flight, then for the model to stop.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import multipart from '@fastify/multipart';
import type { CaptionerInfo } from '../decode/captioner-api.js';
import type { CaptionEngine } from './engine.js';
import { ERRORS, fromFastifyError, refuse, Refusal } from './errors.js';
import { blockUntrustedLoaders, imageCacheBytes, sizeImageCache } from './images.js';
import { installLingeringClose, isLingering, lingerAfterAnswer } from './linger.js';
import { checkHostAndOrigin, preflightRoute } from './origin.js';
import { ServeMetrics } from './metrics.js';
import { CLOSE_MARGIN_MS, DEFAULT_SERVE_OPTIONS, type ServeOptions } from './options.js';
import { captionRoutes } from './routes/captions.js';
import { fileRoutes } from './routes/files.js';
import { healthRoutes } from './routes/health.js';
import { modelRoutes } from './routes/model.js';
import { ModelService, within, type ServeContext } from './service.js';

export { CLOSE_MARGIN_MS, DEFAULT_SERVE_OPTIONS, type ServeOptions } from './options.js';

export interface CaptionServer {
  app: FastifyInstance;
  /** http://host:port of the listening socket. */
  url: string;
  /** Resolves when the model is loaded; rejects with the loader's error. */
  ready: Promise<CaptionerInfo>;
  /**
   * Stop taking requests, answer those in flight (within --timeout + CLOSE_MARGIN_MS; connections still open then are
   * closed), then stop the model instances (a batch still running is abandoned). Rejects, after all that, when an
   * instance could not be stopped (a model thread stuck in native code: only ending the process stops it).
   */
  close(): Promise<void>;
}

/**
 * Start listening at once; load the engine in the background (GET /readyz says when it is there). Several
 * engines are instances of one model that run batches side by side.
 */
export async function startServer(
  loadEngine: () => Promise<CaptionEngine | CaptionEngine[]>,
  options: Partial<ServeOptions> = {},
): Promise<CaptionServer> {
  const opts: ServeOptions = { ...DEFAULT_SERVE_OPTIONS, ...options };
  const metrics = new ServeMetrics(opts.maxBatch);
  const service = new ModelService(opts, metrics);
  const app = await buildApp({ opts, metrics, service });

  sizeImageCache(opts.imageCacheMb);
  metrics.watchImageCache(imageCacheBytes);
  const unblockLoaders = blockUntrustedLoaders();
  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (e) {
    unblockLoaders();
    throw e;
  }
  const address = app.server.address();
  const url =
    typeof address === 'object' && address
      ? `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
      : String(address);

  const ready = service.load(loadEngine);
  ready.catch(() => undefined); // observed by the caller; /readyz reports it meanwhile

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      service.beginClosing();
      // Every admitted request has its answer within --timeout (its body and its caption have that deadline).
      const graceEnds = performance.now() + opts.timeoutMs + CLOSE_MARGIN_MS;
      const closed = app.close(); // stops listening, waits for requests in flight
      const answered = await within(Promise.all([closed, service.drained()]), graceEnds - performance.now());
      app.server.closeIdleConnections();
      if (!answered) app.server.closeAllConnections();
      await closed;
      unblockLoaders();
      await service.dispose(graceEnds - performance.now());
    })());
  return { app, url, ready, close };
}

/** The fastify app: its HTTP limits, body parsers, hooks, error mapping and routes. */
async function buildApp(ctx: ServeContext): Promise<FastifyInstance> {
  const { opts, metrics, service } = ctx;
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
    http: {
      connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.min(opts.timeoutMs, opts.headersTimeoutMs) / 4)),
      headersTimeout: Math.min(opts.headersTimeoutMs, opts.timeoutMs),
    },
    // No proxy headers are trusted: the client is the socket's peer.
    clientErrorHandler: (error, socket) => answerClientError(error, socket, ctx),
  });
  // Only images are read: no JSON or text body is ever parsed (fastify's default parsers would, up to --max-bytes).
  app.removeAllContentTypeParsers();
  await app.register(multipart, {
    limits: {
      fileSize: opts.maxBytes,
      files: 1,
      fields: 16,
      fieldSize: 64,
      fieldNameSize: 32,
      parts: 17,
      headerPairs: 50,
    },
  });
  for (const type of ['application/octet-stream', /^image\/[\w.+-]+$/i]) {
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit: opts.maxBytes }, (_req, body, done) =>
      done(null, body),
    );
  }
  app.server.maxConnections = opts.maxConnections;
  endStalledConnections(app.server, opts);
  installLingeringClose(app.server, opts, lingerMetrics(metrics));
  app.addHook('onRequest', checkHostAndOrigin(opts));

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    if (route === '/v1/captions') metrics.latency.observe({ route }, reply.elapsedTime / 1000);
  });
  // While closing, every answer ends its connection, so kept-alive clients do not hold the shutdown open.
  app.addHook('onSend', async (_request, reply) => {
    if (service.state === 'closing') reply.header('connection', 'close');
  });

  app.setErrorHandler((error: FastifyError | Refusal, request, reply) => {
    const refusal = error instanceof Refusal ? error : fromFastifyError(error as FastifyError, opts.maxBytes);
    if (!refusal) {
      request.log.error(error);
      return reply.status(500).send(refuse(ERRORS.internal, error.message).toJSON());
    }
    if (request.routeOptions.url === '/v1/captions') metrics.refusals.inc({ reason: refusal.code });
    return reply.status(refusal.status).headers(refusal.headers).send(refusal.toJSON());
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send(refuse(ERRORS.not_found, `${request.method} ${request.url.split('?')[0]}`).toJSON());
  });

  healthRoutes(app, ctx);
  const browser = fileRoutes(app, opts);
  modelRoutes(app, ctx, browser);
  captionRoutes(app, ctx);
  preflightRoute(app);
  return app;
}

/**
 * A connection whose first request has begun but whose headers have not all arrived within --headers-timeout is
 * ended (Node's own headersTimeout misses headers begun late). One that has sent nothing at all is ended then too
 * while more than half of --max-connections are open (an attack holding connections); otherwise it may idle until
 * the connection timeout, as browsers' pre-opened connections do.
 */
function endStalledConnections(server: FastifyInstance['server'], opts: ServeOptions): void {
  const answered = new WeakSet<Socket>();
  let open = 0;
  server.on('request', (request: { socket: Socket }) => answered.add(request.socket));
  server.on('connection', (socket: Socket) => {
    open++;
    const stalled = setTimeout(
      () => {
        if (answered.has(socket)) return;
        if (socket.bytesRead > 0 || open > opts.maxConnections / 2) socket.destroy();
      },
      Math.min(opts.headersTimeoutMs, opts.timeoutMs),
    ).unref();
    socket.once('close', () => {
      open--;
      clearTimeout(stalled);
    });
  });
}

const lingerMetrics = (metrics: ServeMetrics) => ({
  onStart: () => metrics.lingering.inc(),
  onEnd: (why: string) => {
    metrics.lingering.dec();
    metrics.lingerEnds.inc({ why });
  },
});

/**
 * Node's own refusals (a request that did not arrive within --timeout or --headers-timeout, a malformed request,
 * headers too large) as catalogue answers, followed by a lingering close instead of fastify's reset.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Socket, { opts, metrics }: ServeContext): void {
  if (error.code === 'ECONNRESET' || socket.destroyed || isLingering(socket)) return;
  const refusal =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? refuse(ERRORS.request_timeout, `not all of it within ${opts.timeoutMs / 1000} s`, {
          value: opts.timeoutMs / 1000,
        })
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? refuse(ERRORS.headers_too_large)
        : refuse(ERRORS.bad_request, `HTTP parse error ${error.code ?? ''}`.trim());
  metrics.refusals.inc({ reason: refusal.code });
  // A response already begun on this connection cannot be followed by another.
  const answering = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !answering?.headersSent) {
    const body = JSON.stringify(refusal.toJSON());
    const headers = Object.entries(refusal.headers).map(([k, v]) => `${k}: ${v}\r\n`);
    socket.write(
      `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n${headers.join('')}Connection: close\r\n\r\n${body}`,
    );
  }
  lingerAfterAnswer(socket, opts, lingerMetrics(metrics));
}
