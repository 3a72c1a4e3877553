/**
 * Images in the browser -> RGB uint8 size x size, as close to `sat features` (sharp) as a browser allows:
 *
 *   URL string / Blob   fetch -> createImageBitmap(blob, { imageOrientation: 'from-image' })  (EXIF rotation, as sharp.rotate())
 *   HTMLImageElement, ImageBitmap, canvas, VideoFrame   drawn unscaled on a canvas at its natural size
 *   ImageData, { data, width, height, channels? }       used as they are
 *   -> full-size RGBA pixels -> resizeToSquareRgb (src/features/resize.ts): libvips' 'linear' resize as sharp runs
 *      it, in TypeScript, so the result does not depend on the browser's canvas scaler. Shrinking, it is sharp's
 *      exactly (checks/resize-parity.ts: 0 of 40 COCO val photos differ at 224 or 299, except one panorama that is
 *      enlarged on one side); enlarging, within one level. Big JPEGs, which sharp decodes at 1/2 to 1/8 of their size
 *      (shrink-on-load, when both sides shrink 3x or more), still differ by that decoder scaling.
 *   -> scaling and layout are the shared src/features/pixels.ts.
 *
 * The browser decodes the JPEG/PNG itself; its decoder (libjpeg-turbo in Chromium) may differ from libvips'
 * by a level here and there. An image the browser cannot decode is refused with an Error that names it.
 */
import { asPixelBuffer, PIXELS_SHAPE, resizeToSquareRgb, type PixelBuffer, type RgbImage } from '../features/resize.js';

export type { RgbImage } from '../features/resize.js';

/** What the browser entry captions. */
export type WebImageInput =
  string | Blob | ImageBitmap | HTMLImageElement | HTMLCanvasElement | OffscreenCanvas | ImageData | RgbImage;

export class ImageDecodeError extends Error {
  constructor(what: string, detail: string) {
    super(`${what}: the browser cannot decode this image (${detail}). Use a JPEG, PNG, WebP or GIF file.`);
    this.name = 'ImageDecodeError';
  }
}

const describe = (image: unknown) =>
  typeof image === 'string' ? image : Object.prototype.toString.call(image).slice(8, -1);

/** Pixels of a drawable at its natural size, via a canvas. */
function drawablePixels(source: CanvasImageSource, width: number, height: number): PixelBuffer {
  if (!(width > 0 && height > 0))
    throw new ImageDecodeError(describe(source), `it has size ${width}x${height}; is it loaded?`);
  const canvas =
    typeof OffscreenCanvas !== 'undefined'
      ? new OffscreenCanvas(width, height)
      : Object.assign(document.createElement('canvas'), { width, height });
  const ctx = (canvas as HTMLCanvasElement).getContext('2d', {
    willReadFrequently: true,
  }) as CanvasRenderingContext2D | null;
  if (!ctx) {
    throw new Error(
      `${describe(source)}: this browser gives no 2D canvas context to read the image's pixels with. ` +
        'Pass the pixels yourself, as ImageData or { data, width, height, channels }.',
    );
  }
  ctx.drawImage(source, 0, 0);
  const { data } = ctx.getImageData(0, 0, width, height);
  return { data, width, height, channels: 4 };
}

async function blobPixels(blob: Blob, what: string): Promise<PixelBuffer> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(blob, {
      imageOrientation: 'from-image',
      premultiplyAlpha: 'none',
      colorSpaceConversion: 'default',
    });
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
      throw new Error(
        `${image}: cannot fetch the image (${(e as Error).message}). Check the URL; an image on another site ` +
          'must be served with CORS headers (Access-Control-Allow-Origin), or fetch it yourself and pass the Blob.',
      );
    }
    if (!res.ok) {
      throw new Error(
        `${image}: HTTP ${res.status} ${res.statusText} for the image. ` +
          (res.status === 404 ? 'Check the URL.' : 'Check the URL and the server that serves it.'),
      );
    }
    return blobPixels(await res.blob(), image);
  }
  if (typeof Blob !== 'undefined' && image instanceof Blob) return blobPixels(image, describe(image));
  if (typeof ImageData !== 'undefined' && image instanceof ImageData)
    return { data: image.data, width: image.width, height: image.height, channels: 4 };
  if (typeof HTMLImageElement !== 'undefined' && image instanceof HTMLImageElement) {
    if (!image.complete) await image.decode().catch(() => {});
    if (image.naturalWidth === 0) throw new ImageDecodeError(image.currentSrc || image.src || 'img', 'it did not load');
    return drawablePixels(image, image.naturalWidth, image.naturalHeight);
  }
  const drawable = image as { width?: number; height?: number };
  if (
    (typeof ImageBitmap !== 'undefined' && image instanceof ImageBitmap) ||
    (typeof HTMLCanvasElement !== 'undefined' && image instanceof HTMLCanvasElement) ||
    (typeof OffscreenCanvas !== 'undefined' && image instanceof OffscreenCanvas)
  ) {
    return drawablePixels(image as CanvasImageSource, drawable.width!, drawable.height!);
  }
  const pixels = asPixelBuffer(image);
  if (pixels) return pixels;
  throw new Error(
    `${describe(image)} is not an image: pass a URL, a Blob/File, an <img>, an ImageBitmap, a canvas, ImageData ` +
      `or decoded pixels ${PIXELS_SHAPE}.`,
  );
}

/** Any WebImageInput -> RGB uint8 size x size (HWC). */
export async function preprocessWebImage(
  image: WebImageInput,
  size: number,
  fetchImpl?: typeof fetch,
): Promise<Uint8Array> {
  return resizeToSquareRgb(await imagePixels(image, fetchImpl), size);
}
