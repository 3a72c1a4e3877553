/**
 * http(s) image URLs -> a file in the cache, like the TF tutorial's `tf.keras.utils.get_file(origin=image_url)`:
 * downloaded once to <cache>/images/<sha256(url)[:16]><ext> and reused after. A download must answer 2xx
 * (at most 5 redirects followed, each checked like the first URL), say it is an image (Content-Type image/*, not
 * SVG), stay under a size limit (checked against Content-Length first and while streaming), start with the bytes
 * of a raster format (JPEG, PNG, WebP, GIF, TIFF, AVIF/HEIF: never SVG, PDF or other formats libvips would
 * render) and decode as an image; otherwise it is refused and nothing stays in the cache.
 *
 * Unless `allowPrivateNetwork` is set, a URL whose host is, or resolves to, a loopback, private, link-local or
 * other special-use address (src/util/special-address.ts) is refused, on every redirect, and the connection goes
 * to the very address that was checked (the check runs inside the socket's DNS lookup), so DNS rebinding
 * cannot slip a private address in between. An application that passes URLs from its users keeps the default.
 */
import { createHash } from 'node:crypto';
import dns from 'node:dns';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type LookupFunction } from 'node:net';
import path from 'node:path';
import sharp from 'sharp';
import { cacheDir } from '../util/cache-dir.js';
import { UserError } from '../util/errors.js';
import { specialAddressKind } from '../util/special-address.js';

/** Default size limit of a downloaded image: 20 MiB. */
export const DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024;

export interface ImageUrlOptions {
  /** Refuse bodies larger than this (default DEFAULT_MAX_IMAGE_BYTES). */
  maxBytes?: number;
  /** Folder of downloaded images (default <cache>/images). */
  dir?: string;
  /** Give up after this many milliseconds (default 60 s). */
  timeoutMs?: number;
  /**
   * Also load from hosts that are or resolve to loopback, private, link-local or other special-use addresses
   * (default false: refused, on every redirect). The CLI allows them; an app that passes its users' URLs should not.
   */
  allowPrivateNetwork?: boolean;
  /** Which addresses count as special-use (default specialAddressKind: the IANA registries); tests narrow it. */
  specialAddress?: (address: string) => string | null;
}

export const isImageUrl = (s: string) => /^https?:\/\//i.test(s);

const EXTENSIONS: Record<string, string> = {
  'image/jpeg': '.jpg',
  'image/png': '.png',
  'image/webp': '.webp',
  'image/gif': '.gif',
  'image/tiff': '.tif',
  'image/avif': '.avif',
};

/** The cached file of an image URL, downloading it first if needed. */
export async function fetchImageUrl(url: string, opts: ImageUrlOptions = {}): Promise<string> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_IMAGE_BYTES;
  const dir = opts.dir ?? path.join(cacheDir(), 'images');
  // Downloads allowed to reach private addresses are cached apart, so a public-only caller never reads one.
  const key = createHash('sha256')
    .update(opts.allowPrivateNetwork ? `allow-private-network\n${url}` : url)
    .digest('hex')
    .slice(0, 16);
  if (fs.existsSync(dir)) {
    const cached = fs.readdirSync(dir).find((f) => f.startsWith(key) && !f.endsWith('.part'));
    if (cached) return path.join(dir, cached);
  }
  const { data, type } = await download(url, opts, maxBytes);
  try {
    await sharp(data, { failOn: 'error' }).metadata();
  } catch (e) {
    throw new UserError(
      `${url}: says it is ${type} but does not decode as an image (${(e as Error).message.split('\n')[0]}).`,
    );
  }
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, key + (EXTENSIONS[type] ?? '.img'));
  const part = `${file}.part`;
  fs.writeFileSync(part, data);
  fs.renameSync(part, file);
  return file;
}

const MAX_REDIRECTS = 5;

