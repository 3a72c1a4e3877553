/**
 * Pure-TypeScript image resize for platforms without sharp (browsers): decoded RGB(A) pixels -> RGB uint8
 * size x size, ignoring the aspect ratio (fit 'fill'). Alpha is dropped; same size in and out is a copy.
 *
 * Shrinking (both sides >= size) is libvips' resize with kernel 'linear' as sharp 0.35 (libvips 8.18) runs it,
 * integer for integer (test/features-resize-parity.test.ts checks it against sharp exactly):
 *   vertical axis first, then horizontal; per axis
 *   1. an integer box pre-shrink by k = floor(in / out / 2) when k > 1 (libvips' reduce "gap" 2): each output the
 *      mean of k inputs (the last box padded by repeating the edge), (sum + floor(k/2)) * floor(2^32 / 256k) >> 24;
 *   2. the residual reduce by s = in / out / k with a triangle of radius s over 2 * rint(s) + 1 taps (edges
 *      repeated): output i is centred at X = (i + 0.5) s (X accumulated by repeated addition, as libvips does), its
 *      fraction rounded to 1/64, the 65 masks in fixed point (truncated to 1/4096), sum + 2048 >> 12, clipped to
 *      0..255 after each axis.
 * What libvips does before resizing is not repeated here: sharp decodes big JPEGs at 1/2, 1/4 or 1/8 of their size
 * in the DCT (shrink-on-load) when the smaller shrink factor is at least 3 (e.g. 1024 x 768 to 224), so such photos
 * still differ by the decoders' scaling.
 *
 * Enlarging (a side smaller than size; the other side is reduced first as above): libvips' affine with its bilinear
 * interpolator over both axes, output q sampling the input at q * (in / size) - 0.5 (so an axis already at size is
 * shifted by half a pixel too, as sharp does), in float; libvips' own fixed-point arithmetic leaves about 1 to 3% of
 * the values one level off.
 */

/** Decoded pixels as callers pass them: HWC uint8, RGB or RGBA; `channels` absent = read from the data's length. */
export interface RgbImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels?: 3 | 4;
}

/** Decoded pixels, checked: HWC uint8 with `channels` 3 (RGB) or 4 (RGBA), data.length = width * height * channels. */
export interface PixelBuffer extends RgbImage {
  channels: 3 | 4;
}

/** `image` as a checked PixelBuffer if it is decoded pixels ({ data, width, height, channels? }), else null. */
export function asPixelBuffer(image: unknown): PixelBuffer | null {
  const px = image as Partial<RgbImage> | null | undefined;
  if (!px || typeof px !== 'object' || !(px.data instanceof Uint8Array || px.data instanceof Uint8ClampedArray))
    return null;
  const { data, width, height } = px;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width! < 1 || height! < 1) return null;
  const channels = px.channels ?? data.length / (width! * height!);
  if ((channels !== 3 && channels !== 4) || data.length !== width! * height! * channels) return null;
  return { data, width: width!, height: height!, channels };
}

/** What decoded pixels must look like, for the refusal of anything else. */
export const PIXELS_SHAPE =
  '{ data: Uint8Array, width, height, channels: 3 | 4 } with data.length = width * height * channels';

/** Resizes `src` to RGB uint8 size x size (HWC). */
export function resizeToSquareRgb(src: PixelBuffer, size: number): Uint8Array {
  const { data, width: W, height: H, channels: ch } = src;
  if (data.length !== W * H * ch)
    throw new Error(`pixel buffer holds ${data.length} bytes, expected ${W} x ${H} x ${ch}`);
  const out = new Uint8Array(size * size * 3);
  if (W === size && H === size) {
    for (let p = 0; p < size * size; p++) for (let c = 0; c < 3; c++) out[p * 3 + c] = data[p * ch + c];
    return out;
  }
  const rgb = ch === 3 ? { data, width: W, height: H } : { data: dropAlpha(data, W * H), width: W, height: H };
  const reduced = reduceAxis(reduceAxis(rgb, 'v', Math.min(size, H)), 'h', Math.min(size, W));
  return W >= size && H >= size ? (reduced.data as Uint8Array) : enlargeBilinear(reduced, size);
}

