/**
 * Attention weights as heat maps, shared by the PNG figures (src/figures/attention.ts), `sat caption`, bundle
 * manifests and the web page. Pure: no Node built-ins, so browsers use it too.
 *
 * Attention over L encoder locations is a grid [h, w] (row-major: location l is row floor(l / w), column l % w):
 * square when L is (8 x 8 for InceptionV3, 7 x 7 for MobileNetV2), else one row [1, L].
 */

/** The attention grid [h, w] of L locations: square when L is, else one row. */
export function attentionGrid(locations: number): [number, number] {
  const side = Math.round(Math.sqrt(locations));
  return side * side === locations ? [side, side] : [1, locations];
}

/** Whether `grid` [h, w] is a square map (one that can be drawn over the square image the encoder saw). */
export const isSquareGrid = ([h, w]: readonly [number, number]) => h === w;

/** Side of the square attention grid for L locations; throws unless L is a square. */
export function gridSide(locations: number): number {
  const [h, w] = attentionGrid(locations);
  if (h !== w || h < 1)
    throw new Error(`attention over ${locations} locations is not a square grid (expected 64, 49, 289, ...)`);
  return h;
}

/** Per output coordinate of an axis of `n` samples over `g` cells: lower cell, upper cell, weight of the upper. */
function bilinearAxis(n: number, g: number): [number, number, number][] {
  return Array.from({ length: n }, (_, i) => {
    const src = Math.min(Math.max((i + 0.5) * (g / n) - 0.5, 0), g - 1);
    const lo = Math.floor(src);
    return [lo, Math.min(lo + 1, g - 1), src - lo];
  });
}

/**
 * Bilinear resampling of a grid [rows, cols] (row-major) to [height, width] with half-pixel centres (edges
 * clamped), the sampling of tf.image.resize / torch interpolate(align_corners=False). Returns float32 [height * width].
 */
export function upsampleBilinear(
  grid: ArrayLike<number>,
  rows: number,
  cols: number,
  width: number,
  height: number,
): Float32Array {
  if (grid.length !== rows * cols) throw new Error(`grid holds ${grid.length} values, expected ${rows} x ${cols}`);
  const out = new Float32Array(width * height);
  const xs = bilinearAxis(width, cols),
    ys = bilinearAxis(height, rows);
  for (let y = 0; y < height; y++) {
    const y0 = ys[y][0],
      y1 = ys[y][1],
      wy = ys[y][2];
    for (let x = 0; x < width; x++) {
      const x0 = xs[x][0],
        x1 = xs[x][1],
        wx = xs[x][2]; // indexed, not destructured: this loop runs per pixel
      const top = grid[y0 * cols + x0] * (1 - wx) + grid[y0 * cols + x1] * wx;
      const bottom = grid[y1 * cols + x0] * (1 - wx) + grid[y1 * cols + x1] * wx;
      out[y * width + x] = top * (1 - wy) + bottom * wy;
    }
  }
  return out;
}

/**
 * One word's attention as heat in [0, 1] per pixel [height * width]: the grid upsampled bilinearly and scaled to
 * the word's own min..max weight (as matplotlib's imshow in the tutorial); all 0 when every weight is equal.
 */
export function heatMap(
  weights: ArrayLike<number>,
  rows: number,
  cols: number,
  width: number,
  height: number,
): Float64Array {
  let min = Infinity,
    max = -Infinity;
  for (let i = 0; i < weights.length; i++) {
    min = Math.min(min, weights[i]);
    max = Math.max(max, weights[i]);
  }
  const range = max - min;
  const map = upsampleBilinear(weights, rows, cols, width, height);
  const heat = new Float64Array(map.length);
  if (range > 0) for (let i = 0; i < map.length; i++) heat[i] = Math.min(1, Math.max(0, (map[i] - min) / range));
  return heat;
}

/** Heat t in [0, 1] -> RGB 0..255: black, red, orange, yellow, white (matplotlib's "hot" family). */
export function heatColour(t: number): [number, number, number] {
  return heatColourInto(t, [0, 0, 0]);
}

/** heatColour written into `out` (no allocation per pixel), which it returns. */
export function heatColourInto(t: number, out: [number, number, number]): [number, number, number] {
  out[0] = Math.min(1, t * 2.5) * 255;
  out[1] = Math.min(1, Math.max(0, t * 2.5 - 1)) * 255;
  out[2] = Math.min(1, Math.max(0, t * 5 - 4)) * 255;
  return out;
}
