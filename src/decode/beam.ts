/**
 * Beam search for N images at once: the batch holds N x k rows (image-major: rows g*k .. g*k+k-1 are
 * the beams of the g-th still-active image), so one model.step serves every beam of every image.
 *
 * Per image and step, the best 2k one-token extensions of its beams are ranked by summed log-prob
 * (ties: lower beam, then lower token id). An <end> extension ranked within the first k becomes a
 * finished hypothesis, scored logProb / length^alpha (length counts <end>); the best k other extensions
 * are the next beams. This makes width 1 with alpha 0 exactly greedy decoding.
 *
 * An image stops once no live beam can still beat its best finished hypothesis. Log-probs only fall, so
 * a live beam's final normalised score is at most its score now / maxLength^alpha; the result is therefore
 * the same as searching all the way to maxLength. If no beam ever emits <end>, the image still gets a
 * caption: its best live beam at maxLength, marked finished: false (never an empty result or a crash).
 *
 * With `alternatives: m` each caption also lists the m best finished hypotheses (best first, the caption
 * itself among them). An image then stops only once its m-th best finished hypothesis beats every live
 * beam (or at maxLength), so it may search longer; the beams themselves and the best caption are the same,
 * because later hypotheses never beat one that already beat every live beam (ties keep the earlier one).
 *
 * Shapes: L locations, V vocabulary, R_t rows fed at step t.
 */
import type { DecoderModelBase, DecoderState } from '../model/types.js';
import { logSumExpRows, suppressTokens } from './logits.js';
import { encodeRequest, stepRequest, type Search } from './search.js';
import type { CaptionAlternative, DecodedCaption, DecodeVocab } from './types.js';

export interface BeamOptions {
  beam: number;       // k >= 1
  alpha: number;      // length-normalisation exponent, 0 = raw log-prob
  maxLength: number;  // most tokens per caption, <end> included
  forbidden: number[];
  /** Finished hypotheses to list per caption (0 = none, the default); at most `beam`. */
  alternatives?: number;
}

/** What one step decided, kept to read back each caption's tokens and attention at the end. */
interface StepRecord {
  attention: Float32Array; // [R_t, L] attention of the rows fed at step t
  tokens: Int32Array;      // [R_{t+1}] token each next row appended
  parents: Int32Array;     // [R_{t+1}] row (of step t) each next row extends
}

/** A beam (row `row` fed at step `step`) plus one more token, with its summed log-prob. */
interface Candidate { score: number; row: number; token: number }

interface Finished { logProb: number; normalised: number; step: number; row: number }

