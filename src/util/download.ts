/**
 * HTTP(S) downloads to a file, shared by `sat prepare --download` (dataset archives) and model installs from a URL
 * (src/models/install.ts):
 *
 *  - redirects followed up to `maxRedirects` (default 5), never from https down to plain http
 *  - `timeoutMs` (default 60 s) without data ends an attempt
 *  - resumable: bytes go to DEST.part; an automatic retry (`retries`, default 3) continues it with an HTTP Range
 *    request; with `keepPartial` (default true) a failed download leaves the .part for the next run to continue,
 *    without it the .part is deleted
 *  - limits: `maxBytes` refuses a larger body (announced or received) and stops reading at once
 *  - verified: the body must have the server's announced length, and `sha256` (when given) must match; only then
 *    does the file get its final name, so a file under its own name is always complete
 *
 * Every refusal is a UserError naming the URL; `fix` (e.g. how to download by hand) ends each message.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { UserError } from './errors.js';
import { ProgressBar } from './progress.js';

export interface DownloadOptions {
  /** Automatic resume attempts after a dropped connection (default 3). */
  retries?: number;
  /** Expected SHA-256 (hex); a mismatch deletes the download. */
  sha256?: string;
  /** Largest body accepted, in bytes (default: no limit). */
  maxBytes?: number;
  /** An attempt ends after this many milliseconds without data (default 60 000). */
  timeoutMs?: number;
  /** Most redirects followed (default 5). */
  maxRedirects?: number;
  /** Leave DEST.part behind after a failure so that a rerun continues it (default true). */
  keepPartial?: boolean;
  /** What the user can do instead, appended to every refusal. */
  fix?: string;
  silent?: boolean;
}

export interface DownloadResult {
  file: string;
  bytes: number;
  sha256: string;
}

export const DEFAULT_DOWNLOAD_TIMEOUT_MS = 60_000;
export const DEFAULT_MAX_REDIRECTS = 5;
const OFFLINE_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'ETIMEDOUT']);
const MiB = 1024 * 1024;

/** A download attempt that stopped early; the next attempt may continue it. */
class Interrupted extends Error {}

interface Attempt {
  headers: Record<string, string>;
  timeoutMs: number;
  maxRedirects: number;
  fix: string;
}

/** GET `url`, following redirects (at most `maxRedirects`, never https -> http); resolves with the final response. */
export function httpGet(url: string, opts: Partial<Attempt> = {}): Promise<http.IncomingMessage> {
  const {
    headers = {},
    timeoutMs = DEFAULT_DOWNLOAD_TIMEOUT_MS,
    maxRedirects = DEFAULT_MAX_REDIRECTS,
    fix = '',
  } = opts;
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? https.get : http.get;
    const req = get(url, { headers: { 'user-agent': 'show-attend-tell', ...headers } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (maxRedirects <= 0) return reject(new UserError(`too many redirects downloading ${url}. ${fix}`.trim()));
        const next = new URL(res.headers.location, url);
        if (url.startsWith('https:') && next.protocol !== 'https:') {
          return reject(new UserError(`${url} redirects to ${next.href}, which is not https: refused. ${fix}`.trim()));
        }
        return resolve(httpGet(next.href, { headers, timeoutMs, maxRedirects: maxRedirects - 1, fix }));
      }
      resolve(res);
    });
    req.setTimeout(timeoutMs, () =>
      req.destroy(Object.assign(new Error(`no data for ${timeoutMs / 1000} s`), { code: 'ETIMEDOUT' })),
    );
    req.on('error', reject);
  });
}

export async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function tooLarge(url: string, maxBytes: number, fix: string): UserError {
  return new UserError(`${url} is larger than the limit of ${maxBytes} bytes: refused. ${fix}`.trim());
}

