/**
 * The tutorial's plot_attention as a PNG: one panel per word, titled with the word, showing the image (as the
 * encoder saw it: resized to its square input) under that word's attention weights. The weights [L] form
 * a sqrt(L) x sqrt(L) grid (8x8 for InceptionV3, 7x7 for MobileNetV2 ...) that is bilinearly upsampled to
 * the panel and laid over the image as a semi-transparent heat map (src/figures/heat.ts). Panels are tiled in rows of
 * `columns`, drawn with sharp; titles are SVG text (DejaVu Sans when installed, any sans otherwise; if
 * text cannot be rendered at all the figure is still written, untitled).
 *
 * Like matplotlib's imshow in the tutorial, each panel's colours span that word's own min..max weight.
 */
import sharp, { type OverlayOptions } from 'sharp';
import { gridSide, heatColourInto, heatMap } from './heat.js';

export interface AttentionFigureInput {
  /** The image as RGB uint8, HWC, `size` x `size` (the encoder's input, e.g. src/features/image.ts loadRgb). */
  rgb: Uint8Array;
  size: number;
  words: string[];
  /** One row [L] per word; L must be a square number. */
  attention: Float32Array[];
}

export interface AttentionFigureOptions {
  columns?: number; // panels per row, default 4
  opacity?: number; // of the heat overlay, default 0.6 (the tutorial's alpha)
  colormap?: 'heat' | 'gray'; // 'gray' is the tutorial's cmap
  /** Title above the panels, e.g. the whole caption. */
  heading?: string;
}

const GAP = 8; // px between panels
const TITLE_HEIGHT = 26;
const FONT = "'DejaVu Sans', 'Liberation Sans', Arial, sans-serif";

/** One panel: the image with one word's weights [L] laid over it, RGB uint8 [size, size, 3]. */
export function overlayPanel(
  rgb: Uint8Array,
  size: number,
  weights: Float32Array,
  opts: AttentionFigureOptions = {},
): Uint8Array {
  const g = gridSide(weights.length);
  const heat = heatMap(weights, g, g, size, size);
  const opacity = opts.opacity ?? 0.6;
  const gray = opts.colormap === 'gray';
  const out = new Uint8Array(size * size * 3);
  const colour: [number, number, number] = [0, 0, 0];
  for (let p = 0; p < size * size; p++) {
    const t = heat[p];
    if (gray) colour[0] = colour[1] = colour[2] = t * 255;
    else heatColourInto(t, colour);
    for (let c = 0; c < 3; c++) out[p * 3 + c] = Math.round(rgb[p * 3 + c] * (1 - opacity) + colour[c] * opacity);
  }
  return out;
}

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (ch) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[ch]!);
}

/** A text label rendered to PNG, or null where this machine cannot render SVG text. */
async function renderText(text: string, width: number, height: number, fontSize: number): Promise<Buffer | null> {
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<text x="${width / 2}" y="${Math.round(height * 0.72)}" font-family="${FONT}" font-size="${fontSize}" ` +
    `text-anchor="middle" fill="#111">${escapeXml(text)}</text></svg>`;
  try {
    return await sharp(Buffer.from(svg)).png().toBuffer();
  } catch {
    return null;
  }
}

/** Renders the figure and returns PNG bytes. */
export async function renderAttentionFigure(
  input: AttentionFigureInput,
  opts: AttentionFigureOptions = {},
): Promise<Buffer> {
  const { rgb, size, words, attention } = input;
  if (rgb.length !== size * size * 3)
    throw new Error(`image holds ${rgb.length} bytes, expected ${size}x${size}x3 = ${size * size * 3}`);
  if (words.length !== attention.length)
    throw new Error(`${words.length} words but ${attention.length} attention rows`);
  // An empty caption still gets a figure: the bare image under a "(no words)" title.
  const panels =
    words.length > 0
      ? words.map((word, i) => ({ title: word, pixels: overlayPanel(rgb, size, attention[i], opts) }))
      : [{ title: '(no words)', pixels: rgb }];

  const columns = Math.max(1, Math.min(opts.columns ?? 4, panels.length));
  const rows = Math.ceil(panels.length / columns);
  const headingHeight = opts.heading ? TITLE_HEIGHT + 6 : 0;
  const cellW = size + GAP,
    cellH = size + TITLE_HEIGHT + GAP;
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
    layers.push({
      input: Buffer.from(panels[i].pixels.buffer, panels[i].pixels.byteOffset, panels[i].pixels.byteLength),
      raw: { width: size, height: size, channels: 3 },
      left,
      top: top + TITLE_HEIGHT,
    });
  }
  return sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .composite(layers)
    .png()
    .toBuffer();
}
