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
 *  - options (CaptionOptions, checked by checkCaptionOptions within CAPTION_OPTION_LIMITS): `beam` (width,
 *    default 1 = greedy), `alpha` (length normalisation of beam scores, default 0; beam search only), `maxLength`
 *    (tokens, <end> included; default the vocabulary's longest caption), `sample` with `temperature` and `seed`
 *    (the TF tutorial's sampling; reproducible per seed), `suppressUnk`, `alternatives`. `beam` and `sample`
 *    exclude each other. With `alternatives: true` (or a count m <= beam) and beam > 1, the result lists the k (m)
 *    best finished hypotheses, best first, the caption itself first; without it, or for greedy and sampling, the
 *    list is empty. Asking for them can make the search run longer; the best caption is the same either way.
 *  - `preprocess(image)` gives the image as the encoder sees it (RGB uint8 HWC, info.inputSize square), e.g. to
 *    draw attention maps over it.
 *  - `info` says which model and backend run, the input size, scaling and layout, the attention grid and the
 *    vocabulary size; `dispose()` frees the model and runtime sessions.
 *  Bad input is refused with an Error naming it (a UserError in Node).
 */
import { decodeInBatches, type CaptionStreamOptions } from './caption-stream.js';
import type { DecodeVocab } from './types.js';
import type { DecodedCaption, DecodeOptions, DecodeStrategy } from './types.js';

export interface CaptionOptions {
  /** Beam width; 1 (default) is greedy decoding. */
  beam?: number;
  /** Beam search length normalisation: hypotheses ranked by logProb / length^alpha (default 0: raw log-prob). */
  alpha?: number;
  /** Most tokens per caption, <end> included (default: the vocabulary's longest caption minus <start>). */
  maxLength?: number;
  /** Sample each word from softmax(logits / temperature) instead of searching. */
  sample?: boolean;
  temperature?: number;
  seed?: number;
  /** Never emit <unk>. */
  suppressUnk?: boolean;
  /**
   * Beam search: list the best finished hypotheses with the caption (true: all `beam` of them; a number m: the
   * best m, 1 <= m <= beam). Off by default: waiting for them can lengthen the search.
   */
  alternatives?: boolean | number;
}

/** The ranges of the numeric CaptionOptions (the same for the library, `sat caption` and `sat serve`). */
export const CAPTION_OPTION_LIMITS = {
  beam: { integer: true, min: 1, max: 100 },
  alpha: { integer: false, min: 0, max: 5 },
  maxLength: { integer: true, min: 1, max: 1000 },
  seed: { integer: true, min: 0, max: 2 ** 32 - 1 },
  temperature: { integer: false, min: 1e-6, max: 1e6 },
} as const;

export type CaptionOptionName = keyof CaptionOptions;

const OPTION_NAMES: readonly CaptionOptionName[] = ['beam', 'alpha', 'maxLength', 'sample', 'temperature', 'seed', 'suppressUnk', 'alternatives'];

export interface OptionCheck {
  /** Builds the error (default: Error; Node callers pass UserError). */
  fail?: (message: string) => Error;
  /** How an option is named in messages (default its key; the CLI passes its flag, e.g. maxLength -> --max-length). */
  name?: (option: CaptionOptionName) => string;
}

/**
 * Refuses CaptionOptions that are unknown, out of CAPTION_OPTION_LIMITS or contradictory (beam with sample,
 * alpha without beam search, temperature or seed without sample, more alternatives than beams).
 */
export function checkCaptionOptions(o: CaptionOptions, check: OptionCheck = {}): void {
  const fail = check.fail ?? ((m: string) => new Error(m));
  const name = check.name ?? ((k: CaptionOptionName) => k);
  if (o === null || typeof o !== 'object') throw fail(`caption options must be an object, got ${JSON.stringify(o)}.`);
  const unknown = Object.keys(o).filter((k) => !OPTION_NAMES.includes(k as CaptionOptionName));
  if (unknown.length > 0) throw fail(`unknown caption option(s) ${unknown.join(', ')}; known: ${OPTION_NAMES.join(', ')}.`);
  for (const [key, limit] of Object.entries(CAPTION_OPTION_LIMITS) as [keyof typeof CAPTION_OPTION_LIMITS, { integer: boolean; min: number; max: number }][]) {
    const v = o[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || (limit.integer && !Number.isInteger(v)) || v < limit.min || v > limit.max) {
      throw fail(`${name(key)} must be ${limit.integer ? 'an integer' : 'a number'} from ${limit.min} to ${limit.max}, got ${JSON.stringify(v)}.`);
    }
  }
  const beam = o.beam ?? 1;
  if (o.sample && beam > 1) throw fail(`${name('beam')} and ${name('sample')} exclude each other: choose beam search or sampling.`);
  if (!o.sample && (o.temperature !== undefined || o.seed !== undefined)) {
    throw fail(`${name('temperature')} and ${name('seed')} apply to ${name('sample')} only.`);
  }
  if (o.alpha !== undefined && o.alpha > 0 && (beam <= 1 || o.sample)) {
    throw fail(`${name('alpha')} (length normalisation) applies to beam search: give ${name('beam')} K with K > 1, or leave ${name('alpha')} out.`);
  }
  const alt = o.alternatives;
  if (alt !== undefined && typeof alt !== 'boolean' && !(Number.isInteger(alt) && alt >= 0 && alt <= beam)) {
    throw fail(`${name('alternatives')} must be true, false or a count from 0 to ${name('beam')} (${beam}), got ${JSON.stringify(alt)}.`);
  }
}

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
}

export interface Captioner<Image> {
  readonly info: CaptionerInfo;
  caption(image: Image, options?: CaptionOptions): Promise<CaptionResult>;
  captionBatch(images: readonly Image[], options?: CaptionOptions): Promise<CaptionResult[]>;
  /** Any number of images with bounded memory, in batches (src/decode/caption-stream.ts); results in input order. */
  captionStream(images: Iterable<Image> | AsyncIterable<Image>, options?: CaptionOptions, stream?: CaptionStreamOptions): AsyncGenerator<CaptionedImage<Image>>;
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

/** What a backend provides; createCaptioner turns it into the Captioner API. */
export interface CaptionBackend<Image> {
  info: CaptionerInfo;
  vocab: DecodeVocab;
  preprocess(image: Image): Promise<Uint8Array>;
  /** RGB images (inputSize square, HWC) -> features [n, L, C]. */
  encode(rgb: readonly Uint8Array[]): Promise<Float32Array>;
  decode(features: Float32Array, n: number, options: DecodeOptions): Promise<DecodedCaption[]>;
  dispose(): Promise<void>;
}

/** The decoding strategy CaptionOptions ask for (checked options: see checkCaptionOptions). */
export function strategyOf(o: CaptionOptions): DecodeStrategy {
  if (o.sample) return { kind: 'sample', temperature: o.temperature ?? 1, seed: o.seed ?? 0 };
  return o.beam !== undefined && o.beam > 1 ? { kind: 'beam', beam: o.beam, alpha: o.alpha ?? 0 } : { kind: 'greedy' };
}

/** Checks CaptionOptions and turns them into the decoder's options (`defaultMaxLength` when maxLength is absent). */
export function decodeOptionsFor(o: CaptionOptions, defaultMaxLength: number, fail?: (message: string) => Error): DecodeOptions {
  checkCaptionOptions(o, { fail });
  const strategy = strategyOf(o);
  const alternatives = strategy.kind !== 'beam' || !o.alternatives ? 0 : o.alternatives === true ? strategy.beam : o.alternatives;
  return { strategy, maxLength: o.maxLength ?? defaultMaxLength, suppressUnk: Boolean(o.suppressUnk), alternatives };
}

/** A decoded caption as the API returns it. */
export function captionResult(d: DecodedCaption): CaptionResult {
  return {
    caption: d.words.join(' '),
    words: d.words.map((word, i) => ({ word, attention: d.attention[i] })),
    ids: d.ids,
    logProb: d.logProb,
    finished: d.finished,
    alternatives: (d.alternatives ?? []).map((a) => ({ caption: a.words.join(' '), logProb: a.logProb, score: a.score, finished: a.finished })),
  };
}

/** The Captioner API over a backend. Batches are encoded once and decoded as one model batch. */
export function createCaptioner<Image>(backend: CaptionBackend<Image>, fail?: (message: string) => Error): Captioner<Image> {
  let disposed = false;
  const live = () => {
    if (disposed) throw (fail ?? ((m: string) => new Error(m)))('this captioner was disposed; load it again.');
  };
  const captionBatch = async (images: readonly Image[], options: CaptionOptions = {}): Promise<CaptionResult[]> => {
    live();
    const decodeOptions = decodeOptionsFor(options, backend.info.maxLength, fail);
    const results: CaptionResult[] = [];
    for await (const { decoded } of decodeInBatches(backend, images, decodeOptions, {}, fail)) results.push(captionResult(decoded));
    return results;
  };
  async function* captionStream(images: Iterable<Image> | AsyncIterable<Image>, options: CaptionOptions = {},
                                stream: CaptionStreamOptions = {}): AsyncGenerator<CaptionedImage<Image>> {
    live();
    const decodeOptions = decodeOptionsFor(options, backend.info.maxLength, fail);
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
    preprocess: (image) => { live(); return backend.preprocess(image); },
    dispose: async () => {
      if (disposed) return;
      disposed = true;
      await backend.dispose();
    },
  };
}
