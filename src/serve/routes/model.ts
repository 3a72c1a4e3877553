/**
 *   GET /v1/model   what is loaded: model id, encoder, attention grid, vocabulary, decoding defaults and ranges,
 *                   the server's limits, and whether the page can caption in the browser
 */
import type { FastifyInstance } from 'fastify';
import type { EngineInfo } from '../engine.js';
import { formatBytes } from '../errors.js';
import type { ServeOptions } from '../options.js';
import type { ServeContext } from '../service.js';
import type { BrowserSupport } from './files.js';

export function modelRoutes(app: FastifyInstance, { service, opts }: ServeContext, browser: BrowserSupport): void {
  app.get('/v1/model', async () => {
    if (!service.engine) throw service.notReady();
    return { ...manifest(service.engine.info, opts), browser };
  });
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
