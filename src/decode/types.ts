/**
 * Decoding contracts: what a caller asks for and what it gets back, for every search strategy.
 *
 * Shapes: N images, k beams, L encoder locations, V vocabulary.
 */
import type { CaptionMemory } from './consensus.js';
import type { CaptionOptions } from './options.js';

/** The few vocabulary facts decoding needs. Any vocabulary with these ids and a word lookup fits. */
export interface DecodeVocab {
  pad: number; // never emitted (its logit is masked)
  start: number; // fed at step 0 as the TF tutorial does; never emitted
  end: number; // stops a caption; not included in the words
  unk?: number; // masked when `suppressUnk` is set
  word(id: number): string;
}

/**
 * What the search code is asked for: the caption options (one type for every front end, src/decode/options.ts)
 * with maxLength given, plus how to batch the work.
 */
export type DecodeOptions = CaptionOptions & {
  /** Most tokens generated per image, <end> included (the TF tutorial's max_length). */
  maxLength: number;
} & DecodeBatching & {
    /** The caption memory consensus reranking reads (CaptionOptions.consensus); the runtime that has one passes it. */
    memory?: CaptionMemory;
  };

export interface DecodeBatching {
  /**
   * Captions per image (default 1), for sampling: each image is encoded once and decoded this many times;
   * the results come image by image (caption k of image i at i * samplesPerImage + k). Not with beam search.
   */
  samplesPerImage?: number;
  /**
   * Sampling: the index of the first image among all images of the job (default 0). Image i's random stream is
   * seeded by its index in the job, so a job decoded in parts (a stream of batches) samples what it samples whole.
   */
  firstImage?: number;
  /** Images decoded per model batch; bounds memory (rows = images x beams). Default 64. */
  batchSize?: number;
  /** Called after each image batch with the number of images done, e.g. to drive a ProgressBar. */
  onBatch?: (imagesDone: number) => void;
}

export interface DecodedCaption {
  /** Emitted token ids, without <start> and without <end>. */
  ids: number[];
  words: string[];
  /** One row [L] per word: the attention the decoder used when it emitted that word (along the chosen beam). */
  attention: Float32Array[];
  /**
   * Sum of log p(token) under the model (temperature 1; suppressed and blocked tokens removed from each step's
   * distribution), <end> included if reached.
   */
  logProb: number;
  /** Whether the caption reached <end> before maxLength. */
  finished: boolean;
  /** With DecodeOptions.alternatives: the best hypotheses of the beam search, best first. */
  alternatives?: CaptionAlternative[];
}

/** One hypothesis of a beam search. */
export interface CaptionAlternative {
  ids: number[];
  words: string[];
  logProb: number;
  /**
   * The beam's ranking score: its search score / length^alpha (length counts <end>). The search score is logProb,
   * less the diversity penalties of diverse beam search.
   */
  score: number;
  finished: boolean;
}
