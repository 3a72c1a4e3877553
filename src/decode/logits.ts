/**
 * The small seams every search strategy is built from (in the spirit of transformers.js's logits
 * processors and samplers): processors edit a step's logits [rows, V] in place, `logSumExpRows` gives each
 * row's normaliser (log p = logit - lse), and choosers pick one token id from a row.
 *
 * Log-probabilities are float64 so that summed scores (and their ties) do not depend on summation noise.
 */
import { Rng } from '../util/rng.js';
import type { DecodeVocab } from './types.js';

/** Edits logits [rows, V] in place. */
export type LogitsProcessor = (logits: Float32Array, rows: number, vocabSize: number) => void;

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
    if (max === -Infinity) { out[r] = -Infinity; continue; }
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
export function categoricalChooser(temperature: number, rngOf: (row: number) => Rng): TokenChooser {
  if (!(temperature > 0)) throw new Error(`temperature must be > 0, got ${temperature}`);
  let weights = new Float64Array(0);
  return (logits, lse, row, V) => {
    if (weights.length < V) weights = new Float64Array(V);
    const o = row * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (logits[o + v] > max) max = logits[o + v];
    let total = 0;
    for (let v = 0; v < V; v++) {
      const w = logits[o + v] === -Infinity ? 0 : Math.exp((logits[o + v] - max) / temperature);
      weights[v] = w;
      total += w;
    }
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

/** One random stream per image: image `index` of a call seeded `seed` always draws the same numbers. */
export function imageRng(seed: number, index: number): Rng {
  return new Rng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
}
