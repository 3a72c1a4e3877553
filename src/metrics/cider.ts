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

interface TfIdfVector {
  vec: Map<string, number>[]; // [N] n-gram -> weight
  norm: number[]; // [N]
  length: number; // number of bigrams (see file comment)
}

function toVector(counts: Map<string, number>, docFreq: Map<string, number>, refLen: number): TfIdfVector {
  const vec = Array.from({ length: N }, () => new Map<string, number>());
  const normSq = new Array<number>(N).fill(0);
  let length = 0;
  for (const [g, tf] of counts) {
    const df = Math.log(Math.max(1, docFreq.get(g) ?? 0));
    const n = ngramOrder(g) - 1;
    const w = tf * (refLen - df);
    vec[n].set(g, w);
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
  const refCounts = refs.map((rs) => {
    if (rs.length === 0) throw new Error('CIDEr needs at least one reference per image.');
    return rs.map((r) => ngramCounts(pythonSplit(r), N));
  });
  const docFreq = new Map<string, number>();
  for (const counts of refCounts) {
    const seen = new Set<string>();
    for (const c of counts) for (const g of c.keys()) seen.add(g);
    for (const g of seen) docFreq.set(g, (docFreq.get(g) ?? 0) + 1);
  }
  const refLen = Math.log(refs.length);
  return hyps.map((hyp, i) => {
    const h = toVector(ngramCounts(pythonSplit(hyp), N), docFreq, refLen);
    const score = new Array<number>(N).fill(0);
    for (const rc of refCounts[i]) {
      const sim = similarity(h, toVector(rc, docFreq, refLen));
      for (let n = 0; n < N; n++) score[n] += sim[n];
    }
    const mean = (score[0] + score[1] + score[2] + score[3]) / N;
    return (mean / refCounts[i].length) * 10.0;
  });
}

/** Corpus CIDEr-D: the mean of the per-image scores. */
export function ciderD(hyps: readonly string[], refs: readonly (readonly string[])[]): number {
  const scores = ciderDImages(hyps, refs);
  if (scores.length === 0) return NaN; // numpy's mean of an empty array
  return scores.reduce((a, b) => a + b, 0) / scores.length;
}
