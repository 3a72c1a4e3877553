/**
 * Beam search for N images at once, plain or diverse: the batch holds the beams of every still-searching image
 * (image-major), so one model.step serves every beam of every image.
 *
 * Plain beam search (groups 1): per image and step, the best 2k one-token extensions of its beams are ranked by
 * summed log-prob (ties: lower beam, then lower token id). An <end> extension ranked within the first k becomes
 * a finished hypothesis, scored logProb / length^alpha (length counts <end>); the best k other extensions are the
 * next beams. This makes width 1 with alpha 0 exactly greedy decoding.
 *
 * Diverse beam search (Vijayakumar et al. 2016, Hamming diversity; the unstaggered form transformers and
 * ImageCaptioning.pytorch's diverse search share): the k beams form G groups of k' = k / G, all starting from
 * <start>. At each step the groups extend in order; group g ranks its extensions as above but with each token's
 * log-prob lowered by diversity x the number of group 0 .. g-1 beams that took that token at this step, and its
 * beams carry these lowered (search) scores. Finished hypotheses are ranked by search score / length^alpha, and
 * the caption is the best over all groups; its logProb and every alternative's logProb stay the model's own.
 * Group 0 is never penalised, so it is exactly a plain beam search of width k'; with G = 1 nothing changes.
 *
 * A group stops once no live beam of it can still beat its best finished hypothesis. Search scores only fall, so
 * a live beam's final normalised score is at most its score now / maxLength^alpha; for plain beam search the
 * result is therefore the same as searching all the way to maxLength (a stopped group's tokens no longer count
 * toward the later groups' penalties). An image is done when all its groups are. If no beam ever emits <end>,
 * the image still gets a caption: its best live beam at maxLength, marked finished: false (never an empty result).
 *
 * With `alternatives: m` each caption also lists the m best finished hypotheses over all groups (best first, the
 * caption itself among them). A group then stops only once its m-th best finished hypothesis beats every live
 * beam (or at maxLength), so it may search longer; the beams themselves and the best caption are the same,
 * because later hypotheses never beat one that already beat every live beam (ties keep the earlier one).
 *
 * Logits processors (suppressed tokens, trigram blocking) edit each step's logits before normalisation.
 *
 * Shapes: L locations, V vocabulary, R_t rows fed at step t.
 */
import type { DecoderModelBase, DecoderState } from '../model/types.js';
import { logSumExpRows, type LogitsProcessor } from './logits.js';
import { encodeRequest, stepRequest, type Search } from './search.js';
import type { CaptionAlternative, DecodedCaption, DecodeVocab } from './types.js';

export interface BeamOptions {
  beam: number; // k >= 1
  alpha: number; // length-normalisation exponent, 0 = raw score
  maxLength: number; // most tokens per caption, <end> included
  /** Edits each step's logits [rows, V] before normalisation (e.g. suppressTokens). */
  processor: LogitsProcessor;
  /** Whether `processor` reads each row's tokens so far (trigram blocking); they are tracked only then. */
  processorNeedsPrefixes?: boolean;
  /** Finished hypotheses to list per caption (0 = none, the default); at most `beam`. */
  alternatives?: number;
  /** Diverse beam search: groups G dividing beam (default 1) and the Hamming diversity strength (default 0). */
  groups?: number;
  diversity?: number;
}

/** What one step decided, kept to read back each caption's tokens and attention at the end. */
interface StepRecord {
  attention: Float32Array; // [R_t, L] attention of the rows fed at step t
  tokens: Int32Array; // [R_{t+1}] token each next row appended
  parents: Int32Array; // [R_{t+1}] row (of step t) each next row extends
}

/** A beam (row `row` fed at step `step`) plus one more token, with its summed search score. */
interface Candidate {
  score: number;
  row: number;
  token: number;
}

interface Finished {
  logProb: number;
  normalised: number;
  step: number;
  row: number;
}

/** One group of one image (an image's groups are kept in group order): where its rows are this step and what it has found. */
interface Unit {
  image: number;
  first: number; // its first row this step
  count: number; // its rows this step (1 at step 0: the image's <start> row)
  best: Finished | null;
  ranked: Finished[]; // with alternatives: its best `keep` finished, best first
  /** Its best live beam when it ran out of steps without finishing anything. */
  unfinished: { caption: DecodedCaption; normalised: number } | null;
}

