/**
 * IEEE-754 half precision (binary16) <-> float32, for the feature store.
 *
 * Node 20 has no Float16Array, so halves travel as raw Uint16 bit patterns:
 * - encode: bit manipulation with round-to-nearest-even (the same rounding as numpy's astype(float16)),
 *   overflow to +-Inf, gradual underflow to subnormals, NaN kept NaN;
 * - decode: one lookup in a 65536-entry float32 table (256 KiB, built once), the fastest decode in plain JS.
 *
 * CNN features are post-ReLU activations in roughly [0, 30]: fp16 keeps ~3 significant digits there,
 * far below the noise the decoder trains with, and halves disk and page-cache traffic.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Bit pattern of the binary16 nearest to `value` (ties to even). */
export function toHalfBits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;

  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf or NaN (quiet)
  // Re-bias the exponent: float32 bias 127, float16 bias 15.
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // too large: Inf
  if (e <= 0) {
    // Subnormal half (or zero): shift the mantissa (with its implicit 1) right, rounding to nearest even.
    if (e < -10) return sign; // below half the smallest subnormal: signed zero
    mant |= 0x800000;
    const shift = 14 - e; // 14..24
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    const up = rem > mid || (rem === mid && (half & 1) === 1) ? 1 : 0;
    return sign | (half + up);
  }
  // Normal: keep the top 10 mantissa bits, round on the 13 dropped ones. A carry out of the mantissa
  // correctly bumps the exponent (and can round up to Inf).
  const half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  const up = rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1) ? 1 : 0;
  return sign | (half + up);
}

/** Encode `src` into `dst` (same length) as binary16 bit patterns. */
export function encodeHalf(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (dst.length < src.length)
    throw new RangeError(`encodeHalf: destination holds ${dst.length} values, need ${src.length}`);
  for (let i = 0; i < src.length; i++) dst[i] = toHalfBits(src[i]);
  return dst;
}

let table: Float32Array | undefined;

/** The 65536-entry decode table: HALF_TO_FLOAT[bits] is the float value of that binary16 pattern. */
export function halfTable(): Float32Array {
  if (table) return table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0)
      t[h] = sign * mant * 2 ** -24; // zero / subnormal
    else if (exp === 0x1f) t[h] = mant ? NaN : sign * Infinity;
    else t[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  table = t;
  return t;
}

/** Decode `count` halves from `src` into `dst` starting at `dstOffset`. */
export function decodeHalf(src: Uint16Array, dst: Float32Array, dstOffset = 0, count = src.length): Float32Array {
  const t = halfTable();
  for (let i = 0; i < count; i++) dst[dstOffset + i] = t[src[i]];
  return dst;
}
