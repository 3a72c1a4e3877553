/**
 * The attention figure: grid checks, bilinear upsampling against hand values, panel layout and that
 * the heat lands where the weights are.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { overlayPanel, renderAttentionFigure } from '../src/figures/attention.js';
import { attentionGrid, gridSide, heatMap, upsampleBilinear } from '../src/figures/heat.js';

test('attention grids must be square', () => {
  assert.equal(gridSide(64), 8);
  assert.equal(gridSide(49), 7);
  assert.equal(gridSide(289), 17);
  assert.throws(() => gridSide(50), /not a square grid/);
  assert.deepEqual(attentionGrid(49), [7, 7]);
  assert.deepEqual(attentionGrid(50), [1, 50]);
});

test('bilinear upsampling: half-pixel centres, clamped edges, constants stay constant', () => {
  // 2x2 -> 4x4: output x = 0..3 samples source (x + 0.5) / 2 - 0.5 = -0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped 1)
  const up = upsampleBilinear(Float32Array.from([0, 1, 2, 3]), 2, 2, 4, 4);
  assert.deepEqual(Array.from(up.subarray(0, 4)), [0, 0.25, 0.75, 1]);
  assert.deepEqual(Array.from(up.subarray(12, 16)), [2, 2.25, 2.75, 3]);
  assert.deepEqual(upsampleBilinear(Float32Array.from([7, 7, 7, 7]), 2, 2, 5, 5), new Float32Array(25).fill(7));
  const same = Float32Array.from({ length: 9 }, (_, i) => i);
  assert.deepEqual(upsampleBilinear(same, 3, 3, 3, 3), same);
  // a non-square target: 2x2 -> 4 wide, 2 high (rows keep their values)
  assert.deepEqual(Array.from(upsampleBilinear([0, 1, 2, 3], 2, 2, 4, 2)), [0, 0.25, 0.75, 1, 2, 2.25, 2.75, 3]);
  // heat spans the weights' own min..max
  assert.deepEqual(Array.from(heatMap([1, 3], 1, 2, 2, 1)), [0, 1]);
  assert.deepEqual(Array.from(heatMap([5, 5], 1, 2, 2, 1)), [0, 0]);
});

test('the heat overlay is brightest where the weight is', () => {
  const size = 64;
  const rgb = new Uint8Array(size * size * 3).fill(100);
  const weights = new Float32Array(64).fill(0.001);
  weights[0] = 1; // top-left cell of the 8x8 grid
  const panel = overlayPanel(rgb, size, weights);
  const red = (x: number, y: number) => panel[(y * size + x) * 3];
  assert.ok(red(2, 2) > 180, `top-left red ${red(2, 2)}`);
  assert.ok(red(60, 60) < 60, `bottom-right red ${red(60, 60)}`);
  // a flat attention map leaves a uniformly dimmed image
  const flat = overlayPanel(rgb, size, new Float32Array(49).fill(1 / 49));
  assert.ok(flat.every((v) => v === flat[0]));
});

test('figure: one titled panel per word, tiled 4 to a row', async () => {
  const size = 48;
  const rgb = new Uint8Array(
    await sharp({ create: { width: size, height: size, channels: 3, background: '#3070c0' } })
      .raw()
      .toBuffer(),
  );
  const words = ['a', 'dog', '<unk>', 'runs', '&', 'jumps'];
  const attention = words.map((_, i) => {
    const a = new Float32Array(49);
    a[i] = 1;
    return a;
  });
  const png = await renderAttentionFigure({ rgb, size, words, attention }, { heading: 'a dog <unk> runs & jumps' });
  const meta = await sharp(png).metadata();
  assert.equal(meta.format, 'png');
  // 4 columns of (48 + 8 gap) + 8; heading 32 + 2 rows of (48 + 26 title + 8) + 8
  assert.equal(meta.width, 4 * 56 + 8);
  assert.equal(meta.height, 32 + 2 * 82 + 8);

  const one = await sharp(
    await renderAttentionFigure({ rgb, size, words: ['a'], attention: [attention[0]] }),
  ).metadata();
  assert.equal(one.width, 56 + 8);
  const none = await sharp(await renderAttentionFigure({ rgb, size, words: [], attention: [] })).metadata();
  assert.equal(none.width, 56 + 8);
  await assert.rejects(
    renderAttentionFigure({ rgb, size, words: ['a'], attention: [] }),
    /1 words but 0 attention rows/,
  );
});
