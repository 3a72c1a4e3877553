/**
 *   POST /v1/captions   image (raw image/* body or multipart field "image") -> caption, words (with attention
 *                       grids when asked), beam alternatives, model id, timings
 *
 * A request's way through: its headers arrive -> it takes an upload place (--max-uploads; src/serve/uploads.ts)
 * -> its body arrives -> it gives the upload place back and takes a queue place (--max-queue) -> its image is
 * decoded -> it joins a batch -> answered within --timeout of its arrival, or refused. A client that disconnects
 * takes its job with it: still queued, the job leaves the queue.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { CaptionerInfo, CaptionResult } from '../../decode/captioner-api.js';
import {
  CancelledError,
  DeadlineError,
  EngineFailure,
  NoEngineError,
  QueueFullError,
  TicketReleasedError,
  type Ticket,
} from '../batcher.js';
import { ERRORS, refuse } from '../errors.js';
import { decodeImage } from '../images.js';
import type { ServeOptions } from '../options.js';
import { parseOptions, readCaptionRequest, serviceCaps, wireName, type CaptionRequestOptions } from '../request.js';
import type { ServeContext } from '../service.js';
import { UploadTracker, type Upload } from '../uploads.js';

const round = (x: number, digits = 6) => Number(x.toPrecision(digits));
const ms = (x: number) => Math.round(x * 10) / 10;

/** What a caption request holds while it runs; all of it is given back however the request ends. */
interface Held {
  arrivedAt: number;
  upload?: Upload;
  ticket?: Ticket;
  gone: AbortController;
}

export function captionRoutes(app: FastifyInstance, { service, opts, metrics }: ServeContext): void {
  const uploads = new UploadTracker(opts, (n) => metrics.uploads.set(n));
  const held = new WeakMap<FastifyRequest, Held>();
  const release = (request: FastifyRequest) => {
    const h = held.get(request);
    if (!h) return;
    if (h.upload) uploads.finish(h.upload);
    h.ticket?.release();
  };
  app.addHook('onResponse', async (request) => release(request));
  app.addHook('onRequestAbort', async (request) => {
    held.get(request)?.gone.abort();
    release(request);
  });

  app.post(
    '/v1/captions',
    {
      onRequest: async (request, reply) => {
        if (!service.accepting) throw service.notReady();
        const socket = request.raw.socket;
        const upload: Upload = {
          socket,
          startedAt: performance.now(),
          startBytes: socket.bytesRead,
          complete: () => request.raw.complete,
          cut: (refusal) => {
            metrics.refusals.inc({ reason: refusal.code });
            if (!reply.sent)
              reply
                .code(refusal.status)
                .headers({ ...refusal.headers, connection: 'close' })
                .send(refusal.toJSON());
            // Connection: close ends it in a lingering close (src/serve/linger.ts) once the answer is written; if
            // the answer cannot be written (the client reads nothing), it is closed once --linger has passed.
            setTimeout(() => socket.destroy(), opts.lingerMs + 1000).unref();
          },
        };
        const h: Held = { arrivedAt: upload.startedAt, gone: new AbortController() };
        held.set(request, h);
        // the connection closed before the answer was sent: the client is gone
        reply.raw.once('close', () => {
          if (!reply.raw.writableFinished) h.gone.abort();
        });
        uploads.admit(upload);
        held.get(request)!.upload = upload;
      },
    },
    async (request) => {
      const h = held.get(request)!;
      const { image, raw } = await readCaptionRequest(request, opts.maxBytes);
      uploads.finish(h.upload!);
      const info = service.engine!.info;
      const parsed = parseOptions(raw, serviceCaps(opts, info));
      // admitted before a shutdown began: still answered (close() waits for it)
      if (service.liveInstances === 0) throw service.notReady();
      try {
        h.ticket = service.batcher!.reserve(h.arrivedAt);
      } catch (e) {
        if (!(e instanceof QueueFullError)) throw e;
        throw refuse(ERRORS.queue_full, `${e.depth} requests are waiting`, {
          value: opts.maxQueue,
          retryAfter: e.retryAfterS,
        });
      }
      const t0 = performance.now();
      const rgb = await decodeImage(image, info.inputSize, opts);
      const imageMs = performance.now() - t0;
      const elapsed = performance.now() - h.arrivedAt;
      if (elapsed >= opts.timeoutMs) throw timeoutRefusal(new DeadlineError(elapsed, 'queued'), opts);
      let result;
      try {
        result = await service.batcher!.submit(h.ticket, rgb, parsed.options, opts.timeoutMs, h.gone.signal);
      } catch (e) {
        if (e instanceof EngineFailure || e instanceof NoEngineError)
          request.log.error({ err: e }, 'the model could not caption this request');
        throw batchRefusal(e as Error, opts);
      }
      metrics.stage.observe({ stage: 'image' }, imageMs / 1000);
      metrics.stage.observe({ stage: 'queue' }, result.queueMs / 1000);
      return {
        model: info.modelId,
        ...captionJson(result.caption, parsed.attention, info),
        options: echo(parsed),
        batch_size: result.batchSize,
        timings_ms: {
          image: ms(imageMs),
          queue: ms(result.queueMs),
          model: ms(result.modelMs),
          total: ms(performance.now() - h.arrivedAt),
        },
      };
    },
  );
}

function timeoutRefusal(e: DeadlineError, opts: ServeOptions) {
  return refuse(
    ERRORS.timeout,
    `${opts.timeoutMs / 1000} s (waited ${Math.round(e.waitedMs)} ms, ${e.stage === 'queued' ? 'still queued' : 'its batch still running'})`,
    { value: opts.timeoutMs / 1000 },
  );
}

/** A caption job that did not end in a caption, as the answer to its request. */
function batchRefusal(e: Error, opts: ServeOptions): Error {
  if (e instanceof DeadlineError) return timeoutRefusal(e, opts);
  if (e instanceof NoEngineError)
    return refuse(
      ERRORS.model_unavailable,
      e.lastFailure ? `the last one stopped: ${e.lastFailure.message}` : undefined,
    );
  if (e instanceof EngineFailure) return refuse(ERRORS.model_error, e.message);
  if (e instanceof TicketReleasedError || e instanceof CancelledError) return refuse(ERRORS.client_closed);
  return e;
}

/** The options a caption was made with: beam, alpha, max_length and attention, and whatever else the client named. */
function echo({ options, attention, given }: CaptionRequestOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {
    beam: options.beam ?? 1,
    alpha: options.alpha ?? 0,
    max_length: options.maxLength,
    attention,
  };
  for (const [key, value] of Object.entries(options)) if (given.includes(wireName(key))) out[wireName(key)] = value;
  return out;
}

function captionJson(c: CaptionResult, attention: boolean, info: CaptionerInfo) {
  const [h, w] = info.grid;
  const asGrid = (a: Float32Array) =>
    Array.from({ length: h }, (_, r) => Array.from(a.subarray(r * w, (r + 1) * w), (x) => round(x, 4)));
  return {
    caption: c.caption,
    finished: c.finished,
    log_prob: round(c.logProb),
    words: c.words.map((w) => (attention ? { word: w.word, attention: asGrid(w.attention) } : { word: w.word })),
    ...(attention ? { attention_grid: info.grid } : {}),
    alternatives: c.alternatives.map((a) => ({
      caption: a.caption,
      log_prob: round(a.logProb),
      score: round(a.score),
      finished: a.finished,
    })),
  };
}
