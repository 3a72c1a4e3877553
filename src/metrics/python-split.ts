/**
 * Python's `str.split()` (no argument): split on runs of Unicode whitespace, drop empty strings.
 * The official scorers use it for BLEU and CIDEr n-grams; JS's /\s+/ differs on a few code points
 * (Python also splits on U+001C..U+001F and U+0085, and does not split on U+FEFF).
 */
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

export function pythonSplit(s: string): string[] {
  return s.split(PY_WHITESPACE).filter((w) => w.length > 0);
}

/**
 * Count the 1..n-grams of a token list, as pycocoevalcap's `precook` does.
 * Keys are the n-gram's words joined by a space (words never contain whitespace after pythonSplit,
 * so the key is unambiguous); the n of a key is its number of spaces + 1.
 */
export function ngramCounts(words: readonly string[], n: number): Map<string, number> {
  // Grown one word at a time from each start. Within one order, keys are still first inserted in
  // order of position, as in precook, so sums over a Map's n-grams of one order add in the same order.
  const counts = new Map<string, number>();
  for (let i = 0; i < words.length; i++) {
    let key = words[i];
    counts.set(key, (counts.get(key) ?? 0) + 1);
    for (let k = 2; k <= n && i + k <= words.length; k++) {
      key += ' ' + words[i + k - 1];
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return counts;
}

/** Order of an n-gram key made by ngramCounts. */
export function ngramOrder(key: string): number {
  let n = 1;
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) === 32) n++;
  return n;
}
