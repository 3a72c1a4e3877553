/**
 * What the HTTP service needs from a captioning model, and nothing more: its facts (the Captioner API's
 * CaptionerInfo) and a way to caption a batch of already-decoded images with one set of CaptionOptions (the
 * Captioner API's, passed down unchanged). The server, the batcher and the model worker only see this interface;
 * src/serve/captioner-adapter.ts implements it over the Captioner API (src/decode/captioner-api.ts).
 *
 * Shapes: N images, S = info.inputSize, L = attention locations (grid h x w).
 */
import type { CaptionerInfo, CaptionOptions, CaptionResult } from '../decode/captioner-api.js';

export interface BatchResult {
  /** As the Captioner API gives them: words with their attention [h * w], the beam's alternatives when asked. */
  captions: CaptionResult[];
  /** Milliseconds the whole batch spent in the model (encoder batch + decoder batch). */
  modelMs: number;
  /** V8 heap used on the model's thread once the batch was done (engines on a thread of their own). */
  threadHeapBytes?: number;
}

export interface CaptionEngine {
  readonly info: CaptionerInfo;
  /** What the model's files say about it (created at, decoder sizes, training epochs ...), for GET /v1/model. */
  readonly details?: Record<string, unknown>;
  /** False once the engine can take no more batches (its model thread crashed or exited); absent: always alive. */
  readonly alive?: boolean;
  /** True while not alive but coming back (its thread being replaced, src/serve/supervisor.ts). */
  readonly recovering?: boolean;
  /** Called each time the engine is alive again after recovering. */
  onRevive?(listener: () => void): void;
  /** Caption N images, each RGB uint8 [S, S, 3] as the encoder takes it, with one set of (checked) options. */
  captionBatch(images: Uint8Array[], options: CaptionOptions): Promise<BatchResult>;
  dispose(): Promise<void>;
}
