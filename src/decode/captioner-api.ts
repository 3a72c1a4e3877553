/**
 * The Captioner API, the same in Node (`loadCaptioner` from src/export/load.ts: native addon or
 * onnxruntime-node) and in browsers (`show-attend-tell/web`: onnxruntime-web). Pure: no Node built-ins.
 *
 * @example
 *   const captioner = await loadCaptioner('runs/f8k', { backend: 'native' });   // or a bundle folder / URL
 *   const { caption, words, logProb, alternatives } = await captioner.caption('dog.jpg', { beam: 3 });
 *   words[0].attention;  // Float32Array [h * w]: where the model looked for the first word (info.grid = [h, w])
 *   await captioner.dispose();
 *
 * Contract (stable; `sat serve` is built on it):
 *  - `caption(image, options)` -> CaptionResult; `captionBatch(images, options)` encodes the images as one
 *    encoder batch and decodes them as one model batch (N images x k beams as rows; 64 images at most per model
 *    batch, larger batches in chunks of 64); results in input order.
 *    A batch gives each image the caption it gets alone.
 *  - options: `beam` (width, default 1 = greedy), `alpha` (length normalisation of beam scores, default 0),
 *    `maxLength` (tokens, <end> included; default the vocabulary's longest caption), `sample` with `temperature`
 *    and `seed` (the seed tutorial's sampling; reproducible per seed), `suppressUnk`. `beam` and `sample` exclude
 *    each other. With beam > 1, `alternatives` lists the k best finished hypotheses (best first, the caption
 *    itself first); it is empty for greedy and sampling.
 *  - `preprocess(image)` gives the image as the encoder sees it (RGB uint8 HWC, info.inputSize square), e.g. to
 *    draw attention maps over it.
 *  - `info` says which model and backend run, the input size, scaling and layout, the attention grid and the
 *    vocabulary size; `dispose()` frees the model and runtime sessions.
 *  Bad input is refused with an Error naming it (a UserError in Node).
 */
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
  preprocess(image: Image): Promise<Uint8Array>;
  dispose(): Promise<void>;
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

/** Checks CaptionOptions and turns them into the decoder's options (`defaultMaxLength` when maxLength is absent). */
export function decodeOptionsFor(o: CaptionOptions, defaultMaxLength: number, fail: (message: string) => Error = (m) => new Error(m)): DecodeOptions {
  const known = new Set(['beam', 'alpha', 'maxLength', 'sample', 'temperature', 'seed', 'suppressUnk']);
  const unknown = Object.keys(o).filter((k) => !known.has(k));
  if (unknown.length > 0) throw fail(`unknown caption option(s) ${unknown.join(', ')}; known: ${[...known].join(', ')}.`);
  const int = (name: keyof CaptionOptions, v: unknown, min: number, max: number) => {
    if (v !== undefined && !(Number.isInteger(v) && (v as number) >= min && (v as number) <= max)) throw fail(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}.`);
  };
  int('beam', o.beam, 1, 100);
  int('maxLength', o.maxLength, 1, 1000);
  int('seed', o.seed, 0, 2 ** 32 - 1);
  if (o.alpha !== undefined && !(typeof o.alpha === 'number' && o.alpha >= 0 && o.alpha <= 5)) throw fail(`alpha must be a number in [0, 5], got ${JSON.stringify(o.alpha)}.`);
  if (o.temperature !== undefined && !(typeof o.temperature === 'number' && o.temperature > 0)) throw fail(`temperature must be a number > 0, got ${JSON.stringify(o.temperature)}.`);
  let strategy: DecodeStrategy;
  if (o.sample) {
    if (o.beam !== undefined && o.beam > 1) throw fail('beam and sample exclude each other: choose beam search or sampling.');
    strategy = { kind: 'sample', temperature: o.temperature ?? 1, seed: o.seed ?? 0 };
  } else {
    if (o.temperature !== undefined || o.seed !== undefined) throw fail('temperature and seed apply to sample: true only.');
    strategy = o.beam !== undefined && o.beam > 1 ? { kind: 'beam', beam: o.beam, alpha: o.alpha ?? 0 } : { kind: 'greedy' };
  }
  return {
    strategy, maxLength: o.maxLength ?? defaultMaxLength, suppressUnk: Boolean(o.suppressUnk),
    alternatives: strategy.kind === 'beam' ? strategy.beam : 0,
  };
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
    if (images.length === 0) return [];
    const rgb: Uint8Array[] = [];
    for (const image of images) rgb.push(await backend.preprocess(image));
    const features = await backend.encode(rgb);
    const decoded = await backend.decode(features, images.length, decodeOptions);
    return decoded.map(captionResult);
  };
  return {
    info: backend.info,
    captionBatch,
    caption: async (image, options) => (await captionBatch([image], options))[0],
    preprocess: (image) => { live(); return backend.preprocess(image); },
    dispose: async () => {
      if (disposed) return;
      disposed = true;
      await backend.dispose();
    },
  };
}
