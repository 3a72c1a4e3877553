/**
 * Decoding the images clients upload: sharp (libvips) with every loader blocked but IMAGE_LOADERS while a server
 * runs, and a refusal from the catalogue for each way an image can fail.
 *
 * libvips can only block and unblock loaders process-wide: while a server runs, the other loaders are blocked for
 * the whole process; when the last server of the process closes, every loader is unblocked again.
 */
import sharp from 'sharp';
import { ImageLoadError, loadRgb } from '../features/image.js';
import { ERRORS, refuse } from './errors.js';

/** Image formats decoded from request bodies; every other libvips loader (SVG, PDF, ...) stays blocked. */
const IMAGE_LOADERS = ['VipsForeignLoadJpeg', 'VipsForeignLoadPng', 'VipsForeignLoadWebp', 'VipsForeignLoadNsgif', 'VipsForeignLoadTiff', 'VipsForeignLoadHeif'];

/** Servers of this process that block sharp's other loaders; the last one to close unblocks them. */
let loaderBlockers = 0;

/** Block every loader but IMAGE_LOADERS; returns the release (idempotent). */
export function blockUntrustedLoaders(): () => void {
  if (loaderBlockers++ === 0) {
    sharp.block({ operation: ['VipsForeignLoad'] });
    sharp.unblock({ operation: IMAGE_LOADERS });
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--loaderBlockers === 0) sharp.unblock({ operation: ['VipsForeignLoad'] });
  };
}

/** The uploaded image as the encoder takes it (RGB uint8 [size, size, 3]), or a refusal. */
export async function decodeImage(image: Uint8Array, size: number, maxPixels: number): Promise<Uint8Array> {
  try {
    return await loadRgb(image, size, maxPixels, 'the uploaded image');
  } catch (e) {
    if (!(e instanceof ImageLoadError)) throw e;
    if (e.kind === 'too-large') throw refuse(ERRORS.too_many_pixels, `more than ${maxPixels} (${e.message})`, { value: maxPixels });
    // including a format whose loader is blocked here (SVG, PDF ...)
    if (e.kind === 'not-an-image') throw refuse(ERRORS.not_an_image, e.message);
    throw refuse(ERRORS.corrupt_image, e.message);
  }
}
