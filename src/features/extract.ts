/**
 * Feature extraction: image files -> encoder -> fp16 feature store, resumable and tolerant of bad files.
 *
 * Pipeline (double-buffered, so decoding overlaps inference):
 *
 *   decode batch k+1 (sharp, libuv thread pool)  ─┐
 *   run batch k (onnxruntime, its own threads)   ─┴─> fp16 encode + append + commit (fsync) -> next k
 *
 * Images already in the store are not decoded again, so rerunning after a crash or a kill -9 resumes where
 * the last committed batch ended. A file that cannot be read (missing, not an image, corrupt/truncated,
 * too many pixels) is skipped with a message naming it and listed in the store's skipped.json; it is
 * retried on the next run, in case it was fixed.
 */
import type { EncoderModel } from '../encoders/types.js';
import { writeJsonAtomic } from '../util/atomic-write.js';
import { ProgressBar } from '../util/progress.js';
import { encodeHalf } from './fp16.js';
import { readSkipped, skippedPath, type SkippedImage } from './format.js';
import { DEFAULT_MAX_PIXELS, ImageLoadError, loadRgb } from './image.js';
import type { OnnxImageEncoder } from './onnx-encoder.js';
import { mirrorRgb, writeImageToBatch, type ImageInputOptions } from './pixels.js';
import { createEncoderRunner } from './node-onnxruntime.js';
import { FeatureStoreWriter } from './store-writer.js';

export interface ImageRef {
  id: string;
  path: string;
  /** Store the features of the image mirrored left to right (its id is then mirroredId of the image's). */
  mirror?: boolean;
}

export interface ExtractOptions {
  images: ImageRef[];
  model: EncoderModel;
  /** Store folder (created or resumed). */
  dir: string;
  /** Images per onnxruntime run. Default DEFAULT_BATCH. */
  batchSize?: number;
  /** onnxruntime intra-op threads. */
  threads?: number;
  /** onnxruntime pool threads spin-wait between ops (see RunnerOptions.spin). */
  spin?: boolean;
  maxPixels?: number;
  slice?: { index: number; count: number } | null;
  shardMaxBytes?: number;
  /** Progress bar label; `false` hides the bar (tests, benchmarks). */
  progress?: string | false;
  /** Where skip messages go (default: stderr). */
  log?: (line: string) => void;
  /** Reuse an already created runner (benchmarks create one session for several repeats). */
  runner?: OnnxImageEncoder;
  /** Awaited after each committed batch (the kill -9 test uses it to pace a child process). */
  afterBatch?: (storedSoFar: number) => void | Promise<void>;
}

export interface ExtractResult {
  /** Unique images asked for. */
  requested: number;
  /** Already in the store before this run (resumed). */
  alreadyStored: number;
  /** Stored by this run. */
  stored: number;
  skipped: SkippedImage[];
  seconds: number;
}

/**
 * Images per onnxruntime run. On CPU the batch size barely changes the CPU time per image; 8 keeps the decode of
 * the next batch long enough to hide behind inference and the batch buffers small (2 x 8.6 MB for InceptionV3).
 */
export const DEFAULT_BATCH = 8;
const MAX_SKIP_MESSAGES = 20;

/** The deterministic slice `index` of `count` (0-based) of an image list: every count-th image in id order. */
export function selectSlice<T extends { id: string }>(images: T[], index: number, count: number): T[] {
  const sorted = [...images].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return sorted.filter((_, k) => k % count === index);
}

interface DecodedBatch {
  ok: ImageRef[];
  failed: SkippedImage[];
  buffer: Float32Array;
}

