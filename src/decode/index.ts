/**
 * Caption many images with any CaptionModel (or an ensemble of them, ensemble.ts): greedy, beam search (plain or
 * diverse) or sampling (temperature, top-k, top-p), with trigram blocking and suppressed tokens as logits
 * processors, in batches of `batchSize` images (x beams) per model call. The options are the Captioner API's
 * (src/decode/options.ts), checked by the same function. Used by `sat caption`, `sat eval` and per-epoch validation.
 */
import type { AsyncDecoderModel, DecoderModel, DecoderModelBase } from '../model/types.js';
import { decodeBeam } from './beam.js';
import {
  argmaxChooser,
  blockRepeatedNgrams,
  categoricalChooser,
  forbiddenTokens,
  imageRng,
  processorList,
  suppressTokens,
  type LogitsProcessor,
} from './logits.js';
import { resolveCaptionOptions, type ResolvedCaptionOptions } from './options.js';
import { runSearch, runSearchAsync, type Search } from './search.js';
import { decodeStepwise } from './stepwise.js';
import type { DecodedCaption, DecodeOptions, DecodeVocab } from './types.js';
import type { Vocabulary } from '../vocab/vocabulary.js';

export type { CaptionAlternative, DecodeBatching, DecodedCaption, DecodeOptions, DecodeVocab } from './types.js';

export const DEFAULT_DECODE_BATCH = 64;

/** The decoding view of a vocabulary (ids of the special tokens and the id -> word lookup). */
export function decodeVocab(vocab: Vocabulary): DecodeVocab {
  return {
    pad: vocab.padId,
    start: vocab.startId,
    end: vocab.endId,
    unk: vocab.unkId,
    word: (id) => vocab.words[id] ?? '<unk>',
  };
}

/** Decodes features [n, L, C] (row-major, as the feature store reads them) into n captions. */
export function decodeImages(
  model: DecoderModel,
  features: Float32Array,
  n: number,
  vocab: DecodeVocab,
  opts: DecodeOptions,
): DecodedCaption[] {
  return runSearch(model, decodeImagesSearch(model, features, n, vocab, opts));
}

/** decodeImages on an asynchronous model (the ONNX backends): the same search, the same captions. */
export function decodeImagesAsync(
  model: AsyncDecoderModel,
  features: Float32Array,
  n: number,
  vocab: DecodeVocab,
  opts: DecodeOptions,
): Promise<DecodedCaption[]> {
  return runSearchAsync(model, decodeImagesSearch(model, features, n, vocab, opts));
}

/** The logits processors the options ask for, and whether they read each row's tokens so far. */
export function processorsFor(
  o: ResolvedCaptionOptions,
  vocab: DecodeVocab,
): { processor: LogitsProcessor; processorNeedsPrefixes: boolean } {
  const processors = [suppressTokens(forbiddenTokens(vocab, o.suppressUnk))];
  if (o.blockTrigrams) processors.push(blockRepeatedNgrams(3, [vocab.end]));
  return {
    processor: processors.length === 1 ? processors[0] : processorList(processors),
    processorNeedsPrefixes: o.blockTrigrams,
  };
}

/** The search behind decodeImages: batches of images, each decoded as the options say. */
export function* decodeImagesSearch(
  model: DecoderModelBase,
  features: Float32Array,
  n: number,
  vocab: DecodeVocab,
  opts: DecodeOptions,
): Search<DecodedCaption[]> {
  const { locations: L, channels: C } = model.config;
  if (features.length !== n * L * C) {
    throw new Error(`features hold ${features.length} floats, expected n * L * C = ${n} * ${L} * ${C} = ${n * L * C}`);
  }
  const { samplesPerImage, batchSize, onBatch, firstImage, ...caption } = opts;
  const o = resolveCaptionOptions(caption, opts.maxLength);
  const batch = batchSize ?? DEFAULT_DECODE_BATCH;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`batchSize must be an integer >= 1, got ${batch}`);
  const repeat = samplesPerImage ?? 1;
  if (!Number.isInteger(repeat) || repeat < 1)
    throw new Error(`samplesPerImage must be an integer >= 1, got ${samplesPerImage}`);
  if (repeat > 1 && o.kind === 'beam')
    throw new Error('samplesPerImage > 1 is for sampling; beam search returns one caption per image');
  const processors = processorsFor(o, vocab);

  const out: DecodedCaption[] = [];
  for (let first = 0; first < n; first += batch) {
    const count = Math.min(batch, n - first);
    const slice = features.subarray(first * L * C, (first + count) * L * C);
    if (o.kind === 'beam') {
      out.push(
        ...(yield* decodeBeam(model, slice, count, vocab, {
          beam: o.beam,
          alpha: o.alpha,
          groups: o.groups,
          diversity: o.diversity,
          maxLength: o.maxLength,
          alternatives: o.alternatives,
          ...processors,
        })),
      );
    } else {
      const chooser =
        o.kind === 'greedy'
          ? () => argmaxChooser
          : (imageOf: (row: number) => number) => {
              // One stream per image index of the whole call, created lazily.
              const rngs = new Map<number, ReturnType<typeof imageRng>>();
              return categoricalChooser(
                o.temperature,
                (row) => {
                  const image = ((firstImage ?? 0) + first) * repeat + imageOf(row); // one stream per output caption
                  let rng = rngs.get(image);
                  if (!rng) rngs.set(image, (rng = imageRng(o.seed, image)));
                  return rng;
                },
                { topK: o.topK, topP: o.topP },
              );
            };
      out.push(
        ...(yield* decodeStepwise(model, slice, count, vocab, {
          maxLength: o.maxLength,
          chooser,
          repeat,
          ...processors,
        })),
      );
    }
    onBatch?.(first + count);
  }
  return out;
}
