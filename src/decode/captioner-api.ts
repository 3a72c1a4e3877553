/**
 * The Captioner API, the same in Node (`loadCaptioner` from src/models/load-captioner.ts: native addon or
 * onnxruntime-node) and in browsers (`show-attend-tell/web`: onnxruntime-web). Pure: no Node built-ins.
 *
 * @example
 *   const captioner = await loadCaptioner('runs/f8k', { backend: 'native' });   // or a bundle folder / URL
 *   const { caption, words, logProb, alternatives } = await captioner.caption('dog.jpg', { beam: 3, alternatives: true });
 *   words[0].attention;  // Float32Array [h * w]: where the model looked for the first word (info.grid = [h, w])
 *   await captioner.dispose();
 *
 * Contract (stable; `sat serve` is built on it):
 *  - `caption(image, options)` -> CaptionResult; `captionBatch(images, options)` reads, encodes and decodes the
 *    images in batches of 64 (N images x k beams as rows per model batch); results in input order.
 *    `captionStream(images, options, { batchSize, pixels })` does the same for any (async) iterable of images,
 *    yielding each caption as its batch is done: memory stays bounded for any number of images.
 *    A batch gives each image the caption it gets alone.
 *  - options (CaptionOptions, src/decode/options.ts, checked by checkCaptionOptions within CAPTION_OPTION_LIMITS):
 *    `beam` (width, default 1 = greedy), `alpha` (length normalisation of beam scores, default 0; beam search
 *    only), `groups` and `diversity` (diverse beam search), `maxLength` (tokens, <end> included; default the
 *    vocabulary's longest caption), `sample` with `temperature`, `topK`, `topP` and `seed` (reproducible per
 *    seed), `blockTrigrams`, `suppressUnk`, `alternatives`. `beam` and `sample` exclude each other. With
 *    `alternatives: true` (or a count m <= beam) and beam > 1, the result lists the k (m) best finished
 *    hypotheses with their scores, best first, the caption itself first; without it, or for greedy and sampling,
 *    the list is empty. Asking for them can make the search run longer; the best caption is the same either way.
 *  - `preprocess(image)` gives the image as the encoder sees it (RGB uint8 HWC, info.inputSize square), e.g. to
 *    draw attention maps over it.
 *  - `info` says which model and backend run, the input size, scaling and layout, the attention grid and the
 *    vocabulary size; `dispose()` frees the model and runtime sessions.
 *  Bad input is refused with an Error naming it (a UserError in Node).
 */
import { decodeInBatches, type CaptionStreamOptions } from './caption-stream.js';
import { resolveCaptionOptions, type CaptionOptions } from './options.js';
import type { CaptionMemory } from './consensus.js';
import type { DecodedCaption, DecodeOptions, DecodeVocab } from './types.js';

export {
  CAPTION_OPTION_LIMITS,
  CAPTION_OPTION_NAMES,
  checkCaptionOptions,
  decodingSummary,
  DEFAULT_CONSENSUS_SAMPLES,
  DEFAULT_CONSENSUS_WEIGHT,
  DEFAULT_DIVERSITY,
  resolveCaptionOptions,
} from './options.js';
export type {
  CaptionOptionName,
  CaptionOptions,
  DecodingSummary,
  OptionCheck,
  OptionLimit,
  ResolvedCaptionOptions,
  SearchKind,
} from './options.js';

export interface CaptionWord {
  word: string;
  /** [grid h * grid w] attention weights (sum 1) of the step that emitted this word, row-major over info.grid. */
  attention: Float32Array;
}

export interface CaptionAlternativeText {
  caption: string;
  logProb: number;
  /** logProb / length^alpha, the beam's ranking score (length counts <end>). */
  score: number;
  finished: boolean;
}

export interface CaptionResult {
  caption: string;
  words: CaptionWord[];
  /** Token ids of the words (without <start>/<end>). */
  ids: number[];
  /** Sum of the log-probabilities of the words and <end> (if reached) under the model. */
  logProb: number;
  /** false when the caption reached maxLength without <end>. */
  finished: boolean;
  alternatives: CaptionAlternativeText[];
}

export interface CaptionerInfo {
  /** Which model: the bundle's modelId, or the checkpoint's name and SHA-256 prefix. */
  modelId: string;
  /** The installed model's name (the shipped model, or one in the cache), when it was loaded by name, URL or default. */
  modelName?: string;
  backend: 'native' | 'onnx' | 'onnx-web';
  /** Where it was loaded from (checkpoint file, bundle folder or URL). */
  source: string;
  encoderId: string;
  inputSize: number;
  scaling: unknown;
  inputLayout: 'nhwc' | 'nchw';
  locations: number;
  grid: [number, number];
  vocabSize: number;
  /** Default maxLength. */
  maxLength: number;
  /** Weight format of a bundle ('fp32' for the native backend). */
  dtype: string;
  /** Whether the model can rerank by consensus (it has, or can build, a caption memory). */
  consensus: boolean;
}

