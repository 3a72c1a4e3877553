/**
 * Decoding the images clients upload, within three limits:
 *   --image-formats   only these formats are decoded (default JPEG, PNG, WebP; GIF, TIFF, HEIF/AVIF are opt-in);
 *                     while a server runs every other libvips loader (SVG, PDF, ...) is blocked process-wide
 *   --max-pixels      counted at memory cost, from the header before anything is decoded: an 8-bit RGB pixel
 *                     counts 1; 16-bit samples 2 (float 4); a fourth channel 4/3; an interlaced PNG or progressive
 *                     JPEG 2 (decoded whole before it can be shrunk, where a sequential image streams)
 *   --image-timeout   the decode is abandoned after this long (libvips stops at the next whole second)
 * Each failure is a refusal from the catalogue.
 *
 * libvips can only block and unblock loaders process-wide: while a server runs, the other loaders are blocked for
 * the whole process; when the last server of the process closes, every loader is unblocked again.
 */
import sharp, { type Metadata } from 'sharp';
import { ImageLoadError, loadRgb } from '../features/image.js';
import { ERRORS, refuse } from './errors.js';
import type { ServeOptions } from './options.js';

/** The libvips loaders a server may use (those of IMAGE_FORMATS); every other loader stays blocked. */
const IMAGE_LOADERS = [
  'VipsForeignLoadJpeg',
  'VipsForeignLoadPng',
  'VipsForeignLoadWebp',
  'VipsForeignLoadNsgif',
  'VipsForeignLoadTiff',
  'VipsForeignLoadHeif',
];

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

/**
 * Size libvips' operation cache (process-wide, like the loader blocks): `mb` megabytes and sharp's default 100
 * operations, or none at all for 0. A server decodes each upload once, so a cache would only hold memory.
 */
export function sizeImageCache(mb: number): void {
  sharp.cache(mb > 0 ? { memory: mb, files: 20, items: 100 } : false);
}

/** Bytes libvips' operation cache holds now. */
export const imageCacheBytes = (): number => sharp.cache().memory.current * 1024 * 1024;

const BYTES_PER_SAMPLE: Record<string, number> = {
  uchar: 1,
  char: 1,
  ushort: 2,
  short: 2,
  uint: 4,
  int: 4,
  float: 4,
  complex: 8,
  double: 8,
  dpcomplex: 16,
};

/** An image's decoding cost in 8-bit RGB pixels (see the file comment), from its header. */
export function pixelCost(m: Metadata): number {
  const pixels = (m.width ?? 0) * (m.height ?? 0);
  const channels = Math.max(3, m.channels ?? 3) / 3;
  return Math.ceil(pixels * channels * (BYTES_PER_SAMPLE[m.depth] ?? 1) * (m.isProgressive ? 2 : 1));
}

type ImageLimits = Pick<ServeOptions, 'maxPixels' | 'imageFormats' | 'imageTimeoutMs'>;

const ascii = (bytes: Uint8Array, from: number, to: number) => String.fromCharCode(...bytes.subarray(from, to));

/** The format an image's first bytes announce (sharp's names), or null for none of IMAGE_FORMATS. */
export function sniffFormat(b: Uint8Array): string | null {
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (ascii(b, 0, 8) === '\x89PNG\r\n\x1a\n') return 'png';
  if (ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return 'webp';
  if (ascii(b, 0, 4) === 'GIF8') return 'gif';
  if (['II*\0', 'MM\0*'].includes(ascii(b, 0, 4))) return 'tiff';
  if (ascii(b, 4, 8) === 'ftyp') return 'heif';
  return null;
}

const tooSlowError = (limits: ImageLimits) =>
  refuse(ERRORS.image_too_slow, `more than ${limits.imageTimeoutMs} ms`, { value: limits.imageTimeoutMs / 1000 });

/** The uploaded image as the encoder takes it (RGB uint8 [size, size, 3]), or a refusal. */
export async function decodeImage(image: Uint8Array, size: number, limits: ImageLimits): Promise<Uint8Array> {
  const deadline = performance.now() + limits.imageTimeoutMs;
  const format = sniffFormat(image);
  if (format === null)
    throw refuse(
      ERRORS.not_an_image,
      'its first bytes are not those of a JPEG, PNG, WebP, GIF, TIFF or HEIF/AVIF file',
    );
  if (!limits.imageFormats.includes(format)) {
    throw refuse(ERRORS.format_not_enabled, `${format} (enabled: ${limits.imageFormats.join(', ')})`, {
      value: limits.imageFormats.join(','),
    });
  }
  let meta: Metadata;
  try {
    meta = await sharp(image).metadata();
  } catch (e) {
    throw refuse(ERRORS.corrupt_image, `its header cannot be read: ${(e as Error).message.split('\n')[0]}`);
  }
  if (meta.format !== format)
    throw refuse(ERRORS.corrupt_image, `it starts as ${format} but decodes as ${meta.format}`);
  const cost = pixelCost(meta);
  if (cost > limits.maxPixels) {
    const how = `${meta.width} x ${meta.height}, ${meta.channels} channels of ${meta.depth}${meta.isProgressive ? ', interlaced' : ''}`;
    throw refuse(ERRORS.too_many_pixels, `it counts as ${cost} pixels (${how}), more than ${limits.maxPixels}`, {
      value: limits.maxPixels,
    });
  }
  let timer: NodeJS.Timeout | undefined;
  const tooSlow = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(tooSlowError(limits)), Math.max(0, deadline - performance.now()));
  });
  try {
    const rgb = await Promise.race([
      loadRgb(
        image,
        size,
        limits.maxPixels,
        'the uploaded image',
        Math.max(1, Math.ceil(limits.imageTimeoutMs / 1000)),
      ),
      tooSlow,
    ]);
    // A decode that ends after the deadline is refused too, even when it beat the timer's callback in the event loop.
    if (performance.now() > deadline) throw tooSlowError(limits);
    return rgb;
  } catch (e) {
    if (!(e instanceof ImageLoadError)) throw e;
    if (/timeout/i.test(e.message))
      throw refuse(ERRORS.image_too_slow, e.message, { value: limits.imageTimeoutMs / 1000 });
    if (e.kind === 'too-large')
      throw refuse(ERRORS.too_many_pixels, `more than ${limits.maxPixels} (${e.message})`, { value: limits.maxPixels });
    // including a format whose loader is blocked here (SVG, PDF ...)
    if (e.kind === 'not-an-image') throw refuse(ERRORS.not_an_image, e.message);
    throw refuse(ERRORS.corrupt_image, e.message);
  } finally {
    clearTimeout(timer);
  }
}
