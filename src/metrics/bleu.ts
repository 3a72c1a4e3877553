/**
 * Corpus BLEU-1..4 exactly as pycocoevalcap computes it (bleu/bleu_scorer.py, `compute_score(option='closest')`).
 *
 * Per image: guess[k] = max(0, len(hyp) - k) (k = 0..3) and correct[k] = sum over the hyp's (k+1)-grams
 * of min(count in hyp, max count in any single ref). The effective reference length is the ref length
 * closest to the hyp length (ties: the shorter). These are summed over the corpus, then
 *   BLEU-n = (prod_{k<n} (correct[k] + 1e-15) / (guess[k] + 1e-9)) ^ (1/n)
 * times the brevity penalty exp(1 - reflen/testlen) when testlen < reflen, computed with the same
 * tiny/small guards (ratio = (testlen + 1e-15) / (reflen + 1e-9)) so an empty corpus scores 0, not NaN.
 */
import { ngramCounts, ngramOrder, pythonSplit } from './python-split.js';

const N = 4;

export interface BleuStats {
  testlen: number;
  reflen: number;
  guess: number[]; // [N]
  correct: number[]; // [N]
}

/** The sufficient statistics of one image (pycocoevalcap's cook_refs + cook_test, eff='closest'). */
export function bleuImageStats(hyp: string, refs: readonly string[]): BleuStats {
  if (refs.length === 0) throw new Error('BLEU needs at least one reference per image.');
  const maxRefCounts = new Map<string, number>();
  const refLens: number[] = [];
  for (const ref of refs) {
    const words = pythonSplit(ref);
    refLens.push(words.length);
    for (const [g, c] of ngramCounts(words, N)) maxRefCounts.set(g, Math.max(maxRefCounts.get(g) ?? 0, c));
  }
  const words = pythonSplit(hyp);
  const testlen = words.length;
  // min over (|l - testlen|, l) tuples: closest length, ties broken by the shorter one.
  let reflen = refLens[0];
  for (const l of refLens) {
    const d = Math.abs(l - testlen),
      bd = Math.abs(reflen - testlen);
    if (d < bd || (d === bd && l < reflen)) reflen = l;
  }
  const guess = Array.from({ length: N }, (_, k) => Math.max(0, testlen - k));
  const correct = new Array<number>(N).fill(0);
  for (const [g, c] of ngramCounts(words, N)) {
    correct[ngramOrder(g) - 1] += Math.min(maxRefCounts.get(g) ?? 0, c);
  }
  return { testlen, reflen, guess, correct };
}

/** Corpus BLEU-1..4 from per-image statistics. */
export function bleuFromStats(stats: readonly BleuStats[]): number[] {
  const small = 1e-9;
  const tiny = 1e-15;
  let testlen = 0,
    reflen = 0;
  const guess = new Array<number>(N).fill(0);
  const correct = new Array<number>(N).fill(0);
  for (const s of stats) {
    testlen += s.testlen;
    reflen += s.reflen;
    for (let k = 0; k < N; k++) {
      guess[k] += s.guess[k];
      correct[k] += s.correct[k];
    }
  }
  const bleus: number[] = [];
  let product = 1;
  for (let k = 0; k < N; k++) {
    product *= (correct[k] + tiny) / (guess[k] + small);
    bleus.push(product ** (1 / (k + 1)));
  }
  const ratio = (testlen + tiny) / (reflen + small);
  if (ratio < 1) for (let k = 0; k < N; k++) bleus[k] *= Math.exp(1 - 1 / ratio);
  return bleus;
}

/** Corpus BLEU-1..4 of tokenised hypotheses against their tokenised references (same order). */
export function bleu(hyps: readonly string[], refs: readonly (readonly string[])[]): number[] {
  return bleuFromStats(hyps.map((h, i) => bleuImageStats(h, refs[i])));
}
