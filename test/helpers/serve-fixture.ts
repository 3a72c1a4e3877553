/**
 * The tiny captioner of the `sat serve` tests (test/helpers/tiny-model.ts): it says "a red square" for a red image and
 * "a blue circle" for a blue one; and images to send it.
 */
import sharp from 'sharp';
import { buildBrowser } from '../../scripts/build-browser.js';
import { lazyFiles, type FileSource } from '../../src/serve/static-files.js';
import { makeTinyRun, RED_BLUE, type TinyRun } from './tiny-model.js';

export { SIZE } from './tiny-model.js';
export type TinyModel = TinyRun;

export const makeTinyModel = (dir: string): Promise<TinyModel> => makeTinyRun(dir, RED_BLUE, { steps: 300 });

/** A solid-colour image as PNG or JPEG bytes (any size: the server resizes). */
export function solidImage(colour: string, format: 'png' | 'jpeg' = 'png', width = 40, height = 30): Promise<Buffer> {
  const img = sharp({ create: { width, height, channels: 3, background: colour } });
  return (format === 'png' ? img.png() : img.jpeg()).toBuffer();
}

/**
 * A half red, half blue image (left red): the captioner says one of its two captions, with attention
 * that differs between words, which the page test needs to see the overlay change.
 */
export function splitImage(width = 64, height = 48): Promise<Buffer> {
  const half = Math.floor(width / 2);
  return sharp({ create: { width, height, channels: 3, background: '#1030e0' } })
    .composite([{ input: { create: { width: half, height, channels: 3, background: '#e01010' } }, left: 0, top: 0 }])
    .png()
    .toBuffer();
}

/** The page and the browser build of show-attend-tell/web made in memory from the sources (never a stale dist/). */
export const browserBuilds = (): { page: FileSource; webBuild: FileSource } => ({
  page: lazyFiles(() => buildBrowser('page')),
  webBuild: lazyFiles(() => buildBrowser('web')),
});
