/**
 * Output size and [before, after] padding along one axis, as TensorFlow computes them:
 * VALID: out = floor((in - k) / s) + 1, no padding; SAME: out = ceil(in / s), the total padding
 * max((out - 1) * s + k - in, 0) split with the odd pixel at the end (bottom/right).
 */
export function padding(mode: string, size: number, k: number, s: number, layer: string): [number, [number, number]] {
  if (mode === 'valid') return [Math.floor((size - k) / s) + 1, [0, 0]];
  if (mode === 'same') {
    const out = Math.ceil(size / s);
    const total = Math.max((out - 1) * s + k - size, 0);
    return [out, [Math.floor(total / 2), total - Math.floor(total / 2)]];
  }
  throw new Error(`Layer "${layer}": padding "${mode}" is not supported (valid, same).`);
}