export async function extractFeatures(opts: ExtractOptions): Promise<ExtractResult> {
  const { model } = opts;
  const { spec } = model;
  const start = Date.now();
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));

  const unique = new Map<string, ImageRef>();
  for (const im of opts.images) if (!unique.has(im.id)) unique.set(im.id, im);
  const writer = FeatureStoreWriter.open(opts.dir, {
    spec,
    shardMaxBytes: opts.shardMaxBytes,
    slice: opts.slice,
    requested: unique.size,
  });
  const alreadyStored = [...unique.keys()].filter((id) => writer.has(id)).length;
  const todo = [...unique.values()].filter((im) => !writer.has(im.id));

  const runner = opts.runner ?? (await createEncoderRunner(model, { threads: opts.threads, spin: opts.spin }));
  const batchSize = Math.max(1, Math.min(opts.batchSize ?? DEFAULT_BATCH, runner.maxBatch));
  const input: ImageInputOptions = {
    size: spec.inputSize,
    scaling: spec.scaling,
    layout: spec.inputLayout,
    maxPixels: opts.maxPixels ?? DEFAULT_MAX_PIXELS,
  };
  const perImageIn = 3 * spec.inputSize * spec.inputSize;
  const buffers = [new Float32Array(batchSize * perImageIn), new Float32Array(batchSize * perImageIn)];
  const perImageOut = spec.locations * spec.channels;
  const halves = new Uint16Array(perImageOut);

  // Previously skipped images outside this request stay listed; those inside it are retried now.
  const skipped = readSkipped(opts.dir).filter((s) => !unique.has(s.id) && !writer.has(s.id));
  const newlySkipped: SkippedImage[] = [];
  if (alreadyStored > 0 && opts.progress !== false) {
    log(
      `sat features: resuming ${opts.dir}: ${alreadyStored} of ${unique.size} images already stored, ${todo.length} to go`,
    );
  }
  const bar =
    opts.progress === false
      ? undefined
      : new ProgressBar({ total: todo.length, label: opts.progress ?? `features ${spec.id}`, unit: 'img' });

  let stored = 0;
  try {
    const batches: ImageRef[][] = [];
    for (let i = 0; i < todo.length; i += batchSize) batches.push(todo.slice(i, i + batchSize));
    let next = batches.length > 0 ? decodeBatch(batches[0], buffers[0], input) : undefined;
    for (let k = 0; k < batches.length; k++) {
      const cur = await next!;
      next = k + 1 < batches.length ? decodeBatch(batches[k + 1], buffers[(k + 1) % 2], input) : undefined;
      for (const f of cur.failed) {
        newlySkipped.push(f);
        if (newlySkipped.length <= MAX_SKIP_MESSAGES) log(`${bar ? '\n' : ''}sat features: skipped ${f.reason}`);
        else if (newlySkipped.length === MAX_SKIP_MESSAGES + 1)
          log('sat features: more skipped images; the full list goes to skipped.json');
      }
      if (cur.ok.length > 0) {
        const features = await runner.run(cur.buffer, cur.ok.length); // [n, locations, channels]
        cur.ok.forEach((im, i) => {
          encodeHalf(features.subarray(i * perImageOut, (i + 1) * perImageOut), halves);
          writer.append(im.id, halves);
        });
        writer.commit();
        stored += cur.ok.length;
      }
      if (cur.failed.length > 0) writeJsonAtomic(skippedPath(opts.dir), [...skipped, ...newlySkipped]);
      bar?.tick(batches[k].length, newlySkipped.length ? `skipped ${newlySkipped.length}` : undefined);
      await opts.afterBatch?.(stored);
    }
    writeJsonAtomic(skippedPath(opts.dir), [...skipped, ...newlySkipped]);
    writer.markComplete(true);
    bar?.finish();
  } finally {
    writer.close();
    if (!opts.runner) await runner.release();
  }
  return { requested: unique.size, alreadyStored, stored, skipped: newlySkipped, seconds: (Date.now() - start) / 1000 };
}

/** Decode a batch concurrently into `buffer`; successes are packed to the front in order. */
async function decodeBatch(batch: ImageRef[], buffer: Float32Array, input: ImageInputOptions): Promise<DecodedBatch> {
  const results = await Promise.allSettled(batch.map((im) => loadRgb(im.path, input.size, input.maxPixels)));
  const ok: ImageRef[] = [];
  const failed: SkippedImage[] = [];
  results.forEach((r, i) => {
    const im = batch[i];
    if (r.status === 'fulfilled') {
      writeImageToBatch(im.mirror ? mirrorRgb(r.value, input.size) : r.value, buffer, ok.length, input);
      ok.push(im);
    } else {
      const err = r.reason as Error;
      const known = err instanceof ImageLoadError;
      failed.push({
        id: im.id,
        path: im.path,
        kind: known ? err.kind : 'error',
        reason: known ? err.message : `${im.path}: ${err.message}`,
      });
    }
  });
  return { ok, failed, buffer };
}