/** One attempt: continue `part` from its current size. Throws Interrupted if the body stops early. */
async function fetchInto(url: string, part: string, opts: DownloadOptions & Attempt): Promise<void> {
  const have = fs.existsSync(part) ? fs.statSync(part).size : 0;
  const res = await httpGet(url, { ...opts, headers: have > 0 ? { range: `bytes=${have}-` } : {} });
  const status = res.statusCode ?? 0;
  if (status === 416) {
    // Nothing left to fetch: fine if the .part has exactly the server's size, else start over.
    res.resume();
    const total = Number(/\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''))?.[1] ?? NaN);
    if (total === have) return;
    fs.rmSync(part, { force: true });
    throw new Interrupted(`the partial file is larger than the server's ${total} bytes`);
  }
  if (status !== 200 && status !== 206) {
    res.resume();
    throw new UserError(`download of ${url} failed: HTTP ${status}. Check the URL. ${opts.fix}`.trim());
  }
  // 206 continues the .part; a 200 means the server ignored Range, so start over.
  const start = status === 206 ? have : 0;
  if (status === 206) {
    const m = /bytes (\d+)-/.exec(String(res.headers['content-range'] ?? ''));
    if (!m || Number(m[1]) !== have) {
      res.resume();
      fs.rmSync(part, { force: true });
      throw new Interrupted('server resumed at the wrong offset');
    }
  }
  const length = Number(res.headers['content-length'] ?? NaN);
  const total = start + length;
  const maxBytes = opts.maxBytes ?? Infinity;
  if (Number.isFinite(total) && total > maxBytes) {
    res.destroy();
    throw tooLarge(url, maxBytes, opts.fix);
  }
  const bar = new ProgressBar({
    total: Number.isFinite(total) ? Math.ceil(total / MiB) : 0,
    label: `download ${path.basename(new URL(url).pathname)}`,
    unit: 'MiB',
    silent: opts.silent,
  });
  bar.tick(Math.floor(start / MiB));
  const out = fs.createWriteStream(part, { flags: status === 206 ? 'a' : 'w' });
  let got = 0,
    ticked = 0;
  await new Promise<void>((resolve, reject) => {
    // Settle once, and only after the .part is flushed and closed, so a retry appends to a complete file.
    let settled = false;
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      out.end(() => (err ? reject(err) : resolve()));
    };
    res.on('data', (chunk: Buffer) => {
      got += chunk.length;
      if (start + got > maxBytes) {
        res.destroy();
        settle(tooLarge(url, maxBytes, opts.fix));
        return;
      }
      const mib = Math.floor((start + got) / MiB) - Math.floor(start / MiB);
      if (mib > ticked) {
        bar.tick(mib - ticked);
        ticked = mib;
      }
      if (!out.write(chunk)) {
        res.pause();
        out.once('drain', () => res.resume());
      }
    });
    res.on('end', () => settle());
    res.on('error', (e) => settle(e));
    res.on('close', () => settle(res.complete ? undefined : new Interrupted('connection closed early')));
  });
  bar.finish();
  if (Number.isFinite(length) && got < length) throw new Interrupted(`got ${start + got} of ${total} bytes`);
}

/**
 * Download `url` to `dest` (see the file comment), resuming DEST.part if present. Returns the size and SHA-256;
 * refuses a SHA-256 other than `opts.sha256` (deleting the download).
 */
export async function downloadFile(url: string, dest: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  const part = dest + '.part';
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const retries = opts.retries ?? 3;
  const keep = opts.keepPartial ?? true;
  const attempt: DownloadOptions & Attempt = {
    ...opts,
    headers: {},
    timeoutMs: opts.timeoutMs ?? DEFAULT_DOWNLOAD_TIMEOUT_MS,
    maxRedirects: opts.maxRedirects ?? DEFAULT_MAX_REDIRECTS,
    fix: opts.fix ?? '',
  };
  const fail = (message: string) => {
    if (!keep) fs.rmSync(part, { force: true });
    return new UserError(`${message} ${attempt.fix}`.trim());
  };
  for (let n = 0; ; n++) {
    try {
      await fetchInto(url, part, attempt);
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code && OFFLINE_CODES.has(code) && !fs.existsSync(part))
        throw fail(`cannot reach ${url} (${code}): are you offline?`);
      const resumable =
        e instanceof Interrupted || (code !== undefined && (OFFLINE_CODES.has(code) || code === 'ECONNRESET'));
      if (!resumable) {
        if (!keep) fs.rmSync(part, { force: true });
        throw e;
      }
      if (n >= retries) {
        const have = fs.existsSync(part) ? fs.statSync(part).size : 0;
        throw fail(
          keep
            ? `download of ${url} was interrupted (${(e as Error).message}) with ${have} bytes in ${part}; run the same command again to resume.`
            : `download of ${url} was interrupted (${(e as Error).message}) after ${retries} retries; nothing was kept. Run the same command again to retry.`,
        );
      }
    }
  }
  const bytes = fs.statSync(part).size;
  const sha256 = await sha256File(part);
  if (opts.sha256 && opts.sha256.toLowerCase() !== sha256) {
    fs.rmSync(part, { force: true });
    throw new UserError(
      `${url} is corrupt: sha256 ${sha256} instead of ${opts.sha256} (${bytes} bytes). ` +
        `The partial file was deleted; run again to download it afresh. ${attempt.fix}`.trim(),
    );
  }
  fs.renameSync(part, dest);
  return { file: dest, bytes, sha256 };
}
