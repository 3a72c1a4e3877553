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
  const ids = new Int32Array(counts.size), orders = new Uint8Array(counts.size), tfs = new Float64Array(counts.size);
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

function toVector(c: Cooked, docFreq: Float64Array, refLen: number): TfIdfVector {
  const vec = Array.from({ length: N }, () => new Map<number, number>());
  const normSq = new Array<number>(N).fill(0);
  let length = 0;
  for (let i = 0; i < c.ids.length; i++) {
    const id = c.ids[i], n = c.orders[i], tf = c.tfs[i];
    // n-grams of the hypothesis that no reference has get df 0 -> log(max(1, 0)) = 0.
    const df = Math.log(Math.max(1, id < docFreq.length ? docFreq[id] : 0));
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

/** Per-image CIDEr-D scores of tokenised hypotheses against their tokenised references (same order). */
export function ciderDImages(hyps: readonly string[], refs: readonly (readonly string[])[]): number[] {
  // N-gram strings are interned to ids once; the references' ids come first, so docFreq covers them.
  const intern = new Map<string, number>();
  const refCooked = refs.map((rs) => {
    if (rs.length === 0) throw new Error('CIDEr needs at least one reference per image.');
    return rs.map((r) => cook(r, intern));
  });
  // docFreq[id]: number of images whose references contain the n-gram (counted once per image).
  const docFreq = new Float64Array(intern.size);
  const lastImage = new Int32Array(intern.size).fill(-1);
  refCooked.forEach((cooked, image) => {
    for (const c of cooked) {
      for (const id of c.ids) {
        if (lastImage[id] !== image) {
          lastImage[id] = image;
          docFreq[id] += 1;
        }
      }
    }
  });
  const refLen = Math.log(refs.length);
  return hyps.map((hyp, i) => {
    const h = toVector(cook(hyp, intern), docFreq, refLen);
    const score = new Array<number>(N).fill(0);
    for (const rc of refCooked[i]) {
      const sim = similarity(h, toVector(rc, docFreq, refLen));
      for (let n = 0; n < N; n++) score[n] += sim[n];
    }
    const mean = (score[0] + score[1] + score[2] + score[3]) / N;
    return (mean / refCooked[i].length) * 10.0;
  });
}

/** Corpus CIDEr-D: the mean of the per-image scores. */
export function ciderD(hyps: readonly string[], refs: readonly (readonly string[])[]): number {
  const scores = ciderDImages(hyps, refs);
  if (scores.length === 0) return NaN; // numpy's mean of an empty array
  return scores.reduce((a, b) => a + b, 0) / scores.length;
}
