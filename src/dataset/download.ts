/**
 * `sat prepare --download`: fetch the public archives of a dataset into --root and extract them.
 *
 *  - resumable: bytes go to NAME.part; a rerun (or an automatic retry) continues with an HTTP Range request
 *  - verified: the final size must match the server's, and the sha256 must match when we know it; when we
 *    do not, the sha256 is recorded in ROOT/downloads.json so the archive can be checked later
 *  - extracted with our own zip reader (src/dataset/zip.ts), each entry CRC-checked
 *  - offline: a UserError names the URL and says how to download by hand and use --root
 *
 * Base URLs can be overridden (option `baseUrl`, or SAT_COCO_BASE_URL / SAT_FLICKR8K_BASE_URL), which is
 * how the tests run all of this against a local server.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { ProgressBar } from '../util/progress.js';
import { UserError } from '../util/errors.js';
import { extractZip } from './zip.js';

export interface ArchiveSpec {
  /** Path relative to the base URL, e.g. "zips/train2014.zip". */
  path: string;
  /** Known sha256 (hex), if any. */
  sha256?: string;
  /** Extract into this subfolder of ROOT (default ROOT itself); a same-named top folder in the zip is stripped. */
  into?: string;
}

export interface DatasetDownload {
  baseUrl: string;
  envVar: string;
  archives: ArchiveSpec[];
  /** What the extracted root looks like, for the "download manually" message. */
  layout: string;
}

// The tutorial's COCO 2014 URLs, and the Flickr8k release most tutorials use. No sha256 is published for
// these, so none is hard-coded: the first download records it (downloads.json).
export const DOWNLOADS: Record<'coco' | 'flickr8k', DatasetDownload> = {
  coco: {
    baseUrl: 'http://images.cocodataset.org',
    envVar: 'SAT_COCO_BASE_URL',
    archives: [{ path: 'annotations/annotations_trainval2014.zip' }, { path: 'zips/train2014.zip' }],
    layout: 'ROOT/annotations/captions_train2014.json and ROOT/train2014/*.jpg',
  },
  flickr8k: {
    baseUrl: 'https://github.com/jbrownlee/Datasets/releases/download/Flickr8k',
    envVar: 'SAT_FLICKR8K_BASE_URL',
    archives: [{ path: 'Flickr8k_Dataset.zip' }, { path: 'Flickr8k_text.zip', into: 'Flickr8k_text' }],
    layout: 'ROOT/Flicker8k_Dataset/*.jpg and ROOT/Flickr8k_text/Flickr8k.token.txt',
  },
};

export interface DownloadOptions {
  /** Automatic resume attempts after a dropped connection (default 3). */
  retries?: number;
  sha256?: string;
  silent?: boolean;
}

export interface DownloadResult { file: string; bytes: number; sha256: string }

const OFFLINE_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'ETIMEDOUT']);
const MiB = 1024 * 1024;

class Interrupted extends Error {}

/** GET with redirects; resolves with the final response. */
function request(url: string, headers: Record<string, string>, redirects = 5): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? https.get : http.get;
    const req = get(url, { headers: { 'user-agent': 'show-attend-tell', ...headers } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirects === 0) return reject(new UserError(`too many redirects downloading ${url}.`));
        return resolve(request(new URL(res.headers.location, url).toString(), headers, redirects - 1));
      }
      resolve(res);
    });
    req.setTimeout(60_000, () => req.destroy(Object.assign(new Error('no data for 60 s'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
  });
}

async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** One attempt: continue NAME.part from its current size. Throws Interrupted if the body stops early. */
async function fetchInto(url: string, part: string, silent: boolean): Promise<void> {
  const have = fs.existsSync(part) ? fs.statSync(part).size : 0;
  const res = await request(url, have > 0 ? { range: `bytes=${have}-` } : {});
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
    throw new UserError(`download of ${url} failed: HTTP ${status}. Check the URL (or the base URL override) or download it manually.`);
  }
  // 206 continues the .part; a 200 means the server ignored Range, so start over.
  const start = status === 206 ? have : 0;
  if (status === 206) {
    const m = /bytes (\d+)-/.exec(String(res.headers['content-range'] ?? ''));
    if (!m || Number(m[1]) !== have) { res.resume(); fs.rmSync(part, { force: true }); throw new Interrupted('server resumed at the wrong offset'); }
  }
  const length = Number(res.headers['content-length'] ?? NaN);
  const total = start + length;
  const bar = new ProgressBar({ total: Number.isFinite(total) ? Math.ceil(total / MiB) : 0, label: `download ${path.basename(url)}`, unit: 'MiB', silent });
  bar.tick(Math.floor(start / MiB));
  const out = fs.createWriteStream(part, { flags: status === 206 ? 'a' : 'w' });
  let got = 0, ticked = 0;
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
      const mib = Math.floor((start + got) / MiB) - Math.floor(start / MiB);
      if (mib > ticked) { bar.tick(mib - ticked); ticked = mib; }
      if (!out.write(chunk)) { res.pause(); out.once('drain', () => res.resume()); }
    });
    res.on('end', () => settle());
    res.on('error', (e) => settle(e));
    res.on('close', () => settle(res.complete ? undefined : new Interrupted('connection closed early')));
  });
  bar.finish();
  if (Number.isFinite(length) && got < length) throw new Interrupted(`got ${start + got} of ${total} bytes`);
}