/** Decodes features [n, L, C] with beam search of width opts.beam (a search: run it with runSearch/runSearchAsync). */
export function* decodeBeam(
  model: DecoderModelBase,
  features: Float32Array,
  n: number,
  vocab: DecodeVocab,
  opts: BeamOptions,
): Search<DecodedCaption[]> {
  const k = opts.beam;
  if (!Number.isInteger(k) || k < 1) throw new Error(`beam width must be an integer >= 1, got ${k}`);
  const G = opts.groups ?? 1;
  if (!Number.isInteger(G) || G < 1 || k % G !== 0)
    throw new Error(`groups must be an integer >= 1 dividing the beam width ${k}, got ${G}`);
  const width = k / G; // beams per group
  const diversity = G > 1 ? (opts.diversity ?? 0) : 0;
  if (!(diversity >= 0)) throw new Error(`diversity must be >= 0, got ${opts.diversity}`);
  const keep = opts.alternatives ?? 0;
  if (!Number.isInteger(keep) || keep < 0 || keep > k)
    throw new Error(`alternatives must be an integer in [0, beam = ${k}], got ${keep}`);
  const V = model.config.vocabSize;
  const L = model.config.locations;
  const norm = (score: number, length: number) => (opts.alpha === 0 ? score : score / Math.pow(length, opts.alpha));
  const results: DecodedCaption[] = new Array(n);
  if (n === 0) return results;

  const history: StepRecord[] = [];
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
  const finishedCaption = (f: Finished): DecodedCaption => ({
    ...readBack(f.step, f.row),
    logProb: f.logProb,
    finished: true,
  });
  const groupsLeft = new Array<number>(n).fill(G);
  const allUnits: Unit[][] = Array.from({ length: n }, () => []);
  /** The image's caption from all its groups, with its alternatives when they were asked for. */
  const result = (image: number): DecodedCaption => {
    const units = allUnits[image];
    let best: Finished | null = null;
    for (const u of units) if (u.best && (!best || u.best.normalised > best.normalised)) best = u.best;
    let unfinished: Unit['unfinished'] = null;
    for (const u of units)
      if (u.unfinished && (!unfinished || u.unfinished.normalised > unfinished.normalised)) unfinished = u.unfinished;
    const caption = best ? finishedCaption(best) : unfinished ? unfinished.caption : emptyCaption();
    if (keep === 0) return caption;
    // stable: equal scores keep group order, then each group's own order
    const ranked = units.flatMap((u) => u.ranked).sort((a, b) => b.normalised - a.normalised);
    const alternatives: CaptionAlternative[] = ranked.map((f) => {
      const { ids, words } = readBack(f.step, f.row);
      return { ids, words, logProb: f.logProb, score: f.normalised, finished: true };
    });
    if (!caption.finished && unfinished) {
      alternatives.unshift({
        ids: caption.ids,
        words: caption.words,
        logProb: caption.logProb,
        score: unfinished.normalised,
        finished: false,
      });
    }
    return { ...caption, alternatives: alternatives.slice(0, keep) };
  };
  const unitDone = (u: Unit) => {
    if (--groupsLeft[u.image] === 0) results[u.image] = result(u.image);
  };

  let state: DecoderState = yield* encodeRequest(features, n);
  // Step 0: every group of image i extends the image's one <start> row i.
  let units: Unit[] = [];
  for (let image = 0; image < n; image++) {
    for (let group = 0; group < G; group++) {
      const u: Unit = { image, first: image, count: 1, best: null, ranked: [], unfinished: null };
      allUnits[image].push(u);
      units.push(u);
    }
  }
  let rowImages = Int32Array.from({ length: n }, (_, i) => i); // [R_t] image of each row
  let scores = new Float64Array(n); // [R_t] search score of each row's beam
  let logProbs = diversity > 0 ? new Float64Array(n) : scores; // [R_t] its log-prob (the same array without penalties)
  let prefixes: number[][] = opts.processorNeedsPrefixes ? Array.from({ length: n }, () => []) : [];
  let tokens = new Int32Array(n).fill(vocab.start);
  const chosen = diversity > 0 ? new Float64Array(V) : null; // per image and step: beams of earlier groups that took each token
  const touched: number[] = [];

  for (let t = 0; t < opts.maxLength && units.length > 0; t++) {
    const out = yield* stepRequest(state, tokens);
    const rows = rowImages.length;
    opts.processor(out.logits, rows, V, opts.processorNeedsPrefixes ? prefixes : undefined);
    const lse = logSumExpRows(out.logits, rows, V);
    const attention = out.attention.slice(0, rows * L);
    const last = t === opts.maxLength - 1;
    const logProbOf = (c: Candidate) =>
      logProbs === scores ? c.score : logProbs[c.row] - lse[c.row] + out.logits[c.row * V + c.token];
    /** A live beam's extension `c` read back as a caption that never reached <end>. */
    const unfinishedCaption = (c: Candidate): DecodedCaption => {
      const path = readBack(t, c.row);
      path.ids.push(c.token);
      path.words.push(vocab.word(c.token));
      path.attention.push(attention.slice(c.row * L, (c.row + 1) * L));
      return { ...path, logProb: logProbOf(c), finished: false };
    };

    const next: Candidate[] = [];
    const nextUnits: Unit[] = [];
    let image = -1;
    for (const u of units) {
      if (chosen && u.image !== image) {
        for (const v of touched) chosen[v] = 0;
        touched.length = 0;
      }
      image = u.image;
      const penalty = chosen && touched.length > 0 ? chosen : null;
      const extensions = topExtensions(out.logits, lse, scores, u.first, u.count, V, 2 * width, penalty, diversity);
      const live: Candidate[] = [];
      extensions.forEach((c, rank) => {
        if (c.token !== vocab.end) {
          if (live.length < width) live.push(c);
        } else if (rank < width) {
          const f: Finished = { logProb: logProbOf(c), normalised: norm(c.score, t + 1), step: t, row: c.row };
          if (!u.best || f.normalised > u.best.normalised) u.best = f;
          if (keep > 0) insertRanked(u.ranked, f, keep);
        }
      });
      if (chosen) {
        for (const c of live) {
          if (chosen[c.token] === 0) touched.push(c.token);
          chosen[c.token]++;
        }
      }

      const liveBound = live.length > 0 ? norm(live[0].score, opts.maxLength) : -Infinity;
      // The hypothesis that must beat every live beam: the best, or with alternatives the keep-th best.
      const bar = keep > 0 ? (u.ranked.length >= keep ? u.ranked[keep - 1] : null) : u.best;
      if (bar && bar.normalised >= liveBound) {
        unitDone(u);
      } else if (last || live.length === 0) {
        // Out of steps: a finished hypothesis if there is one, else the best live beam (never nothing).
        if (!u.best && live.length > 0)
          u.unfinished = { caption: unfinishedCaption(live[0]), normalised: norm(live[0].score, t + 1) };
        unitDone(u);
      } else {
        u.first = next.length;
        u.count = width;
        nextUnits.push(u);
        // Fewer than k' finite extensions (tiny vocabularies): pad with dead copies that never win.
        for (let j = 0; j < width; j++) next.push(live[j] ?? { ...live[0], score: -Infinity });
      }
    }
    const parents = Int32Array.from(next, (c) => c.row);
    history.push({ attention, tokens: Int32Array.from(next, (c) => c.token), parents });
    if (nextUnits.length === 0) break;
    const nextRowImages = Int32Array.from(parents, (row) => rowImages[row]);
    // Beams only ever extend beams of their own image, so while every row keeps its image (no image left the
    // batch, no group started) the encoder rows stay and only the hidden state needs reordering (no big copy).
    state = sameRows(nextRowImages, rowImages)
      ? { ...state, hidden: gatherRows(out.hidden, parents, model.config.units) }
      : model.selectRows(state, parents, out.hidden);
    tokens = Int32Array.from(next, (c) => c.token);
    if (logProbs !== scores)
      logProbs = Float64Array.from(next, (c) => (c.score === -Infinity ? -Infinity : logProbOf(c)));
    scores = Float64Array.from(next, (c) => c.score);
    if (!chosen) logProbs = scores;
    if (opts.processorNeedsPrefixes) prefixes = next.map((c) => [...prefixes[c.row], c.token]);
    rowImages = nextRowImages;
    units = nextUnits;
  }
  return results;
}

