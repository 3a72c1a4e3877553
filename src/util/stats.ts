/**
 * Summary statistics of repeated measurements (benchmarks report medians and percentiles).
 *
 * quantile(xs, q): the q-quantile by linear interpolation between the order statistics (Hyndman and Fan's type 7,
 * the default of numpy.quantile, R's quantile and PyTorch's torch.quantile). With xs sorted ascending into
 * s[0..n-1], h = (n - 1) q, and the result is s[floor h] + (h - floor h) (s[floor h + 1] - s[floor h]): q = 0 is the
 * minimum, q = 1 the maximum, q = 0.5 the median (the mean of the two middle values of an even count). Every
 * result lies between two measured values; NaN for no values.
 */
export function quantile(xs: readonly number[], q: number): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile: q must be in [0, 1], got ${q}`);
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const h = (s.length - 1) * q;
  const lo = Math.floor(h),
    f = h - lo;
  // (1 - f) lo + f hi rather than lo + f (hi - lo): exact at f = 0, and at f = 1/2 it is (lo + hi) / 2 exactly.
  return f === 0 ? s[lo] : (1 - f) * s[lo] + f * s[lo + 1];
}

/** The median: quantile(xs, 0.5), the middle value or the mean of the two middle values. NaN for none. */
export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}
