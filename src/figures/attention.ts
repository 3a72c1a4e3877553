/**
 * The tutorial's plot_attention as a PNG: one panel per word, titled with the word, showing the image (as the
 * encoder saw it: resized to its square input) under that word's attention weights. The weights [L] form
 * a sqrt(L) x sqrt(L) grid (8x8 for InceptionV3, 7x7 for MobileNetV2 ...) that is bilinearly upsampled to
 * the panel and laid over the image as a semi-transparent heat map. Panels are tiled in rows of
 * `columns`, drawn with sharp; titles are SVG text (DejaVu Sans when installed, any sans otherwise; if
 * text cannot be rendered at all the figure is still written, untitled).
 *
 * Like matplotlib's imshow in the tutorial, each panel's colours span that word's own min..max weight.
 */
import sharp, { type OverlayOptions } from 'sharp';

export interface AttentionFigureInput {
  /** The image as RGB uint8, HWC, `size` x `size` (the encoder's input, e.g. src/features/image.ts loadRgb). */
  rgb: Uint8Array;
  size: number;
  words: string[];
  /** One row [L] per word; L must be a square number. */
  attention: Float32Array[];
}

export interface AttentionFigureOptions {
  columns?: number;       // panels per row, default 4
  opacity?: number;       // of the heat overlay, default 0.6 (the tutorial's alpha)
  colormap?: 'heat' | 'gray'; // 'gray' is the tutorial's cmap
  /** Title above the panels, e.g. the whole caption. */
  heading?: string;
}

const GAP = 8;          // px between panels
const TITLE_HEIGHT = 26;
const FONT = "'DejaVu Sans', 'Liberation Sans', Arial, sans-serif";

/** Side of the square attention grid for L locations; throws unless L is a square. */
export function gridSide(locations: number): number {
  const side = Math.round(Math.sqrt(locations));
  if (side * side !== locations || side < 1) {
    throw new Error(`attention over ${locations} locations is not a square grid (expected 64, 49, 289, ...)`);
  }
  return side;
}

/**
 * Bilinear upsampling of a g x g grid to size x size with half-pixel centres (edges clamped), the
 * same sampling as tf.image.resize / torch interpolate(align_corners=False). Returns float32 [size*size].
 */
export function upsampleBilinear(grid: Float32Array, g: number, size: number): Float32Array {
  const out = new Float32Array(size * size);
  const scale = g / size;
  const axis = new Array<[number, number, number]>(size); // per output coordinate: lower cell, upper cell, weight of upper
  for (let i = 0; i < size; i++) {
    const src = Math.min(Math.max((i + 0.5) * scale - 0.5, 0), g - 1);
    const lo = Math.floor(src);
    axis[i] = [lo, Math.min(lo + 1, g - 1), src - lo];
  }
  for (let y = 0; y < size; y++) {
    const [y0, y1, wy] = axis[y];
    for (let x = 0; x < size; x++) {
      const [x0, x1, wx] = axis[x];
      const top = grid[y0 * g + x0] * (1 - wx) + grid[y0 * g + x1] * wx;
      const bottom = grid[y1 * g + x0] * (1 - wx) + grid[y1 * g + x1] * wx;
      out[y * size + x] = top * (1 - wy) + bottom * wy;
    }
  }
  return out;
}

/** t in [0, 1] -> RGB: black, red, orange, yellow, white (matplotlib's "hot" family). */
function heatColour(t: number): [number, number, number] {
  const r = Math.min(1, t * 2.5);
  const g = Math.min(1, Math.max(0, t * 2.5 - 1));
  const b = Math.min(1, Math.max(0, t * 5 - 4));
  return [r * 255, g * 255, b * 255];
}

/** One panel: the image with one word's weights [L] laid over it, RGB uint8 [size, size, 3]. */
export function overlayPanel(rgb: Uint8Array, size: number, weights: Float32Array, opts: AttentionFigureOptions = {}): Uint8Array {
  const g = gridSide(weights.length);
  const map = upsampleBilinear(weights, g, size);
  let min = Infinity, max = -Infinity;
  for (const w of weights) { if (w < min) min = w; if (w > max) max = w; }
  const range = max - min;
  const opacity = opts.opacity ?? 0.6;
  const out = new Uint8Array(size * size * 3);
  for (let p = 0; p < size * size; p++) {
    const t = range > 0 ? Math.min(1, Math.max(0, (map[p] - min) / range)) : 0;
    const colour = opts.colormap === 'gray' ? [t * 255, t * 255, t * 255] : heatColour(t);
    for (let c = 0; c < 3; c++) out[p * 3 + c] = Math.round(rgb[p * 3 + c] * (1 - opacity) + colour[c] * opacity);
  }
  return out;
}

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (ch) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[ch]!);
}

/** A text label rendered to PNG, or null where this machine cannot render SVG text. */
async function renderText(text: string, width: number, height: number, fontSize: number): Promise<Buffer | null> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<text x="${width / 2}" y="${Math.round(height * 0.72)}" font-family="${FONT}" font-size="${fontSize}" ` +
    `text-anchor="middle" fill="#111">${escapeXml(text)}</text></svg>`;
  try {
    return await sharp(Buffer.from(svg)).png().toBuffer();
  } catch {
    return null;
  }
}

/** Renders the figure and returns PNG bytes. */
export async function renderAttentionFigure(input: AttentionFigureInput, opts: AttentionFigureOptions = {}): Promise<Buffer> {
  const { rgb, size, words, attention } = input;
  if (rgb.length !== size * size * 3) throw new Error(`image holds ${rgb.length} bytes, expected ${size}x${size}x3 = ${size * size * 3}`);
  if (words.length !== attention.length) throw new Error(`${words.length} words but ${attention.length} attention rows`);
  // An empty caption still gets a figure: the bare image under a "(no words)" title.
  const panels = words.length > 0
    ? words.map((word, i) => ({ title: word, pixels: overlayPanel(rgb, size, attention[i], opts) }))
    : [{ title: '(no words)', pixels: rgb }];

  const columns = Math.max(1, Math.min(opts.columns ?? 4, panels.length));
  const rows = Math.ceil(panels.length / columns);
  const headingHeight = opts.heading ? TITLE_HEIGHT + 6 : 0;
  const cellW = size + GAP, cellH = size + TITLE_HEIGHT + GAP;
  const width = columns * cellW + GAP;
  const height = headingHeight + rows * cellH + GAP;

  const layers: OverlayOptions[] = [];
  if (opts.heading) {
    const text = await renderText(opts.heading, width, headingHeight, 18);
    if (text) layers.push({ input: text, left: 0, top: 0 });
  }
  for (let i = 0; i < panels.length; i++) {
    const left = GAP + (i % columns) * cellW;
    const top = headingHeight + GAP + Math.floor(i / columns) * cellH;
    const title = await renderText(panels[i].title, size, TITLE_HEIGHT, 16);
    if (title) layers.push({ input: title, left, top });
    layers.push({ input: Buffer.from(panels[i].pixels.buffer, panels[i].pixels.byteOffset, panels[i].pixels.byteLength),
      raw: { width: size, height: size, channels: 3 }, left, top: top + TITLE_HEIGHT });
  }
  return sharp({ create: { width, height, channels: 3, background: '#ffffff' } }).composite(layers).png().toBuffer();
}
