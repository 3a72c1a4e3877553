/**
 * Images in the browser -> RGB uint8 size x size, as close to `sat features` (sharp) as a browser allows:
 *
 *   URL string / Blob   fetch -> createImageBitmap(blob, { imageOrientation: 'from-image' })  (EXIF rotation, as sharp.rotate())
 *   HTMLImageElement, ImageBitmap, canvas, VideoFrame   drawn unscaled on a canvas at its natural size
 *   ImageData, { data, width, height, channels? }       used as they are
 *   -> full-size RGBA pixels -> resizeToSquareRgb (src/features/resize.ts): the triangle filter of libvips'
 *      'linear' reduce that sharp uses, in TypeScript, so the result does not depend on the browser's canvas
 *      scaler. Measured against sharp on COCO photos (424..640 px -> 224/299): mean |difference| 0.15-0.22 levels.
 *   -> scaling and layout are the shared src/features/pixels.ts.
 *
 * The browser decodes the JPEG/PNG itself; its decoder (libjpeg-turbo in Chromium) may differ from libvips'
 * by a level here and there. An image the browser cannot decode is refused with an Error that names it.
 */
import { resizeToSquareRgb, type PixelBuffer } from '../features/resize.js';

/** Decoded pixels, HWC, RGB or RGBA. */
export interface RgbImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels?: 3 | 4;
}

/** What the browser entry captions. */
export type WebImageInput = string | Blob | ImageBitmap | HTMLImageElement | HTMLCanvasElement | OffscreenCanvas | ImageData | RgbImage;

export class ImageDecodeError extends Error {
  constructor(what: string, detail: string) {
    super(`${what}: the browser cannot decode this image (${detail}). Use a JPEG, PNG, WebP or GIF file.`);
    this.name = 'ImageDecodeError';
  }
}

const describe = (image: unknown) => (typeof image === 'string' ? image : Object.prototype.toString.call(image).slice(8, -1));

/** Pixels of a drawable at its natural size, via a canvas. */
function drawablePixels(source: CanvasImageSource, width: number, height: number): PixelBuffer {
  if (!(width > 0 && height > 0)) throw new ImageDecodeError(describe(source), `it has size ${width}x${height}; is it loaded?`);
  const canvas = typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(width, height) : Object.assign(document.createElement('canvas'), { width, height });
  const ctx = (canvas as HTMLCanvasElement).getContext('2d', { willReadFrequently: true }) as CanvasRenderingContext2D | null;
  if (!ctx) throw new Error('no 2D canvas context in this browser');
  ctx.drawImage(source, 0, 0);
  const { data } = ctx.getImageData(0, 0, width, height);
  return { data, width, height, channels: 4 };
}

async function blobPixels(blob: Blob, what: string): Promise<PixelBuffer> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'default' });
  } catch (e) {
    throw new ImageDecodeError(what, `${blob.type || 'unknown type'}, ${blob.size} bytes: ${(e as Error).message}`);
  }
  try {
    return drawablePixels(bitmap, bitmap.width, bitmap.height);
  } finally {
    bitmap.close();
  }
}

/** Full-size pixels of any WebImageInput. */
export async function imagePixels(image: WebImageInput, fetchImpl: typeof fetch = fetch): Promise<PixelBuffer> {
  if (typeof image === 'string') {
    let res: Response;
    try {
      res = await fetchImpl(image);
    } catch (e) {
      throw new Error(`${image}: cannot fetch the image (${(e as Error).message}).`);
    }
    if (!res.ok) throw new Error(`${image}: HTTP ${res.status} ${res.statusText}.`);
    return blobPixels(await res.blob(), image);
  }
  if (typeof Blob !== 'undefined' && image instanceof Blob) return blobPixels(image, describe(image));
  if (typeof ImageData !== 'undefined' && image instanceof ImageData) return { data: image.data, width: image.width, height: image.height, channels: 4 };
  if (typeof HTMLImageElement !== 'undefined' && image instanceof HTMLImageElement) {
    if (!image.complete) await image.decode().catch(() => {});
    if (image.naturalWidth === 0) throw new ImageDecodeError(image.currentSrc || image.src || 'img', 'it did not load');
    return drawablePixels(image, image.naturalWidth, image.naturalHeight);
  }
  const drawable = image as { width?: number; height?: number };
  if ((typeof ImageBitmap !== 'undefined' && image instanceof ImageBitmap) || (typeof HTMLCanvasElement !== 'undefined' && image instanceof HTMLCanvasElement) ||
      (typeof OffscreenCanvas !== 'undefined' && image instanceof OffscreenCanvas)) {
    return drawablePixels(image as CanvasImageSource, drawable.width!, drawable.height!);
  }
  const px = image as RgbImage;
  const channels = px?.channels ?? (px?.data && px.width && px.height ? px.data.length / (px.width * px.height) : NaN);
  if ((px?.data instanceof Uint8Array || px?.data instanceof Uint8ClampedArray) && (channels === 3 || channels === 4) &&
      px.data.length === px.width * px.height * channels) {
    return { data: px.data, width: px.width, height: px.height, channels };
  }
  throw new Error(`${describe(image)} is not an image: pass a URL, a Blob/File, an <img>, an ImageBitmap, a canvas, ImageData ` +
    'or { data, width, height, channels: 3 | 4 }.');
}

/** Any WebImageInput -> RGB uint8 size x size (HWC). */
export async function preprocessWebImage(image: WebImageInput, size: number, fetchImpl?: typeof fetch): Promise<Uint8Array> {
  return resizeToSquareRgb(await imagePixels(image, fetchImpl), size);
}
