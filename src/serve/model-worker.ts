/**
 * The model's thread: loads the CaptionEngine and captions the batches the server thread sends, one at a
 * time, so encoding and decoding (both synchronous native code) never block the server's event loop.
 *
 * Messages in:  { type: 'batch', id, images: Uint8Array[], options: CaptionOptions } | { type: 'close' }
 * Messages out: { type: 'ready', info, details (+ warmup: { images, seconds }) } | { type: 'failed', message, userError }
 *               { type: 'result', id, result } | { type: 'error', id, message }
 */
import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import type { Bundle } from '../export/bundle-backend.js';
import { UserError } from '../util/errors.js';
import { loadCaptionerEngine, type EngineOptions } from './captioner-adapter.js';
import type { CaptionOptions } from '../decode/captioner-api.js';
import type { CaptionEngine } from './engine.js';

export interface ModelWorkerData {
  source: string;
  options: EngineOptions;
  /** The bundle `source` was exported to, its files in SharedArrayBuffers (one copy for every model thread). */
  exported?: Bundle;
  /**
   * Caption a batch of this many blank images with these options before reporting ready: onnxruntime's memory
   * then grows to the largest batch's at start, not under load, and the first requests do not pay for it.
   */
  warmup?: { images: number; options: CaptionOptions };
}

type Incoming = { type: 'batch'; id: number; images: Uint8Array[]; options: CaptionOptions } | { type: 'close' };

const port = parentPort!;
const { source, options, exported, warmup } = workerData as ModelWorkerData;

let engine: CaptionEngine;
try {
  engine = await loadCaptionerEngine(source, options, exported);
  const warmed = warmup && warmup.images > 0 ? { warmup: await warmUp(engine, warmup) } : {};
  port.postMessage({ type: 'ready', info: engine.info, details: { ...engine.details, ...warmed } });
} catch (e) {
  port.postMessage({ type: 'failed', message: (e as Error).message, userError: e instanceof UserError });
  port.close();
}

let work = Promise.resolve();
port.on('message', (m: Incoming) => {
  if (m.type === 'close') {
    work = work.then(async () => {
      await engine.dispose();
      port.close();
    });
    return;
  }
  work = work.then(async () => {
    try {
      const result = await engine.captionBatch(m.images, m.options);
      result.threadHeapBytes = getHeapStatistics().used_heap_size;
      port.postMessage({ type: 'result', id: m.id, result });
    } catch (e) {
      port.postMessage({ type: 'error', id: m.id, message: (e as Error).message });
    }
  });
});

/** One batch of blank (mid-grey) images, so the runtime's buffers reach their size for a full batch. */
async function warmUp(engine: CaptionEngine, warmup: NonNullable<ModelWorkerData['warmup']>) {
  const side = engine.info.inputSize;
  const t0 = performance.now();
  const blank = () => new Uint8Array(side * side * 3).fill(128);
  await engine.captionBatch(Array.from({ length: warmup.images }, blank), warmup.options);
  return { images: warmup.images, seconds: Math.round(performance.now() - t0) / 1000 };
}
