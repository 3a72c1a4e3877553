import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cacheDir } from '../util/cache-dir.js';
import { ProgressBar } from '../util/progress.js';
import { UserError } from '../util/errors.js';

export interface RemoteFile {
  url: string;
  /** Name inside the cache directory. */
  fileName: string;
  /** Hex MD5 of the file; absent when the caller verifies the content itself (and deletes a bad file). */
  md5?: string;
  /** Shown in the error when the download fails, e.g. "--encoder-weights FILE". */
  manualFlag: string;
}

/**
 * Verified, resumable downloads into the cache directory (src/util/cache-dir.ts).
 * A download goes to `<file>.part`; a rerun continues it with an HTTP Range request. The file gets its
 * final name only after its MD5 matches, so a file in the cache under its own name is always verified.
 * Files without a published MD5 get their final name once complete; their caller checks the content.
 */
export async function fetchVerified(
  remote: RemoteFile,
  opts: { fetchImpl?: typeof fetch; silent?: boolean } = {},
): Promise<string> {
  const dir = cacheDir();
  const dest = path.join(dir, remote.fileName);
  if (fs.existsSync(dest)) return dest;
  fs.mkdirSync(dir, { recursive: true });
  const part = `${dest}.part`;
  const manual =
    `Download it yourself (curl -L -o ${remote.fileName} ${remote.url}) and pass ${remote.manualFlag.replace('FILE', remote.fileName)}, ` +
    `or put it at ${dest}.`;
  try {
    await downloadResumable(remote.url, part, opts.fetchImpl ?? fetch, opts.silent ?? false);
  } catch (e) {
    throw new UserError(`Could not download ${remote.url}: ${(e as Error).message}.\n${manual}`);
  }
  const md5 = remote.md5 === undefined ? undefined : await fileMd5(part);
  if (md5 !== remote.md5) {
    fs.rmSync(part);
    throw new UserError(
      `${remote.url} downloaded with MD5 ${md5}, expected ${remote.md5}; the partial file was deleted, rerun to retry.\n${manual}`,
    );
  }
  fs.renameSync(part, dest);
  return dest;
}

async function downloadResumable(url: string, part: string, fetchImpl: typeof fetch, silent: boolean): Promise<void> {
  const have = fs.existsSync(part) ? fs.statSync(part).size : 0;
  const res = await fetchImpl(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {} });
  if (res.status === 416) return; // the .part is already complete
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status} ${res.statusText}`);
  const resumed = res.status === 206;
  const total = Number(res.headers.get('content-length') ?? 0) + (resumed ? have : 0);
  const out = fs.createWriteStream(part, { flags: resumed ? 'a' : 'w' });
  const bar = new ProgressBar({
    total: Math.max(total, 1),
    label: `download ${path.basename(url)}`,
    unit: 'B',
    silent,
  });
  if (resumed) bar.tick(have);
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
      bar.tick(chunk.length);
    }
  } finally {
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    bar.finish();
  }
}

export async function fileMd5(file: string): Promise<string> {
  const hash = createHash('md5');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
