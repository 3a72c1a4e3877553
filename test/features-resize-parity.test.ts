/**
 * The browser's resize (src/features/resize.ts, what show-attend-tell/web runs on decoded pixels) against sharp's
 * (what `sat features` and Node captioning run): when shrinking, they must agree exactly, integer for integer, on
 * photo-like generated images of the sizes that matter (COCO's 640 x 480 and 500 x 333, Flickr8k's 500 x 375,
 * odd sizes, and sizes large enough for libvips' integer box pre-shrink, including boxes that overhang the edge),
 * to 224 (MobileNetV2) and 299 (InceptionV3), RGB and RGBA.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { resizeToSquareRgb } from '../src/features/resize.js';
import { Rng } from '../src/util/rng.js';

/** Smooth gradients, edges of 16 px blocks and noise, in 0..255. */
function photoLike(W: number, H: number, channels: 3 | 4, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const out = new Uint8Array(W * H * channels);
  // a plain loop in pixel order (the images reach 2000 x 1100 x 4): the noise draws one number per colour value
  for (let y = 0, i = 0; y < H; y++)
    for (let x = 0; x < W; x++)
      for (let c = 0; c < channels; c++, i++) {
        if (c === 3) {
          out[i] = 255;
          continue;
        }
        const v =
          128 +
          100 * Math.sin((x * (c + 1)) / 37 + y / 23) +
          (((x >> 4) + (y >> 4)) % 2 ? 20 : -20) +
          (rng.next() - 0.5) * 60;
        out[i] = Math.max(0, Math.min(255, Math.round(v)));
      }
  return out;
}

test("shrinking, the TypeScript resize equals sharp's (fit fill, kernel linear) exactly", async () => {
  const cases: [number, number, number, 3 | 4][] = [
    [640, 480, 224, 3],
    [480, 640, 224, 3],
    [500, 333, 224, 3],
    [500, 375, 299, 3],
    [333, 500, 299, 4],
    [225, 224, 224, 3],
    [999, 1001, 224, 3],
    [1500, 1400, 224, 3],
    [2000, 1100, 299, 4],
    [224, 700, 224, 3],
  ];
  for (const [W, H, S, channels] of cases) {
    const data = photoLike(W, H, channels, W + H);
    const ours = resizeToSquareRgb({ data, width: W, height: H, channels }, S);
    const ref = await sharp(data, { raw: { width: W, height: H, channels } })
      .removeAlpha()
      .resize(S, S, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer();
    let differing = 0,
      max = 0;
    ours.forEach((v, i) => {
      const d = Math.abs(v - ref[i]);
      if (d) differing++;
      max = Math.max(max, d);
    });
    assert.equal(differing, 0, `${W}x${H}x${channels} -> ${S}: ${differing} values differ, max ${max}`);
  }
});

test("enlarging (one side or both, e.g. a 500 x 169 panorama or a 224 px image for a 299 px encoder) is sharp's within one level", async () => {
  for (const [W, H, S] of [
    [97, 131, 224],
    [224, 160, 299],
    [500, 169, 224],
    [180, 640, 224],
  ]) {
    const data = photoLike(W, H, 3, 3);
    const ours = resizeToSquareRgb({ data, width: W, height: H, channels: 3 }, S);
    const ref = await sharp(data, { raw: { width: W, height: H, channels: 3 } })
      .resize(S, S, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer();
    let max = 0,
      differing = 0;
    ours.forEach((v, i) => {
      const d = Math.abs(v - ref[i]);
      max = Math.max(max, d);
      if (d) differing++;
    });
    assert.ok(
      max <= 1 && differing / ours.length < 0.05,
      `${W}x${H} -> ${S}: max |difference| ${max}, ${((100 * differing) / ours.length).toFixed(2)}% differ`,
    );
  }
});
