/**
 * Pure-TypeScript image resize for platforms without sharp (browsers): decoded RGB(A) pixels -> RGB uint8
 * size x size, ignoring the aspect ratio (fit 'fill'), with the separable triangle filter that libvips'
 * reduce 'linear' and PIL's BILINEAR use: output pixel i samples centre (i + 0.5) * scale - 0.5 of the source,
 * with a filter of radius max(scale, 1) (antialiased when shrinking, plain bilinear when enlarging), in
 * float and rounded once at the end. Same size in and out is a copy. Alpha is dropped.
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
  if (!px || typeof px !== 'object' || !(px.data instanceof Uint8Array || px.data instanceof Uint8ClampedArray)) return null;
  const { data, width, height } = px;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width! < 1 || height! < 1) return null;
  const channels = px.channels ?? data.length / (width! * height!);
  if ((channels !== 3 && channels !== 4) || data.length !== width! * height! * channels) return null;
  return { data, width: width!, height: height!, channels };
}

/** What decoded pixels must look like, for the refusal of anything else. */
export const PIXELS_SHAPE = '{ data: Uint8Array, width, height, channels: 3 | 4 } with data.length = width * height * channels';

interface Taps { first: Int32Array; count: Int32Array; weights: Float32Array; stride: number }

/** For each of `outSize` outputs, the source indices and normalised weights of the triangle filter. */
function taps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const support = Math.max(scale, 1);
  const stride = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize), count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * stride);
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) * scale;
    const lo = Math.max(0, Math.floor(centre - support)), hi = Math.min(inSize, Math.ceil(centre + support));
    let total = 0;
    const ws: number[] = [];
    for (let j = lo; j < hi; j++) {
      const w = Math.max(0, 1 - Math.abs((j + 0.5 - centre) / support));
      ws.push(w);
      total += w;
    }
    first[i] = lo;
    count[i] = ws.length;
    ws.forEach((w, k) => { weights[i * stride + k] = total > 0 ? w / total : 0; });
  }
  return { first, count, weights, stride };
}

/** Resizes `src` to RGB uint8 size x size (HWC). */
export function resizeToSquareRgb(src: PixelBuffer, size: number): Uint8Array {
  const { data, width: W, height: H, channels: ch } = src;
  if (data.length !== W * H * ch) throw new Error(`pixel buffer holds ${data.length} bytes, expected ${W} x ${H} x ${ch}`);
  const out = new Uint8Array(size * size * 3);
  if (W === size && H === size) {
    for (let p = 0; p < size * size; p++) for (let c = 0; c < 3; c++) out[p * 3 + c] = data[p * ch + c];
    return out;
  }
  // horizontal pass: [H, size, 3] floats, then vertical: [size, size, 3]
  const tx = taps(W, size), ty = taps(H, size);
  const mid = new Float32Array(H * size * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < size; x++) {
      let r = 0, g = 0, b = 0;
      for (let k = 0; k < tx.count[x]; k++) {
        const w = tx.weights[x * tx.stride + k];
        const s = (y * W + tx.first[x] + k) * ch;
        r += w * data[s]; g += w * data[s + 1]; b += w * data[s + 2];
      }
      const o = (y * size + x) * 3;
      mid[o] = r; mid[o + 1] = g; mid[o + 2] = b;
    }
  }
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let r = 0, g = 0, b = 0;
      for (let k = 0; k < ty.count[y]; k++) {
        const w = ty.weights[y * ty.stride + k];
        const s = ((ty.first[y] + k) * size + x) * 3;
        r += w * mid[s]; g += w * mid[s + 1]; b += w * mid[s + 2];
      }
      const o = (y * size + x) * 3;
      out[o] = Math.min(255, Math.max(0, Math.round(r)));
      out[o + 1] = Math.min(255, Math.max(0, Math.round(g)));
      out[o + 2] = Math.min(255, Math.max(0, Math.round(b)));
    }
  }
  return out;
}
