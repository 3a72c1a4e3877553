/**
 *   POST /v1/captions   image (raw image/* body or multipart field "image") -> caption, words (with attention
 *                       grids when asked), beam alternatives, model id, timings
 *
 * A request takes a place in the queue as it arrives (refused when --max-queue are taken), reads its body,
 * decodes its image and joins a batch; it is answered within --timeout of its arrival, or refused.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { CaptionerInfo, CaptionResult } from '../../decode/captioner-api.js';
import { DeadlineError, EngineFailure, NoEngineError, QueueFullError, TicketReleasedError, type Ticket } from '../batcher.js';
import { ERRORS, refuse } from '../errors.js';
import { decodeImage } from '../images.js';
import type { ServeOptions } from '../options.js';
import { parseOptions, readCaptionRequest, wireName, type CaptionRequestOptions } from '../request.js';
import type { ServeContext } from '../service.js';

const round = (x: number, digits = 6) => Number(x.toPrecision(digits));
const ms = (x: number) => Math.round(x * 10) / 10;

export function captionRoutes(app: FastifyInstance, { service, opts, metrics }: ServeContext): void {
  const ticketOf = new WeakMap<FastifyRequest, Ticket>();
  // A request's queue place is given back however it ends: answered, refused or aborted.
  app.addHook('onResponse', async (request) => ticketOf.get(request)?.release());
  app.addHook('onRequestAbort', async (request) => ticketOf.get(request)?.release());

  app.post('/v1/captions', {
    onRequest: async (request) => {
      if (!service.accepting) throw service.notReady();
      try {
        ticketOf.set(request, service.batcher!.reserve());
      } catch (e) {
        if (!(e instanceof QueueFullError)) throw e;
        throw refuse(ERRORS.queue_full, `${e.depth} requests are waiting`, { value: opts.maxQueue, retryAfter: e.retryAfterS });
      }
    },
  }, async (request) => {
    const ticket = ticketOf.get(request)!;
    const { image, raw } = await readCaptionRequest(request, opts.maxBytes);
    const info = service.engine!.info;
    const parsed = parseOptions(raw, { maxBeam: opts.maxBeam, defaultBeam: opts.defaultBeam, maxLength: info.maxLength });
    const t0 = performance.now();
    const rgb = await decodeImage(image, info.inputSize, opts.maxPixels);
    const imageMs = performance.now() - t0;
    const elapsed = performance.now() - ticket.admittedAt;
    if (elapsed >= opts.timeoutMs) throw timeoutRefusal(new DeadlineError(elapsed, 'queued'), opts);
    let result;
    try {
      result = await service.batcher!.submit(ticket, rgb, parsed.options, opts.timeoutMs);
    } catch (e) {
      if (e instanceof EngineFailure || e instanceof NoEngineError) request.log.error({ err: e }, 'the model could not caption this request');
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
        image: ms(imageMs), queue: ms(result.queueMs), model: ms(result.modelMs),
        total: ms(performance.now() - ticket.admittedAt),
      },
    };
  });
}

function timeoutRefusal(e: DeadlineError, opts: ServeOptions) {
  return refuse(ERRORS.timeout, `${opts.timeoutMs / 1000} s (waited ${Math.round(e.waitedMs)} ms, ${e.stage === 'queued' ? 'still queued' : 'its batch still running'})`,
    { value: opts.timeoutMs / 1000 });
}

/** A caption job that did not end in a caption, as the answer to its request. */
function batchRefusal(e: Error, opts: ServeOptions): Error {
  if (e instanceof DeadlineError) return timeoutRefusal(e, opts);
  if (e instanceof NoEngineError) return refuse(ERRORS.model_unavailable, e.lastFailure ? `the last one stopped: ${e.lastFailure.message}` : undefined);
  if (e instanceof EngineFailure) return refuse(ERRORS.model_error, e.message);
  if (e instanceof TicketReleasedError) return refuse(ERRORS.client_closed);
  return e;
}

/** The options a caption was made with: beam, alpha, max_length and attention, and whatever else the client named. */
function echo({ options, attention, given }: CaptionRequestOptions): Record<string, unknown> {
  const out: Record<string, unknown> = { beam: options.beam ?? 1, alpha: options.alpha ?? 0, max_length: options.maxLength, attention };
  for (const [key, value] of Object.entries(options)) if (given.includes(wireName(key))) out[wireName(key)] = value;
  return out;
}

function captionJson(c: CaptionResult, attention: boolean, info: CaptionerInfo) {
  const [h, w] = info.grid;
  const asGrid = (a: Float32Array) => Array.from({ length: h }, (_, r) => Array.from(a.subarray(r * w, (r + 1) * w), (x) => round(x, 4)));
  return {
    caption: c.caption,
    finished: c.finished,
    log_prob: round(c.logProb),
    words: c.words.map((w) => (attention ? { word: w.word, attention: asGrid(w.attention) } : { word: w.word })),
    ...(attention ? { attention_grid: info.grid } : {}),
    alternatives: c.alternatives.map((a) => ({ caption: a.caption, log_prob: round(a.logProb), score: round(a.score), finished: a.finished })),
  };
}
