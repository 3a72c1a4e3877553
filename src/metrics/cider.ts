/**
 * CIDEr-D exactly as pycocoevalcap computes it (cider/cider_scorer.py; the class is called CIDEr there,
 * and it is the "CIDEr-D" of the coco-caption server: clipped, length-penalised, x10).
 *
 * - Document frequency df(g): number of images (of the evaluated set) whose references contain n-gram g.
 * - ref_len = log(number of images). Each sentence becomes, per order n = 1..4, a vector
 *   v[g] = tf(g) * (ref_len - log(max(1, df(g)))) with its L2 norm.
 * - sim(hyp, ref)[n] = sum_g min(v_hyp[g], v_ref[g]) * v_ref[g] / (|v_hyp| |v_ref|)  (no division when a
 *   norm is 0), times the Gaussian length penalty exp(-(delta^2) / (2 sigma^2)), sigma = 6, where delta is
 *   the difference of the sentences' *bigram* counts (the original counts `length` only for n == 1, the
 *   bigram index). That equals the word-count difference unless a sentence is empty, where the
 *   similarity is 0 anyway; we keep the original's definition rather than rely on that.
 * - Image score = 10 * mean_n(sum over refs of sim) / number of refs; corpus score = mean over images.
 */
import { ngramCounts, ngramOrder, pythonSplit } from './python-split.js';

const N = 4;
const SIGMA = 6.0;

/** A sentence's n-grams as interned ids, in first-occurrence order (precook's dict order within an order). */
interface Cooked {
  ids: Int32Array;
  orders: Uint8Array; // n - 1, in 0..N-1
  tfs: Float64Array;
}

interface TfIdfVector {
  vec: Map<number, number>[]; // [N] n-gram id -> weight
  norm: number[]; // [N]
  length: number; // number of bigrams (see file comment)
}

function cook(sentence: string, intern: Map<string, number>): Cooked {
  const counts = ngramCounts(pythonSplit(sentence), N);
  const ids = new Int32Array(counts.size),
    orders = new Uint8Array(counts.size),
    tfs = new Float64Array(counts.size);
  let i = 0;
  for (const [g, tf] of counts) {
    let id = intern.get(g);
    if (id === undefined) intern.set(g, (id = intern.size));
    ids[i] = id;
    orders[i] = ngramOrder(g) - 1;
    tfs[i++] = tf;
  }
  return { ids, orders, tfs };
}

/** As cook, for a hypothesis: known n-grams keep their ids, unknown ones get distinct negative ids. */
function cookLookup(sentence: string, intern: ReadonlyMap<string, number>): Cooked {
  const counts = ngramCounts(pythonSplit(sentence), N);
  const ids = new Int32Array(counts.size),
    orders = new Uint8Array(counts.size),
    tfs = new Float64Array(counts.size);
  let i = 0,
    unknown = 0;
  for (const [g, tf] of counts) {
    ids[i] = intern.get(g) ?? -++unknown;
    orders[i] = ngramOrder(g) - 1;
    tfs[i++] = tf;
  }
  return { ids, orders, tfs };
}

function toVector(c: Cooked, docFreq: Float64Array, refLen: number): TfIdfVector {
  const vec = Array.from({ length: N }, () => new Map<number, number>());
  const normSq = new Array<number>(N).fill(0);
  let length = 0;
  for (let i = 0; i < c.ids.length; i++) {
    const id = c.ids[i],
      n = c.orders[i],
      tf = c.tfs[i];
    // n-grams of the hypothesis that no reference has get df 0 -> log(max(1, 0)) = 0.
    const df = Math.log(Math.max(1, id >= 0 && id < docFreq.length ? docFreq[id] : 0));
    const w = tf * (refLen - df);
    vec[n].set(id, w);
    normSq[n] += w ** 2;
    if (n === 1) length += tf;
  }
  return { vec, norm: normSq.map(Math.sqrt), length };
}

