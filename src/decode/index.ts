/**
 * Caption many images with any CaptionModel: greedy, beam search or the TF tutorial's sampling, in batches of
 * `batchSize` images (x beams) per model call. Used by `sat caption` and by per-epoch validation.
 */
import type { AsyncDecoderModel, DecoderModel, DecoderModelBase } from '../model/types.js';
import { decodeBeam } from './beam.js';
import { argmaxChooser, categoricalChooser, forbiddenTokens, imageRng } from './logits.js';
import { runSearch, runSearchAsync, type Search } from './search.js';
import { decodeStepwise } from './stepwise.js';
import type { DecodedCaption, DecodeOptions, DecodeVocab } from './types.js';
import type { Vocabulary } from '../vocab/vocabulary.js';

export type { CaptionAlternative, DecodedCaption, DecodeOptions, DecodeStrategy, DecodeVocab } from './types.js';

export const DEFAULT_DECODE_BATCH = 64;

/** The decoding view of a vocabulary (ids of the special tokens and the id -> word lookup). */
export function decodeVocab(vocab: Vocabulary): DecodeVocab {
  return { pad: vocab.padId, start: vocab.startId, end: vocab.endId, unk: vocab.unkId, word: (id) => vocab.words[id] ?? '<unk>' };
}

/** Decodes features [n, L, C] (row-major, as the feature store reads them) into n captions. */
export function decodeImages(model: DecoderModel, features: Float32Array, n: number, vocab: DecodeVocab,
                             opts: DecodeOptions): DecodedCaption[] {
  return runSearch(model, decodeImagesSearch(model, features, n, vocab, opts));
}

/** decodeImages on an asynchronous model (the ONNX backends): the same search, the same captions. */
export function decodeImagesAsync(model: AsyncDecoderModel, features: Float32Array, n: number, vocab: DecodeVocab,
                                  opts: DecodeOptions): Promise<DecodedCaption[]> {
  return runSearchAsync(model, decodeImagesSearch(model, features, n, vocab, opts));
}

/** The search behind decodeImages: batches of images, each decoded with the chosen strategy. */
export function* decodeImagesSearch(model: DecoderModelBase, features: Float32Array, n: number, vocab: DecodeVocab,
                                    opts: DecodeOptions): Search<DecodedCaption[]> {
  const { locations: L, channels: C } = model.config;
  if (features.length !== n * L * C) {
    throw new Error(`features hold ${features.length} floats, expected n * L * C = ${n} * ${L} * ${C} = ${n * L * C}`);
  }
  if (!Number.isInteger(opts.maxLength) || opts.maxLength < 1) throw new Error(`maxLength must be an integer >= 1, got ${opts.maxLength}`);
  const batch = opts.batchSize ?? DEFAULT_DECODE_BATCH;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`batchSize must be an integer >= 1, got ${batch}`);
  const forbidden = forbiddenTokens(vocab, opts.suppressUnk);
  const strategy = opts.strategy;
  const repeat = opts.samplesPerImage ?? 1;
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`samplesPerImage must be an integer >= 1, got ${opts.samplesPerImage}`);
  if (repeat > 1 && strategy.kind === 'beam') throw new Error('samplesPerImage > 1 is for sampling; beam search returns one caption per image');
  if (opts.alternatives && strategy.kind !== 'beam') throw new Error('alternatives are the hypotheses of a beam search: use strategy beam');

  const out: DecodedCaption[] = [];
  for (let first = 0; first < n; first += batch) {
    const count = Math.min(batch, n - first);
    const slice = features.subarray(first * L * C, (first + count) * L * C);
    if (strategy.kind === 'beam') {
      out.push(...yield* decodeBeam(model, slice, count, vocab,
        { beam: strategy.beam, alpha: strategy.alpha ?? 0, maxLength: opts.maxLength, forbidden, alternatives: opts.alternatives }));
    } else {
      const chooser = strategy.kind === 'greedy'
        ? () => argmaxChooser
        : (imageOf: (row: number) => number) => {
            // One stream per image index of the whole call, created lazily.
            const seed = strategy.seed ?? 0;
            const rngs = new Map<number, ReturnType<typeof imageRng>>();
            return categoricalChooser(strategy.temperature ?? 1, (row) => {
              const image = ((opts.firstImage ?? 0) + first) * repeat + imageOf(row);  // one stream per output caption
              let rng = rngs.get(image);
              if (!rng) rngs.set(image, (rng = imageRng(seed, image)));
              return rng;
            });
          };
      out.push(...yield* decodeStepwise(model, slice, count, vocab, { maxLength: opts.maxLength, forbidden, chooser, repeat }));
    }
    opts.onBatch?.(first + count);
  }
  return out;
}