/**
 * libvips' affine enlargement with the bilinear interpolator, as vips_resize runs it after any reduce: output
 * pixel q of every axis (also an axis already at `size`) samples the input at q * (in / size) - 0.5, edges repeated.
 */
function enlargeBilinear(img: Rgb, size: number): Uint8Array {
  const { data, width: W, height: H } = img;
  const axis = (n: number) =>
    Array.from({ length: size }, (_, q) => {
      const v = q * (n / size) - 0.5;
      const i = Math.floor(v);
      return [Math.min(n - 1, Math.max(0, i)), Math.min(n - 1, Math.max(0, i + 1)), v - i] as const;
    });
  const xs = axis(W),
    ys = axis(H);
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    const [y0, y1, fy] = ys[y];
    for (let x = 0; x < size; x++) {
      const [x0, x1, fx] = xs[x];
      for (let c = 0; c < 3; c++) {
        const top = (1 - fx) * data[(y0 * W + x0) * 3 + c] + fx * data[(y0 * W + x1) * 3 + c];
        const bottom = (1 - fx) * data[(y1 * W + x0) * 3 + c] + fx * data[(y1 * W + x1) * 3 + c];
        out[(y * size + x) * 3 + c] = Math.floor((1 - fy) * top + fy * bottom + 0.5);
      }
    }
  }
  return out;
}

/** An RGB uint8 image (HWC). */
interface Rgb {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
}

function dropAlpha(rgba: Uint8Array | Uint8ClampedArray, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    out[p * 3] = rgba[p * 4];
    out[p * 3 + 1] = rgba[p * 4 + 1];
    out[p * 3 + 2] = rgba[p * 4 + 2];
  }
  return out;
}