/**
 * Download `url` to `dest`, resuming DEST.part if present. Verifies the size against the server's and the
 * sha256 against `opts.sha256` if given (a mismatch deletes the .part and throws). Returns the sha256.
 */
export async function downloadFile(url: string, dest: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  const part = dest + '.part';
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const retries = opts.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    try {
      await fetchInto(url, part, opts.silent ?? false);
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code && OFFLINE_CODES.has(code) && !fs.existsSync(part)) {
        throw new UserError(`cannot reach ${url} (${code}): are you offline? Download it manually, extract it into the ` +
          'dataset folder and pass that folder as --root (without --download).');
      }
      const resumable = e instanceof Interrupted || (code !== undefined && (OFFLINE_CODES.has(code) || code === 'ECONNRESET'));
      if (!resumable) throw e;
      if (attempt >= retries) {
        const have = fs.existsSync(part) ? fs.statSync(part).size : 0;
        throw new UserError(`download of ${url} was interrupted (${(e as Error).message}) with ${have} bytes in ${part}; ` +
          'run the same command again to resume, or download it manually and pass --root.');
      }
    }
  }
  const bytes = fs.statSync(part).size;
  const sha256 = await sha256File(part);
  if (opts.sha256 && opts.sha256.toLowerCase() !== sha256) {
    fs.rmSync(part, { force: true });
    throw new UserError(`${url} is corrupt: sha256 ${sha256} instead of ${opts.sha256} (${bytes} bytes). ` +
      'The partial file was deleted; run again to download it afresh.');
  }
  fs.renameSync(part, dest);
  return { file: dest, bytes, sha256 };
}

interface Manifest { [url: string]: { file: string; bytes: number; sha256: string; extracted: boolean; at: string } }

/**
 * Download and extract every archive of `dataset` into `root`. Archives already extracted (per
 * ROOT/downloads.json) are skipped; each archive is deleted after a verified extraction to save disk.
 */
export async function downloadDataset(dataset: 'coco' | 'flickr8k', root: string, opts: { baseUrl?: string; silent?: boolean; retries?: number; keepArchives?: boolean } = {}): Promise<void> {
  const spec = DOWNLOADS[dataset];
  const base = (opts.baseUrl ?? process.env[spec.envVar] ?? spec.baseUrl).replace(/\/+$/, '');
  const manifestPath = path.join(root, 'downloads.json');
  const manifest: Manifest = fs.existsSync(manifestPath) ? JSON.parse(fs.readFileSync(manifestPath, 'utf8')) : {};
  for (const archive of spec.archives) {
    const url = `${base}/${archive.path}`;
    const done = manifest[url];
    if (done?.extracted) continue;
    const zip = path.join(root, 'downloads', path.basename(archive.path));
    let result: DownloadResult;
    try {
      result = fs.existsSync(zip) && done
        ? { file: zip, bytes: done.bytes, sha256: done.sha256 }
        : await downloadFile(url, zip, { sha256: archive.sha256, silent: opts.silent, retries: opts.retries });
    } catch (e) {
      if (e instanceof UserError) throw new UserError(`${e.message}\nExpected layout after a manual download: ${spec.layout}.`);
      throw e;
    }
    manifest[url] = { file: path.relative(root, zip), bytes: result.bytes, sha256: result.sha256, extracted: false, at: new Date().toISOString() };
    fs.writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
    await extractZip(zip, path.join(root, archive.into ?? '.'), { stripPrefix: archive.into, silent: opts.silent });
    manifest[url].extracted = true;
    fs.writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
    if (!opts.keepArchives) fs.rmSync(zip);
  }
}
