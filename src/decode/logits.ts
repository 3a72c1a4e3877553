/**
 * The small seams every search strategy is built from (as transformers.js splits generation into logits
 * processors and samplers): processors edit a step's logits [rows, V] in place (suppressed tokens, trigram
 * blocking), `logSumExpRows` gives each row's normaliser (log p = logit - lse, so a processor's removed tokens
 * leave the distribution), and choosers (the samplers) pick one token id from a row: argmax, or a draw from the
 * row shaped by temperature, top-k and top-p, which shape the draw only, never the reported log-probabilities.
 *
 * Log-probabilities are float64 so that summed scores (and their ties) do not depend on summation noise.
 */
import { Rng } from '../util/rng.js';
import type { DecodeVocab } from './types.js';

/**
 * Edits logits [rows, V] in place. `prefixes[r]` are the tokens row r has emitted so far (no <start>); search
 * code passes them when a processor needs them (processorsFor says so).
 */
export type LogitsProcessor = (
  logits: Float32Array,
  rows: number,
  vocabSize: number,
  prefixes?: readonly (readonly number[])[],
) => void;

/** The processors in order, as one. */
export function processorList(processors: readonly LogitsProcessor[]): LogitsProcessor {
  return (logits, rows, V, prefixes) => {
    for (const p of processors) p(logits, rows, V, prefixes);
  };
}

/**
 * No n-gram twice in a caption: a token that would complete an n-gram the row's prefix already holds is set to
 * -Infinity (ImageCaptioning.pytorch's block_trigrams with n = 3, as a hard rule). `exempt` tokens (<end>, which
 * is no word of the caption) are never blocked, so every row keeps a way to finish.
 */
export function blockRepeatedNgrams(n: number, exempt: readonly number[]): LogitsProcessor {
  if (!Number.isInteger(n) || n < 1) throw new Error(`n-gram size must be an integer >= 1, got ${n}`);
  return (logits, rows, V, prefixes) => {
    if (!prefixes) throw new Error("n-gram blocking needs each row's tokens so far");
    for (let r = 0; r < rows; r++) {
      const p = prefixes[r];
      const m = p.length;
      // every earlier n-gram p[i .. i+n-1] whose first n-1 tokens are the prefix's last n-1 bans its last token
      for (let i = 0; i + n <= m; i++) {
        let same = true;
        for (let j = 0; j < n - 1 && same; j++) same = p[i + j] === p[m - n + 1 + j];
        const token = p[i + n - 1];
        if (same && !exempt.includes(token) && token >= 0 && token < V) logits[r * V + token] = -Infinity;
      }
    }
  };
}

/** Sets the given tokens' logits to -Infinity so they are never emitted. */
export function suppressTokens(ids: readonly number[]): LogitsProcessor {
  return (logits, rows, V) => {
    for (let r = 0; r < rows; r++) for (const id of ids) if (id >= 0 && id < V) logits[r * V + id] = -Infinity;
  };
}

/** The tokens decoding must never emit: <pad> and <start> always, <unk> on request. */
export function forbiddenTokens(vocab: DecodeVocab, suppressUnk = false): number[] {
  const ids = [vocab.pad, vocab.start];
  if (suppressUnk && vocab.unk !== undefined) ids.push(vocab.unk);
  return ids;
}

/** Row-wise log-sum-exp of logits [rows, V] -> float64 [rows]; a row of only -Infinity gives -Infinity. */
export function logSumExpRows(logits: Float32Array, rows: number, V: number): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (logits[o + v] > max) max = logits[o + v];
    if (max === -Infinity) {
      out[r] = -Infinity;
      continue;
    }
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[o + v] - max);
    out[r] = max + Math.log(sum);
  }
  return out;
}

/**
 * Picks a token id from row `row` of logits [rows, V], given the row's log-sum-exp `lse[row]`
 * (so log p(v) = logits[row, v] - lse[row] without materialising the whole log-softmax).
 */
export type TokenChooser = (logits: Float32Array, lse: Float64Array, row: number, V: number) => number;

/** Greedy: the most likely token; ties go to the lowest id. */
export const argmaxChooser: TokenChooser = (logits, _lse, row, V) => {
  const o = row * V;
  let best = 0;
  for (let v = 1; v < V; v++) if (logits[o + v] > logits[o + best]) best = v;
  return best;
};