/** The body of `url` (redirects followed, every hop checked), its Content-Type checked, sniffed and size-limited. */
async function download(url: string, opts: ImageUrlOptions, maxBytes: number): Promise<{ data: Buffer; type: string }> {
  const limit = `${(maxBytes / 1024 / 1024).toFixed(1)} MiB`;
  const signal = AbortSignal.timeout(opts.timeoutMs ?? 60_000);
  let current = parseUrl(url, url);
  for (let hop = 0; ; hop++) {
    refuseSpecialHost(url, current, opts);
    const res = await get(url, current, signal, opts);
    const refuse = (why: string): never => {
      res.destroy();
      throw new UserError(`${url}: ${why}`);
    };
    const location = res.headers.location;
    if (res.statusCode && [301, 302, 303, 307, 308].includes(res.statusCode) && location) {
      res.resume();
      if (hop >= MAX_REDIRECTS) refuse(`more than ${MAX_REDIRECTS} redirects. Check the URL.`);
      current = parseUrl(location, url, current);
      continue;
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300)
      refuse(`HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}. Check the URL.`);
    const type = (res.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (!type.startsWith('image/'))
      refuse(`not an image (Content-Type "${type || 'none'}"). Pass the URL of the image file itself.`);
    if (type === 'image/svg+xml')
      refuse(
        'an SVG image: SVG is never decoded from a URL (it can load other resources). Convert it to PNG and pass the file.',
      );
    const declared = Number(res.headers['content-length'] ?? NaN);
    if (declared > maxBytes)
      refuse(
        `${declared} bytes is larger than the ${limit} limit for downloaded images; raise the limit (--max-image-mb) if the image is genuine.`,
      );
    const chunks: Buffer[] = [];
    let bytes = 0;
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        if (bytes > maxBytes)
          refuse(
            `more than the ${limit} limit for downloaded images; raise the limit (--max-image-mb) if the image is genuine.`,
          );
        chunks.push(chunk);
      }
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new UserError(
        `${url}: the download broke off after ${bytes} bytes (${downloadError(e, opts)}). Try again.`,
      );
    }
    const data = Buffer.concat(chunks);
    const format = rasterFormat(data);
    if (!format) {
      throw new UserError(
        `${url}: says it is ${type} but its bytes are not JPEG, PNG, WebP, GIF, TIFF or AVIF ` +
          '(other formats, SVG above all, are not decoded from URLs). Download it and pass the file if you trust it.',
      );
    }
    return { data, type };
  }
}

function parseUrl(text: string, original: string, base?: URL): URL {
  let u: URL;
  try {
    u = new URL(text, base);
  } catch {
    throw new UserError(`${original}: ${base ? `redirects to "${text}", which is` : 'is'} not a valid URL.`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new UserError(
      `${original}: ${base ? `redirects to ${u.href}: ` : ''}only http and https URLs are loaded, not ${u.protocol}`,
    );
  }
  return u;
}

const privateHint =
  'Images are not loaded from loopback, private or link-local addresses unless the caller allows it ' +
  '(loadCaptioner option allowPrivateNetwork: true; `sat caption` allows it).';

/** An IP-literal host is checked here (no DNS lookup happens for it); a host name is checked in its lookup. */
function refuseSpecialHost(original: string, u: URL, opts: ImageUrlOptions): void {
  if (opts.allowPrivateNetwork) return;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (net.isIP(host) === 0) return;
  const kind = (opts.specialAddress ?? specialAddressKind)(host);
  if (kind) throw new UserError(`${original}: refused: ${u.host} is a ${kind} address. ${privateHint}`);
}

/** A DNS lookup that fails for a host with any special-use address, so the socket only ever connects to a checked one. */
const publicOnlyLookup =
  (special: (address: string) => string | null): LookupFunction =>
  (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const bad = addresses.find((a) => special(a.address) !== null);
      if (bad) {
        const e = Object.assign(
          new Error(`${hostname} resolves to ${bad.address}, a ${special(bad.address)} address`),
          { code: 'ESPECIALADDRESS' },
        );
        return callback(e, '', 0);
      }
      if ((options as { all?: boolean }).all)
        return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, addresses);
      return callback(null, addresses[0].address, addresses[0].family);
    });
  };

function get(original: string, u: URL, signal: AbortSignal, opts: ImageUrlOptions): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const client = u.protocol === 'https:' ? https : http;
    const req = client.get(
      u,
      {
        signal,
        headers: { accept: 'image/*', 'user-agent': 'show-attend-tell' },
        ...(opts.allowPrivateNetwork ? {} : { lookup: publicOnlyLookup(opts.specialAddress ?? specialAddressKind) }),
      },
      resolve,
    );
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ESPECIALADDRESS') reject(new UserError(`${original}: refused: ${e.message}. ${privateHint}`));
      else
        reject(
          new UserError(
            `cannot download ${original} (${downloadError(e, opts)}). Check the URL and your connection, or download the image and pass the file.`,
          ),
        );
    });
  });
}

function downloadError(e: unknown, opts: ImageUrlOptions): string {
  const err = e as NodeJS.ErrnoException;
  if (err.name === 'AbortError' || err.code === 'ABORT_ERR')
    return `no answer within ${((opts.timeoutMs ?? 60_000) / 1000).toFixed(0)} s`;
  return err.code ?? err.message;
}

/** The raster format `data` starts with, or null: only these are decoded from URLs. */
export function rasterFormat(data: Uint8Array): string | null {
  const b = Buffer.from(data.buffer, data.byteOffset, Math.min(data.byteLength, 32));
  const ascii = (from: number, to: number) => b.subarray(from, to).toString('latin1');
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'png';
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'webp';
  if (ascii(0, 6) === 'GIF87a' || ascii(0, 6) === 'GIF89a') return 'gif';
  if (ascii(0, 4) === 'II*\0' || ascii(0, 4) === 'MM\0*') return 'tiff';
  if (ascii(4, 8) === 'ftyp' && /^(avif|avis|heic|heix|mif1|msf1)$/.test(ascii(8, 12))) return 'avif';
  return null;
}