const sameRows = (a: Int32Array, b: Int32Array) => a.length === b.length && a.every((x, i) => x === b[i]);

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
 * token v scores scores[row] + logits[row, v] - lse[row], less strength x penalty[v] when a penalty is given
 * (diverse beam search). Candidates are visited in (row, token) order and only a strictly better score
 * displaces an earlier one, which is the documented tie rule. Extensions scoring -Infinity (masked tokens,
 * dead beams) are never returned.
 */
export function topExtensions(
  logits: Float32Array,
  lse: Float64Array,
  scores: Float64Array,
  first: number,
  count: number,
  V: number,
  m: number,
  penalty: Float64Array | null = null,
  strength = 0,
): Candidate[] {
  const top: Candidate[] = [];
  const offer = (score: number, row: number, token: number) => {
    if (score === -Infinity || (top.length === m && !(score > top[m - 1].score))) return;
    let p = top.length;
    while (p > 0 && score > top[p - 1].score) p--;
    top.splice(p, 0, { score, row, token });
    if (top.length > m) top.pop();
  };
  for (let row = first; row < first + count; row++) {
    const base = scores[row] - lse[row];
    if (base === -Infinity || Number.isNaN(base)) continue;
    const o = row * V;
    // the bar a token must pass (the m-th best so far) is checked inline: most tokens never reach offer()
    if (penalty) {
      for (let v = 0; v < V; v++) {
        const score = base + logits[o + v] - strength * penalty[v];
        if (top.length < m || score > top[m - 1].score) offer(score, row, v);
      }
    } else {
      for (let v = 0; v < V; v++) {
        const score = base + logits[o + v];
        if (top.length < m || score > top[m - 1].score) offer(score, row, v);
      }
    }
  }
  return top;
}
