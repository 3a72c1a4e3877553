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
  type TokenChooser,
} from './logits.js';
import { pooledVectors, type CaptionMemory, type ConsensusCandidate } from './consensus.js';
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
  const { samplesPerImage, batchSize, onBatch, firstImage, memory, ...caption } = opts;
  const o = resolveCaptionOptions(caption, opts.maxLength);
  const batch = batchSize ?? DEFAULT_DECODE_BATCH;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`batchSize must be an integer >= 1, got ${batch}`);
  if (o.consensus > 0) {
    if (samplesPerImage !== undefined && samplesPerImage !== 1)
      throw new Error('samplesPerImage is for sampling; consensus reranking returns one caption per image');
    const captions = yield* decodeWithConsensus(model, features, n, vocab, o, { batch, firstImage, memory });
    onBatch?.(n);
    return captions;
  }
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

/**
 * Consensus reranking (consensus.ts): the beam's hypotheses (or the greedy caption) and o.consensusSamples sampled
 * captions per image, ranked by their agreement with the captions of the image's o.consensus nearest memory
 * images; the best one is decoded once more along its own words, so it comes with its attention like any caption.
 */
function* decodeWithConsensus(
  model: DecoderModelBase,
  features: Float32Array,
  n: number,
  vocab: DecodeVocab,
  o: ResolvedCaptionOptions,
  run: { batch: number; firstImage?: number; memory?: CaptionMemory },
): Search<DecodedCaption[]> {
  const { locations: L, channels: C } = model.config;
  const memory = run.memory;
  if (!memory) throw new Error('consensus reranking needs a caption memory, and this model has none.');
  if (memory.channels !== C)
    throw new Error(`the caption memory holds ${memory.channels}-channel features; this model reads ${C} channels.`);
  const shared = { maxLength: o.maxLength, blockTrigrams: o.blockTrigrams, suppressUnk: o.suppressUnk };
  const searched = yield* decodeImagesSearch(model, features, n, vocab, {
    ...shared,
    ...(o.beam > 1
      ? { beam: o.beam, alpha: o.alpha, groups: o.groups, diversity: o.diversity, alternatives: true }
      : {}),
    batchSize: run.batch,
  });
  const S = o.consensusSamples;
  const sampled =
    S > 0
      ? yield* decodeImagesSearch(model, features, n, vocab, {
          ...shared,
          sample: true,
          seed: o.seed,
          samplesPerImage: S,
          firstImage: run.firstImage,
          // about as many rows per model call as a beam search of width 8 over `batch` images
          batchSize: Math.max(1, Math.floor((run.batch * 8) / S)),
        })
      : [];
  const pooled = pooledVectors(features, n, L, C);
  const ranked = searched.map((top, i) => {
    const candidates: Candidate[] = [...(top.alternatives ?? [top]), ...sampled.slice(i * S, (i + 1) * S)];
    return memory.rerank(candidates, pooled.subarray(i * C, (i + 1) * C), o.consensus, o.consensusWeight);
  });
  const chosen = yield* decodeForced(
    model,
    features,
    n,
    vocab,
    ranked.map((r) => r[0].candidate),
    o,
    run.batch,
  );
  if (o.alternatives > 0) {
    chosen.forEach((c, i) => {
      c.alternatives = ranked[i].slice(0, o.alternatives).map(({ candidate, score }) => ({
        ids: candidate.ids,
        words: candidate.words,
        logProb: candidate.logProb,
        score,
        finished: candidate.finished,
      }));
    });
  }
  return chosen;
}

/** A candidate of consensus reranking with its token ids (beam hypotheses and samples carry them). */
type Candidate = ConsensusCandidate & { ids: number[] };

/** Decodes each image along the given caption's tokens (then <end> if it finished): its attention and log p. */
function* decodeForced(
  model: DecoderModelBase,
  features: Float32Array,
  n: number,
  vocab: DecodeVocab,
  captions: readonly Candidate[],
  o: ResolvedCaptionOptions,
  batch: number,
): Search<DecodedCaption[]> {
  const { locations: L, channels: C } = model.config;
  const out: DecodedCaption[] = [];
  for (let first = 0; first < n; first += batch) {
    const count = Math.min(batch, n - first);
    const tokens = captions.slice(first, first + count).map((c) => [...c.ids, ...(c.finished ? [vocab.end] : [])]);
    // Each row is asked once per step, so a caption's next token is at the count of its tokens given so far.
    const forced = (imageOf: (row: number) => number): TokenChooser => {
      const given = new Int32Array(count);
      return (_logits, _lse, row) => {
        const i = imageOf(row);
        return tokens[i][given[i]++] ?? vocab.end;
      };
    };
    out.push(
      ...(yield* decodeStepwise(model, features.subarray(first * L * C, (first + count) * L * C), count, vocab, {
        maxLength: o.maxLength,
        chooser: forced,
        ...processorsFor(o, vocab),
      })),
    );
  }
  return out;
}
