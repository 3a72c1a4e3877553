/**
 * Decode images straight from a feature store (e.g. the dev split after every epoch): features are read
 * one decoding batch at a time, so memory stays at batchSize x L x C floats however many images there are
 * (1000 InceptionV3 images at once would be 1000 x 64 x 2048 floats = 0.5 GB).
 */
import type { FeatureStoreReader } from '../features/types.js';
import type { DecoderModel } from '../model/types.js';
import { ProgressBar } from '../util/progress.js';
import { UserError } from '../util/errors.js';
import { yieldToEventLoop } from '../util/event-loop.js';
import { decodeImages, DEFAULT_DECODE_BATCH } from './index.js';
import type { DecodedCaption, DecodeOptions, DecodeVocab } from './types.js';

export interface StoreDecodeOptions extends DecodeOptions {
  /** Progress bar label, or false for none (default: a bar labelled "decode"). */
  progress?: string | false;
}

/** Captions for `ids` (in that order) from their stored features. */
export function decodeStoreImages(
  model: DecoderModel,
  store: FeatureStoreReader,
  ids: readonly string[],
  vocab: DecodeVocab,
  opts: StoreDecodeOptions,
): DecodedCaption[] {
  const out: DecodedCaption[] = [];
  for (const captions of decodeStoreBatches(model, store, ids, vocab, opts)) out.push(...captions);
  return out;
}

/**
 * As decodeStoreImages, but the event loop runs between decoding batches, so a SIGINT handler (the
 * trainer's Ctrl-C) gets to run during a long validation pass; once `shouldStop()` is true the pass
 * stops and this returns null. A yield per batch (tens of images, ~0.1 s or more) costs nothing measurable.
 */
export async function decodeStoreImagesInterruptible(
  model: DecoderModel,
  store: FeatureStoreReader,
  ids: readonly string[],
  vocab: DecodeVocab,
  opts: StoreDecodeOptions & { shouldStop: () => boolean },
): Promise<DecodedCaption[] | null> {
  const out: DecodedCaption[] = [];
  for (const captions of decodeStoreBatches(model, store, ids, vocab, opts)) {
    out.push(...captions);
    await yieldToEventLoop();
    if (opts.shouldStop()) return null;
  }
  return out;
}

/** The captions of one decoding batch at a time (features read per batch; see the file comment). */
function* decodeStoreBatches(
  model: DecoderModel,
  store: FeatureStoreReader,
  ids: readonly string[],
  vocab: DecodeVocab,
  opts: StoreDecodeOptions,
): Generator<DecodedCaption[]> {
  const { locations: L, channels: C } = model.config;
  if (store.locations !== L || store.channels !== C) {
    throw new UserError(
      `feature store "${store.encoderId}" holds [${store.locations} x ${store.channels}] features but the model expects [${L} x ${C}].`,
    );
  }
  const missing = ids.filter((id) => !store.has(id));
  if (missing.length > 0) {
    throw new UserError(
      `${missing.length} image(s) have no stored features (first: ${missing[0]}); run \`sat features\` for them first.`,
    );
  }
  const { progress, onBatch, batchSize, ...decodeOptions } = opts as StoreDecodeOptions & { shouldStop?: unknown };
  delete decodeOptions.shouldStop;
  const batch = batchSize ?? DEFAULT_DECODE_BATCH;
  const bar =
    progress === false ? undefined : new ProgressBar({ total: ids.length, label: progress ?? 'decode', unit: 'img' });
  const buffer = new Float32Array(Math.min(batch, Math.max(ids.length, 1)) * L * C);
  try {
    for (let first = 0; first < ids.length; first += batch) {
      const chunk = ids.slice(first, first + batch);
      chunk.forEach((id, i) => store.read(id, buffer, i * L * C));
      const captions = decodeImages(model, buffer.subarray(0, chunk.length * L * C), chunk.length, vocab, {
        ...decodeOptions,
        batchSize: chunk.length,
      });
      bar?.tick(chunk.length);
      onBatch?.(first + chunk.length);
      yield captions;
    }
  } finally {
    bar?.finish(); // also when the consumer stops early (interrupted), so the next log line starts on its own line
  }
}
