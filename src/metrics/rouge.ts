/**
 * ROUGE-L exactly as pycocoevalcap computes it (rouge/rouge.py).
 *
 * Per image: for each reference, LCS length over tokens (split on single spaces, as the original's
 * `split(" ")`, so "" is one empty token), precision = lcs/|hyp|, recall = lcs/|ref|; take the max
 * precision and the max recall over references independently, then
 *   F = (1 + beta^2) P R / (R + beta^2 P), beta = 1.2 (0 when either is 0).
 * The corpus score is the mean over images.
 */
const BETA = 1.2;

/** Length of the longest common subsequence of two token lists. */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  const [long, short] = a.length >= b.length ? [a, b] : [b, a];
  // One DP row over the shorter sequence: prev[j] = LCS(long[0..i), short[0..j)).
  let prev = new Array<number>(short.length + 1).fill(0);
  let cur = new Array<number>(short.length + 1).fill(0);
  for (let i = 1; i <= long.length; i++) {
    for (let j = 1; j <= short.length; j++) {
      cur[j] = long[i - 1] === short[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[short.length];
}

/** ROUGE-L of one tokenised hypothesis against its tokenised references. */
export function rougeLImage(hyp: string, refs: readonly string[]): number {
  if (refs.length === 0) throw new Error('ROUGE-L needs at least one reference per image.');
  const tokC = hyp.split(' ');
  let precMax = -Infinity,
    recMax = -Infinity;
  for (const ref of refs) {
    const tokR = ref.split(' ');
    const lcs = lcsLength(tokR, tokC);
    precMax = Math.max(precMax, lcs / tokC.length);
    recMax = Math.max(recMax, lcs / tokR.length);
  }
  if (precMax === 0 || recMax === 0) return 0;
  return ((1 + BETA ** 2) * precMax * recMax) / (recMax + BETA ** 2 * precMax);
}

/** Mean ROUGE-L over images. */
export function rougeL(hyps: readonly string[], refs: readonly (readonly string[])[]): number {
  if (hyps.length === 0) return NaN; // numpy's mean of an empty array
  let sum = 0;
  for (let i = 0; i < hyps.length; i++) sum += rougeLImage(hyps[i], refs[i]);
  return sum / hyps.length;
}