/**
 * The TF tutorial's tf.random.categorical(logits / temperature): p(v) ∝ exp((logit(v) - max) / T).
 * `rngOf(row)` gives the row's random stream (one per image, so a caption does not depend on which
 * other images share its batch).
 */
export function categoricalChooser(
  temperature: number,
  rngOf: (row: number) => Rng,
  truncate: SamplingTruncation = {},
): TokenChooser {
  if (!(temperature > 0)) throw new Error(`temperature must be > 0, got ${temperature}`);
  const topK = truncate.topK ?? Infinity;
  const topP = truncate.topP ?? 1;
  if (!(topK >= 1)) throw new Error(`topK must be >= 1, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new Error(`topP must be in (0, 1], got ${topP}`);
  if (temperature === 1 && topK === Infinity && topP === 1) return plainSampleChooser(rngOf);
  let weights = new Float64Array(0);
  let order = new Int32Array(0);
  return (logits, lse, row, V) => {
    if (weights.length < V) {
      weights = new Float64Array(V);
      order = new Int32Array(V);
    }
    const o = row * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (logits[o + v] > max) max = logits[o + v];
    let total = 0;
    for (let v = 0; v < V; v++) {
      const w = logits[o + v] === -Infinity ? 0 : Math.exp((logits[o + v] - max) / temperature);
      weights[v] = w;
      total += w;
    }
    if (topK < V || topP < 1) total = truncateWeights(weights, V, topK, topP, order);
    let u = rngOf(row).next() * total;
    let last = 0;
    for (let v = 0; v < V; v++) {
      if (weights[v] === 0) continue;
      last = v;
      u -= weights[v];
      if (u < 0) return v;
    }
    return last; // u landed on the total through rounding: the last token with any weight
  };
}

/**
 * categoricalChooser at temperature 1 without truncation, in one partial pass: p(v) = exp(logit(v) - lse) needs no
 * weights array, and the scan stops at the drawn token (ids are ordered by frequency, so it stops early). It draws
 * the same token as the general path up to rounding at the boundaries between tokens.
 */
function plainSampleChooser(rngOf: (row: number) => Rng): TokenChooser {
  return (logits, lse, row, V) => {
    const o = row * V;
    const norm = lse[row];
    let u = rngOf(row).next();
    let last = 0;
    if (norm === -Infinity) return last; // no token has any weight
    for (let v = 0; v < V; v++) {
      const x = logits[o + v];
      if (x === -Infinity) continue;
      last = v;
      u -= Math.exp(x - norm);
      if (u < 0) return v;
    }
    return last; // u landed on the total through rounding: the last token with any weight
  };
}

/** Sampling restricted to the likeliest tokens (transformers.js's TopKLogitsWarper and TopPLogitsWarper). */
export interface SamplingTruncation {
  /** Draw only among the k likeliest tokens (default Infinity: all). */
  topK?: number;
  /** Draw only among the fewest likeliest tokens whose probabilities sum to at least p (default 1: all). */
  topP?: number;
}

/**
 * Zeroes weights[0 .. V-1] outside the top-k, then outside the nucleus of the top-k's renormalised mass p (top-k
 * first, then top-p, as transformers.js orders them); at least the likeliest token always stays. Ranking: higher
 * weight first, ties to the lower id (so top-k 1 is the greedy argmax). Returns the kept weights' sum.
 */
function truncateWeights(weights: Float64Array, V: number, topK: number, topP: number, order: Int32Array): number {
  let m = 0;
  for (let v = 0; v < V; v++) if (weights[v] > 0) order[m++] = v;
  const ranked = order.subarray(0, m).sort((a, b) => weights[b] - weights[a] || a - b);
  let keep = Math.min(m, topK);
  let kept = 0;
  for (let i = 0; i < keep; i++) kept += weights[ranked[i]];
  if (topP < 1) {
    let cumulative = 0;
    for (let i = 0; i < keep; i++) {
      cumulative += weights[ranked[i]];
      if (cumulative >= topP * kept) {
        keep = i + 1;
        kept = cumulative;
        break;
      }
    }
  }
  for (let i = keep; i < m; i++) weights[ranked[i]] = 0;
  return kept;
}

/** One random stream per image: image `index` of a call seeded `seed` always draws the same numbers. */
export function imageRng(seed: number, index: number): Rng {
  return new Rng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
}
