/**
 * The pixel arithmetic shared by every image path (sharp in Node, canvas in the browser): RGB uint8 HWC
 * -> the encoder's float32 input (scaling, layout), and NCHW feature maps -> the decoder's [n, L, C].
 * Pure TypeScript without Node built-ins.
 */
import type { InputScaling } from '../encoders/types.js';

export interface ImageInputOptions {
  size: number;
  scaling: InputScaling;
  layout: 'nhwc' | 'nchw';
  /** Refuse images with more pixels than this before decoding them. */
  maxPixels?: number;
}

/**
 * Per-channel affine map x_uint8 -> x * mul[c] + add[c] implementing the encoder's input scaling.
 *   zero_one:       x / 255
 *   minus_one_one:  x / 127.5 - 1
 *   mean/std:       (x / 255 - mean) / std
 */
export function scalingCoefficients(scaling: InputScaling): { mul: Float32Array; add: Float32Array } {
  const mul = new Float32Array(3);
  const add = new Float32Array(3);
  for (let c = 0; c < 3; c++) {
    if (scaling === 'zero_one') {
      mul[c] = 1 / 255;
      add[c] = 0;
    } else if (scaling === 'minus_one_one') {
      mul[c] = 1 / 127.5;
      add[c] = -1;
    } else {
      mul[c] = 1 / (255 * scaling.std[c]);
      add[c] = -scaling.mean[c] / scaling.std[c];
    }
  }
  return { mul, add };
}

/** An RGB uint8 HWC image of `size` x `size` mirrored left to right, in place. */
export function mirrorRgb(rgb: Uint8Array, size: number): Uint8Array {
  for (let y = 0; y < size; y++) {
    const row = y * size * 3;
    for (let l = 0, r = size - 1; l < r; l++, r--) {
      for (let c = 0; c < 3; c++) {
        const a = row + l * 3 + c,
          b = row + r * 3 + c;
        const t = rgb[a];
        rgb[a] = rgb[b];
        rgb[b] = t;
      }
    }
  }
  return rgb;
}

/**
 * Write one RGB uint8 HWC image into slot `slot` of a float32 batch tensor, scaled, in `layout`
 * ([n, size, size, 3] for nhwc, [n, 3, size, size] for nchw).
 */
export function writeImageToBatch(rgb: Uint8Array, batch: Float32Array, slot: number, opts: ImageInputOptions): void {
  const hw = opts.size * opts.size;
  const base = slot * hw * 3;
  const { mul, add } = scalingCoefficients(opts.scaling);
  if (opts.layout === 'nhwc') {
    for (let i = 0; i < hw * 3; i += 3) {
      batch[base + i] = rgb[i] * mul[0] + add[0];
      batch[base + i + 1] = rgb[i + 1] * mul[1] + add[1];
      batch[base + i + 2] = rgb[i + 2] * mul[2] + add[2];
    }
  } else {
    for (let c = 0; c < 3; c++) {
      const plane = base + c * hw;
      const m = mul[c],
        a = add[c];
      for (let p = 0; p < hw; p++) batch[plane + p] = rgb[p * 3 + c] * m + a;
    }
  }
}

/** [n, c, l] -> [n, l, c], blocked over channels so both sides stay cache-friendly. */
export function nchwToNhwc(src: Float32Array, n: number, c: number, l: number): Float32Array {
  const dst = new Float32Array(n * c * l);
  const B = 16;
  for (let i = 0; i < n; i++) {
    const base = i * c * l;
    for (let c0 = 0; c0 < c; c0 += B) {
      const c1 = Math.min(c, c0 + B);
      for (let p = 0; p < l; p++) {
        const d = base + p * c;
        for (let k = c0; k < c1; k++) dst[d + k] = src[base + k * l + p];
      }
    }
  }
  return dst;
}