/** C's rint: round half to even. */
function rint(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const TRANSFORM_SCALE = 64; // libvips' subpixel positions of a mask (VIPS_TRANSFORM_SCALE)
const INTERPOLATE_SHIFT = 12; // fixed-point bits of mask coefficients (VIPS_INTERPOLATE_SHIFT)
const REDUCE_GAP = 2; // the integer pre-shrink leaves at least this much to the reduce

/** A new image of `img` with `axis` resized to `n`. */
const blank = (img: Rgb, axis: 'h' | 'v', n: number): Rgb =>
  axis === 'h'
    ? { data: new Uint8Array(n * img.height * 3), width: n, height: img.height }
    : { data: new Uint8Array(img.width * n * 3), width: img.width, height: n };

/**
 * One axis of a separable filter in integers: output q along `axis` is (round + sum_t weights[q][t] * pixel at
 * taps[q][t]) * multiplier / 2^shift, clipped to 0..255. Rows (axis 'v') are combined whole, columns per pixel.
 */
function applyTaps(
  img: Rgb,
  axis: 'h' | 'v',
  outSize: number,
  points: number,
  taps: Int32Array,
  weights: Int32Array,
  round: number,
  multiplier: number,
  shift: number,
): Rgb {
  const out = blank(img, axis, outSize);
  const src = img.data,
    dst = out.data,
    scale = multiplier / 2 ** shift;
  if (axis === 'v') {
    const rowLength = img.width * 3;
    const acc = new Float64Array(rowLength);
    for (let q = 0; q < outSize; q++) {
      acc.fill(round);
      for (let t = 0; t < points; t++) {
        const w = weights[q * points + t],
          start = taps[q * points + t] * rowLength;
        if (w !== 0) for (let j = 0; j < rowLength; j++) acc[j] += w * src[start + j];
      }
      const o = q * rowLength;
      for (let j = 0; j < rowLength; j++) {
        const v = Math.floor(acc[j] * scale);
        dst[o + j] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
    return out;
  }
  for (let y = 0; y < img.height; y++) {
    const row = y * img.width * 3,
      o = y * outSize * 3;
    for (let q = 0; q < outSize; q++) {
      let r = round,
        g = round,
        b = round;
      for (let t = 0; t < points; t++) {
        const w = weights[q * points + t],
          s = row + taps[q * points + t] * 3;
        r += w * src[s];
        g += w * src[s + 1];
        b += w * src[s + 2];
      }
      const vr = Math.floor(r * scale),
        vg = Math.floor(g * scale),
        vb = Math.floor(b * scale);
      dst[o + q * 3] = vr < 0 ? 0 : vr > 255 ? 255 : vr;
      dst[o + q * 3 + 1] = vg < 0 ? 0 : vg > 255 ? 255 : vg;
      dst[o + q * 3 + 2] = vb < 0 ? 0 : vb > 255 ? 255 : vb;
    }
  }
  return out;
}

/** libvips' shrinkh/shrinkv (ceil): the mean of each k pixels along `axis`, the last box padded with the edge pixel. */
function boxShrink(img: Rgb, axis: 'h' | 'v', k: number): Rgb {
  const inSize = axis === 'h' ? img.width : img.height;
  const outSize = Math.ceil(inSize / k);
  const taps = new Int32Array(outSize * k),
    weights = new Int32Array(outSize * k).fill(1);
  for (let q = 0; q < outSize; q++) for (let i = 0; i < k; i++) taps[q * k + i] = Math.min(inSize - 1, q * k + i);
  // (sum + floor(k/2)) * floor(2^32 / 256k) >> 24: libvips' fixed-point mean
  return applyTaps(img, axis, outSize, k, taps, weights, Math.floor(k / 2), Math.floor(2 ** 32 / (256 * k)), 24);
}

/** The fixed-point triangle masks of libvips' reduce for shrink `s` at the 65 subpixel positions. */
function reduceMasks(s: number, points: number): Int32Array[] {
  const masks: Int32Array[] = [];
  for (let t = 0; t <= TRANSFORM_SCALE; t++) {
    const half = t / TRANSFORM_SCALE + points / 2 - 1;
    const c = Array.from({ length: points }, (_, i) => Math.max(0, 1 - Math.abs((i - half) / s)));
    const sum = c.reduce((x, y) => x + y, 0);
    masks.push(Int32Array.from(c, (v) => Math.trunc((v / sum) * (1 << INTERPOLATE_SHIFT))));
  }
  return masks;
}

/** libvips' reducev/reduceh (kernel linear, gap 2) of `axis` to `outSize` (see the file comment). */
function reduceAxis(img: Rgb, axis: 'h' | 'v', outSize: number): Rgb {
  const inSize = axis === 'h' ? img.width : img.height;
  if (inSize === outSize) return img;
  let s = inSize / outSize;
  let extra = outSize * s - inSize; // pixels invented (+) or dropped (-) at the edges, split evenly
  const k = Math.max(1, Math.floor(inSize / outSize / REDUCE_GAP));
  if (k > 1) {
    img = boxShrink(img, axis, k);
    s /= k;
    extra /= k;
    if (s === 1) return img;
  }
  const n = axis === 'h' ? img.width : img.height;
  const points = 2 * rint(s) + 1,
    halfPoints = Math.floor(points / 2);
  const masks = reduceMasks(s, points);
  const offset = (1 + extra) / 2 - 1;
  const taps = new Int32Array(outSize * points),
    weights = new Int32Array(outSize * points);
  let X = 0.5 * s - 0.5 - offset;
  for (let q = 0; q < outSize; q++) {
    const ix = Math.trunc(X);
    const sub = Math.trunc(X * TRANSFORM_SCALE * 2) & (TRANSFORM_SCALE * 2 - 1);
    const mask = masks[(sub + 1) >> 1];
    for (let i = 0; i < points; i++) {
      taps[q * points + i] = Math.min(n - 1, Math.max(0, ix + i - halfPoints));
      weights[q * points + i] = mask[i];
    }
    X += s;
  }
  return applyTaps(img, axis, outSize, points, taps, weights, 1 << (INTERPOLATE_SHIFT - 1), 1, INTERPOLATE_SHIFT);
}
