/**
 * http(s) image URLs -> a file in the cache, like the TF tutorial's `tf.keras.utils.get_file(origin=image_url)`:
 * downloaded once to <cache>/images/<sha256(url)[:16]><ext> and reused after. A download must answer 2xx
 * (redirects followed), say it is an image (Content-Type image/*), stay under a size limit (checked against
 * Content-Length first and while streaming) and decode as an image; otherwise it is refused and nothing stays
 * in the cache.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { cacheDir } from '../util/cache-dir.js';
import { UserError } from '../util/errors.js';

/** Default size limit of a downloaded image: 20 MiB. */
export const DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024;

export interface ImageUrlOptions {
  /** Refuse bodies larger than this (default DEFAULT_MAX_IMAGE_BYTES). */
  maxBytes?: number;
  /** Folder of downloaded images (default <cache>/images). */
  dir?: string;
  /** Give up after this many milliseconds (default 60 s). */
  timeoutMs?: number;
}

export const isImageUrl = (s: string) => /^https?:\/\//i.test(s);

const EXTENSIONS: Record<string, string> = {
  'image/jpeg': '.jpg', 'image/png': '.png', 'image/webp': '.webp', 'image/gif': '.gif', 'image/tiff': '.tif', 'image/avif': '.avif',
};

/** The cached file of an image URL, downloading it first if needed. */
export async function fetchImageUrl(url: string, opts: ImageUrlOptions = {}): Promise<string> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_IMAGE_BYTES;
  const dir = opts.dir ?? path.join(cacheDir(), 'images');
  const key = createHash('sha256').update(url).digest('hex').slice(0, 16);
  if (fs.existsSync(dir)) {
    const cached = fs.readdirSync(dir).find((f) => f.startsWith(key) && !f.endsWith('.part'));
    if (cached) return path.join(dir, cached);
  }
  const limit = `${(maxBytes / 1024 / 1024).toFixed(1)} MiB`;
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'follow', signal: AbortSignal.timeout(opts.timeoutMs ?? 60_000) });
  } catch (e) {
    const { cause } = e as { cause?: { code?: string; message?: string } };
    const why = cause?.code ?? cause?.message ?? (e as Error).message;
    throw new UserError(`cannot download ${url} (${why}). Check the URL and your connection, or download the image and pass the file.`);
  }
  const refuse = async (why: string): Promise<never> => {
    await res.body?.cancel().catch(() => {});
    throw new UserError(`${url}: ${why}`);
  };
  if (!res.ok) return refuse(`HTTP ${res.status} ${res.statusText}. Check the URL.`);
  const type = (res.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (!type.startsWith('image/')) return refuse(`not an image (Content-Type "${type || 'none'}"). Pass the URL of the image file itself.`);
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) return refuse(`${declared} bytes is larger than the ${limit} limit for downloaded images; raise the limit (--max-image-mb) if the image is genuine.`);

  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, key + (EXTENSIONS[type] ?? '.img'));
  const part = `${file}.part`;
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      bytes += chunk.length;
      if (bytes > maxBytes) return await refuse(`more than the ${limit} limit for downloaded images; raise the limit (--max-image-mb) if the image is genuine.`);
      chunks.push(chunk);
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${url}: the download broke off after ${bytes} bytes (${(e as Error).message}). Try again.`);
  }
  const data = Buffer.concat(chunks);
  try {
    await sharp(data, { failOn: 'error' }).metadata();
  } catch (e) {
    throw new UserError(`${url}: says it is ${type} but does not decode as an image (${(e as Error).message.split('\n')[0]}).`);
  }
  fs.writeFileSync(part, data);
  fs.renameSync(part, file);
  return file;
}
