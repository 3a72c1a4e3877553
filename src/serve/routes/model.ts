/**
 *   GET /v1/model   what is loaded: model id, encoder, attention grid, vocabulary, decoding defaults and ranges,
 *                   the server's limits, and whether the page can caption in the browser
 */
import type { FastifyInstance } from 'fastify';
import type { CaptionEngine } from '../engine.js';
import { formatBytes } from '../errors.js';
import type { ServeOptions } from '../options.js';
import { optionRanges, serviceCaps } from '../request.js';
import type { ServeContext } from '../service.js';
import type { BrowserSupport } from './files.js';

export function modelRoutes(app: FastifyInstance, { service, opts }: ServeContext, browser: BrowserSupport): void {
  app.get('/v1/model', async () => {
    if (!service.engine) throw service.notReady();
    return { ...manifest(service.engine, opts), browser };
  });
}

function manifest({ info, details }: CaptionEngine, opts: ServeOptions) {
  return {
    id: info.modelId,
    backend: info.backend,
    dtype: info.dtype,
    encoder: { id: info.encoderId, input_size: info.inputSize, locations: info.locations },
    attention_grid: info.grid,
    vocab_size: info.vocabSize,
    /** The caption options (query or form fields) and their ranges; attention (true/false) is the service's own. */
    decoding: optionRanges(serviceCaps(opts, info)),
    limits: {
      max_bytes: opts.maxBytes,
      max_bytes_text: formatBytes(opts.maxBytes),
      max_pixels: opts.maxPixels,
      max_queue: opts.maxQueue,
      max_batch: opts.maxBatch,
      batch_wait_ms: opts.batchWaitMs,
      timeout_s: opts.timeoutMs / 1000,
      max_uploads: opts.maxUploads,
      min_upload_rate: opts.minUploadRate,
      upload_grace_s: opts.uploadGraceMs / 1000,
      headers_timeout_s: opts.headersTimeoutMs / 1000,
      max_connections: opts.maxConnections,
      image_timeout_s: opts.imageTimeoutMs / 1000,
    },
    inputs: {
      image: 'raw body (Content-Type image/* or application/octet-stream) or multipart field "image"',
      formats: opts.imageFormats,
    },
    model: details ?? {},
  };
}