function similarity(hyp: TfIdfVector, ref: TfIdfVector): number[] {
  const delta = hyp.length - ref.length;
  const val = new Array<number>(N).fill(0);
  for (let n = 0; n < N; n++) {
    for (const [g, wh] of hyp.vec[n]) {
      const wr = ref.vec[n].get(g) ?? 0;
      val[n] += Math.min(wh, wr) * wr;
    }
    if (hyp.norm[n] !== 0 && ref.norm[n] !== 0) val[n] /= hyp.norm[n] * ref.norm[n];
    val[n] *= Math.E ** (-(delta ** 2) / (2 * SIGMA ** 2));
  }
  return val;
}

/**
 * CIDEr-D against a fixed reference corpus: document frequencies and reference vectors are computed once,
 * then any number of hypotheses are scored against one image's references. `ciderDImages` is this with the
 * evaluated set as the corpus (pycocoevalcap); self-critical training scores sampled captions against the
 * training corpus (its df, as in Rennie et al. 2017 and ruotianluo/self-critical.pytorch).
 */
export class CiderD {
  // N-gram strings interned to ids; the references' ids are exactly 0..docFreq.length-1.
  private readonly intern = new Map<string, number>();
  private readonly docFreq: Float64Array;
  private readonly refLen: number;
  private readonly refVectors: TfIdfVector[][];

  /** refs[i]: the tokenised references of image i (at least one each). */
  constructor(refs: readonly (readonly string[])[]) {
    const refCooked = refs.map((rs, i) => {
      if (rs.length === 0) throw new Error(`CIDEr needs at least one reference per image (image ${i} has none).`);
      return rs.map((r) => cook(r, this.intern));
    });
    // docFreq[id]: number of images whose references contain the n-gram (counted once per image).
    this.docFreq = new Float64Array(this.intern.size);
    const lastImage = new Int32Array(this.intern.size).fill(-1);
    refCooked.forEach((cooked, image) => {
      for (const c of cooked) {
        for (const id of c.ids) {
          if (lastImage[id] !== image) {
            lastImage[id] = image;
            this.docFreq[id] += 1;
          }
        }
      }
    });
    this.refLen = Math.log(refs.length);
    this.refVectors = refCooked.map((cs) => cs.map((c) => toVector(c, this.docFreq, this.refLen)));
  }

  get images(): number {
    return this.refVectors.length;
  }

  /** CIDEr-D of one tokenised hypothesis against the references of image `image`. */
  score(hyp: string, image: number): number {
    return this.scoreVector(this.hypothesisVector(hyp), image);
  }

  /** CIDEr-D of one tokenised hypothesis against the references of each of `images` (the hypothesis cooked once). */
  scoreImages(hyp: string, images: readonly number[]): number[] {
    const h = this.hypothesisVector(hyp);
    return images.map((image) => this.scoreVector(h, image));
  }

  private hypothesisVector(hyp: string): TfIdfVector {
    // N-grams that no reference has get fresh negative ids: df 0, and they never match (no interning, so
    // scoring millions of sampled captions does not grow the table).
    return toVector(cookLookup(hyp, this.intern), this.docFreq, this.refLen);
  }

  private scoreVector(h: TfIdfVector, image: number): number {
    const refs = this.refVectors[image];
    if (!refs) throw new Error(`CIDEr: image ${image} is outside the ${this.refVectors.length} reference images.`);
    const score = new Array<number>(N).fill(0);
    for (const ref of refs) {
      const sim = similarity(h, ref);
      for (let n = 0; n < N; n++) score[n] += sim[n];
    }
    const mean = (score[0] + score[1] + score[2] + score[3]) / N;
    return (mean / refs.length) * 10.0;
  }
}

/** Per-image CIDEr-D scores of tokenised hypotheses against their tokenised references (same order). */
export function ciderDImages(hyps: readonly string[], refs: readonly (readonly string[])[]): number[] {
  if (hyps.length !== refs.length)
    throw new Error(`CIDEr: ${hyps.length} hypotheses for ${refs.length} reference sets.`);
  const scorer = new CiderD(refs);
  return hyps.map((hyp, i) => scorer.score(hyp, i));
}

/** Corpus CIDEr-D: the mean of the per-image scores. */
export function ciderD(hyps: readonly string[], refs: readonly (readonly string[])[]): number {
  const scores = ciderDImages(hyps, refs);
  if (scores.length === 0) return NaN; // numpy's mean of an empty array
  return scores.reduce((a, b) => a + b, 0) / scores.length;
}