/** Decodes features [n, L, C] with beam search of width opts.beam (a search: run it with runSearch/runSearchAsync). */
export function* decodeBeam(model: DecoderModelBase, features: Float32Array, n: number, vocab: DecodeVocab,
                            opts: BeamOptions): Search<DecodedCaption[]> {
  const k = opts.beam;
  if (!Number.isInteger(k) || k < 1) throw new Error(`beam width must be an integer >= 1, got ${k}`);
  const keep = opts.alternatives ?? 0;
  if (!Number.isInteger(keep) || keep < 0 || keep > k) throw new Error(`alternatives must be an integer in [0, beam = ${k}], got ${keep}`);
  const V = model.config.vocabSize;
  const L = model.config.locations;
  const norm = (logProb: number, length: number) => (opts.alpha === 0 ? logProb : logProb / Math.pow(length, opts.alpha));
  const mask = suppressTokens(opts.forbidden);
  const results: DecodedCaption[] = new Array(n);
  if (n === 0) return results;

  const history: StepRecord[] = [];
  const best: (Finished | null)[] = new Array(n).fill(null);
  const ranked: Finished[][] = Array.from({ length: n }, () => []); // with alternatives: the best `keep` finished, best first

  /** Tokens and attention of the beam in row `row` fed at step `step` (it has `step` tokens). */
  const readBack = (step: number, row: number): Pick<DecodedCaption, 'ids' | 'words' | 'attention'> => {
    const ids: number[] = [];
    const attention: Float32Array[] = [];
    for (let s = step - 1; s >= 0; s--) {
      const h = history[s];
      const parent = h.parents[row];
      ids.push(h.tokens[row]);
      attention.push(h.attention.slice(parent * L, (parent + 1) * L));
      row = parent;
    }
    ids.reverse();
    attention.reverse();
    return { ids, words: ids.map((id) => vocab.word(id)), attention };
  };
  const finishedCaption = (f: Finished): DecodedCaption => ({ ...readBack(f.step, f.row), logProb: f.logProb, finished: true });
  /** The image's caption, with its alternatives when they were asked for. */
  const result = (image: number, caption: DecodedCaption): DecodedCaption => {
    if (keep === 0) return caption;
    const alternatives: CaptionAlternative[] = ranked[image].map((f) => {
      const { ids, words } = readBack(f.step, f.row);
      return { ids, words, logProb: f.logProb, score: f.normalised, finished: true };
    });
    if (!caption.finished) alternatives.unshift({ ids: caption.ids, words: caption.words, logProb: caption.logProb, score: norm(caption.logProb, caption.ids.length), finished: false });
    return { ...caption, alternatives: alternatives.slice(0, keep) };
  };

  let state: DecoderState = yield* encodeRequest(features, n);
  let images = Array.from({ length: n }, (_, i) => i); // active images, in row-block order
  let perImage = 1;                                      // rows per image: 1 at step 0 (only <start>), then k
  let scores = new Float64Array(n);                      // [R_t] summed log-prob of each row's beam
  let tokens = new Int32Array(n).fill(vocab.start);

  for (let t = 0; t < opts.maxLength && images.length > 0; t++) {
    const out = yield* stepRequest(state, tokens);
    const rows = images.length * perImage;
    mask(out.logits, rows, V);
    const lse = logSumExpRows(out.logits, rows, V);
    const attention = out.attention.slice(0, rows * L);
    const last = t === opts.maxLength - 1;
    /** A live beam's extension `c` read back as a caption that never reached <end>. */
    const unfinishedCaption = (c: Candidate): DecodedCaption => {
      const path = readBack(t, c.row);
      path.ids.push(c.token);
      path.words.push(vocab.word(c.token));
      path.attention.push(attention.slice(c.row * L, (c.row + 1) * L));
      return { ...path, logProb: c.score, finished: false };
    };

    const nextParents: number[] = [];
    const nextTokens: number[] = [];
    const nextScores: number[] = [];
    const nextImages: number[] = [];
    for (let g = 0; g < images.length; g++) {
      const image = images[g];
      const extensions = topExtensions(out.logits, lse, scores, g * perImage, perImage, V, 2 * k);
      const live: Candidate[] = [];
      extensions.forEach((c, rank) => {
        if (c.token !== vocab.end) {
          if (live.length < k) live.push(c);
        } else if (rank < k) {
          const normalised = norm(c.score, t + 1);
          const f: Finished = { logProb: c.score, normalised, step: t, row: c.row };
          const prev = best[image];
          if (!prev || normalised > prev.normalised) best[image] = f;
          if (keep > 0) insertRanked(ranked[image], f, keep);
        }
      });

      const finished = best[image];
      const liveBound = live.length > 0 ? norm(live[0].score, opts.maxLength) : -Infinity;
      // The hypothesis that must beat every live beam: the best, or with alternatives the keep-th best.
      const bar = keep > 0 ? (ranked[image].length >= keep ? ranked[image][keep - 1] : null) : finished;
      if (bar && bar.normalised >= liveBound) {
        results[image] = result(image, finishedCaption(finished!));
      } else if (last || live.length === 0) {
        // Out of steps: a finished hypothesis if there is one, else the best live beam (never nothing).
        results[image] = result(image, finished ? finishedCaption(finished) : live.length > 0 ? unfinishedCaption(live[0]) : emptyCaption());
      } else {
        nextImages.push(image);
        for (let j = 0; j < k; j++) {
          // Fewer than k finite extensions (tiny vocabularies): pad with dead copies that never win.
          const c = live[j] ?? { ...live[0], score: -Infinity };
          nextParents.push(c.row);
          nextTokens.push(c.token);
          nextScores.push(c.score);
        }
      }
    }
    history.push({ attention, tokens: Int32Array.from(nextTokens), parents: Int32Array.from(nextParents) });
    if (nextImages.length === 0) break;
    const parents = Int32Array.from(nextParents);
    // Beams only ever extend beams of their own image, so while no image has left the batch every
    // row keeps its image's encoder rows and only the hidden state needs reordering (no big copy).
    state = nextImages.length === images.length && perImage === k
      ? { ...state, hidden: gatherRows(out.hidden, parents, model.config.units) }
      : model.selectRows(state, parents, out.hidden);
    tokens = Int32Array.from(nextTokens);
    scores = Float64Array.from(nextScores);
    images = nextImages;
    perImage = k;
  }
  return results;
}

/** Inserts `f` into `list` (best first, at most `size`); an equal score goes after the earlier ones. */
function insertRanked(list: Finished[], f: Finished, size: number): void {
  let p = list.length;
  while (p > 0 && f.normalised > list[p - 1].normalised) p--;
  if (p >= size) return;
  list.splice(p, 0, f);
  if (list.length > size) list.pop();
}

/** rows [R, width] picked by `index` -> [index.length, width]. */
function gatherRows(rows: Float32Array, index: Int32Array, width: number): Float32Array {
  const out = new Float32Array(index.length * width);
  index.forEach((r, i) => out.set(rows.subarray(r * width, (r + 1) * width), i * width));
  return out;
}

function emptyCaption(): DecodedCaption {
  return { ids: [], words: [], attention: [], logProb: -Infinity, finished: false };
}

/**
 * The `m` best one-token extensions of rows first .. first+count-1, best first. A row's extension by
 * token v scores scores[row] + logits[row, v] - lse[row]. Candidates are visited in (row, token) order
 * and only a strictly better score displaces an earlier one, which is the documented tie rule.
 * Extensions scoring -Infinity (masked tokens, dead beams) are never returned.
 */
export function topExtensions(logits: Float32Array, lse: Float64Array, scores: Float64Array,
                              first: number, count: number, V: number, m: number): Candidate[] {
  const top: Candidate[] = [];
  for (let row = first; row < first + count; row++) {
    const base = scores[row] - lse[row];
    if (base === -Infinity || Number.isNaN(base)) continue;
    const o = row * V;
    for (let v = 0; v < V; v++) {
      const score = base + logits[o + v];
      if (score === -Infinity || (top.length === m && !(score > top[m - 1].score))) continue;
      let p = top.length;
      while (p > 0 && score > top[p - 1].score) p--;
      top.splice(p, 0, { score, row, token: v });
      if (top.length > m) top.pop();
    }
  }
  return top;
}