export interface Captioner<Image> {
  readonly info: CaptionerInfo;
  caption(image: Image, options?: CaptionOptions): Promise<CaptionResult>;
  captionBatch(images: readonly Image[], options?: CaptionOptions): Promise<CaptionResult[]>;
  /** Any number of images with bounded memory, in batches (src/decode/caption-stream.ts); results in input order. */
  captionStream(
    images: Iterable<Image> | AsyncIterable<Image>,
    options?: CaptionOptions,
    stream?: CaptionStreamOptions,
  ): AsyncGenerator<CaptionedImage<Image>>;
  preprocess(image: Image): Promise<Uint8Array>;
  dispose(): Promise<void>;
}

/** One image's caption from captionStream; `rgb` (the image as the encoder saw it) with `pixels: true`. */
export interface CaptionedImage<Image> {
  index: number;
  image: Image;
  result: CaptionResult;
  rgb?: Uint8Array;
}

/**
 * What runs a captioner (the native addon, or onnxruntime over a bundle; info.backend says which):
 * createCaptioner turns it into the Captioner API.
 */
export interface CaptionRuntime<Image> {
  info: CaptionerInfo;
  vocab: DecodeVocab;
  preprocess(image: Image): Promise<Uint8Array>;
  /** RGB images (inputSize square, HWC) -> features [n, L, C]. */
  encode(rgb: readonly Uint8Array[]): Promise<Float32Array>;
  decode(features: Float32Array, n: number, options: DecodeOptions): Promise<DecodedCaption[]>;
  /**
   * The caption memory of consensus reranking (consensus.ts), loaded on first use; it throws, naming the fix, when the
   * model's memory cannot be had. Absent: the model has none.
   */
  memory?(): CaptionMemory | Promise<CaptionMemory>;
  dispose(): Promise<void>;
}

/** `o` with the runtime's caption memory when it asks for consensus reranking; refused when there is none. */
async function withMemory<Image>(
  backend: CaptionRuntime<Image>,
  o: DecodeOptions,
  fail: (message: string) => Error = (m) => new Error(m),
): Promise<DecodeOptions> {
  if (o.consensus === undefined) return o;
  if (!backend.memory)
    throw fail(
      `consensus reranking needs a caption memory, and ${backend.info.modelId} has none: export the model with ` +
        '`sat export --memory RUN` (RUN: a run with its training features), or leave consensus out.',
    );
  return { ...o, memory: await backend.memory() };
}

/** Checks CaptionOptions and turns them into the decoder's options (`defaultMaxLength` when maxLength is absent). */
export function decodeOptionsFor(
  o: CaptionOptions,
  defaultMaxLength: number,
  fail?: (message: string) => Error,
): DecodeOptions {
  resolveCaptionOptions(o, defaultMaxLength, { fail });
  return { ...o, maxLength: o.maxLength ?? defaultMaxLength };
}

/** A decoded caption as the API returns it. */
export function captionResult(d: DecodedCaption): CaptionResult {
  return {
    caption: d.words.join(' '),
    words: d.words.map((word, i) => ({ word, attention: d.attention[i] })),
    ids: d.ids,
    logProb: d.logProb,
    finished: d.finished,
    alternatives: (d.alternatives ?? []).map((a) => ({
      caption: a.words.join(' '),
      logProb: a.logProb,
      score: a.score,
      finished: a.finished,
    })),
  };
}

/** The Captioner API over a backend. Batches are encoded once and decoded as one model batch. */
export function createCaptioner<Image>(
  backend: CaptionRuntime<Image>,
  fail?: (message: string) => Error,
): Captioner<Image> {
  let disposed = false;
  const live = () => {
    if (disposed) throw (fail ?? ((m: string) => new Error(m)))('this captioner was disposed; load it again.');
  };
  const captionBatch = async (images: readonly Image[], options: CaptionOptions = {}): Promise<CaptionResult[]> => {
    live();
    const decodeOptions = await withMemory(backend, decodeOptionsFor(options, backend.info.maxLength, fail), fail);
    const results: CaptionResult[] = [];
    for await (const { decoded } of decodeInBatches(backend, images, decodeOptions, {}, fail))
      results.push(captionResult(decoded));
    return results;
  };
  async function* captionStream(
    images: Iterable<Image> | AsyncIterable<Image>,
    options: CaptionOptions = {},
    stream: CaptionStreamOptions = {},
  ): AsyncGenerator<CaptionedImage<Image>> {
    live();
    const decodeOptions = await withMemory(backend, decodeOptionsFor(options, backend.info.maxLength, fail), fail);
    for await (const d of decodeInBatches(backend, images, decodeOptions, stream, fail)) {
      live();
      yield { index: d.index, image: d.image, result: captionResult(d.decoded), ...(d.rgb ? { rgb: d.rgb } : {}) };
    }
  }
  return {
    info: backend.info,
    captionBatch,
    captionStream,
    caption: async (image, options) => (await captionBatch([image], options))[0],
    preprocess: (image) => {
      live();
      return backend.preprocess(image);
    },
    dispose: async () => {
      if (disposed) return;
      disposed = true;
      await backend.dispose();
    },
  };
}
