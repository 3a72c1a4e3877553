/**
 * One word's attention grid [h][w] as a smooth heat map: bilinearly upsampled with half-pixel centres
 * (as src/figures/attention.ts does for the PNG figures), scaled to the word's own min..max, coloured
 * black-red-yellow-white ("hot") and made more opaque where the model looked more.
 */

/** RGBA pixels [height][width] of the heat map for `grid`, stretched over the whole image (the encoder saw it squashed to a square). */
export function heatPixels(grid: number[][], width: number, height: number): Uint8ClampedArray<ArrayBuffer> {
  const rows = grid.length,
    cols = grid[0]?.length ?? 0;
  let min = Infinity,
    max = -Infinity;
  for (const row of grid)
    for (const v of row) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
  const range = max - min;
  const axis = (n: number, g: number) =>
    Array.from({ length: n }, (_, i) => {
      const src = Math.min(Math.max((i + 0.5) * (g / n) - 0.5, 0), g - 1);
      const lo = Math.floor(src);
      return [lo, Math.min(lo + 1, g - 1), src - lo] as const;
    });
  const xs = axis(width, cols),
    ys = axis(height, rows);
  const out = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    const [y0, y1, wy] = ys[y];
    for (let x = 0; x < width; x++) {
      const [x0, x1, wx] = xs[x];
      const top = grid[y0][x0] * (1 - wx) + grid[y0][x1] * wx;
      const bottom = grid[y1][x0] * (1 - wx) + grid[y1][x1] * wx;
      const t = range > 0 ? (top * (1 - wy) + bottom * wy - min) / range : 0;
      const o = (y * width + x) * 4;
      out[o] = 255 * Math.min(1, t * 2.5);
      out[o + 1] = 255 * Math.min(1, Math.max(0, t * 2.5 - 1));
      out[o + 2] = 255 * Math.min(1, Math.max(0, t * 5 - 4));
      out[o + 3] = 255 * (0.2 + 0.55 * t);
    }
  }
  return out;
}

/** Draw the heat map for `grid` on `canvas` (cleared when grid is null). */
export function drawHeat(canvas: HTMLCanvasElement, grid: number[][] | null): void {
  const ctx = canvas.getContext('2d')!;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!grid) return;
  // Upsampled at up to 256 px on the long side, then stretched smoothly by the canvas.
  const scale = Math.min(1, 256 / Math.max(canvas.width, canvas.height));
  const w = Math.max(1, Math.round(canvas.width * scale)),
    h = Math.max(1, Math.round(canvas.height * scale));
  const small = new OffscreenCanvas(w, h);
  small.getContext('2d')!.putImageData(new ImageData(heatPixels(grid, w, h), w, h), 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
}
