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
import fs from 'node:fs';
import path from 'node:path';
import { downloadFile as sharedDownloadFile, type DownloadOptions, type DownloadResult } from '../util/download.js';
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

/** What a user can do when a dataset download fails, appended to each refusal. */
const MANUAL_FIX =
  'Or download it manually, extract it into the dataset folder and pass that folder as --root (without --download).';

/** downloadFile (src/util/download.ts) with the dataset's manual route in every refusal. */
export function downloadFile(
  url: string,
  dest: string,
  opts: Omit<DownloadOptions, 'fix'> = {},
): Promise<DownloadResult> {
  return sharedDownloadFile(url, dest, { ...opts, fix: MANUAL_FIX });
}

interface Manifest {
  [url: string]: { file: string; bytes: number; sha256: string; extracted: boolean; at: string };
}

/**
 * Download and extract every archive of `dataset` into `root`. Archives already extracted (per
 * ROOT/downloads.json) are skipped; each archive is deleted after a verified extraction to save disk.
 */
export async function downloadDataset(
  dataset: 'coco' | 'flickr8k',
  root: string,
  opts: { baseUrl?: string; silent?: boolean; retries?: number; keepArchives?: boolean } = {},
): Promise<void> {
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
      result =
        fs.existsSync(zip) && done
          ? { file: zip, bytes: done.bytes, sha256: done.sha256 }
          : await downloadFile(url, zip, { sha256: archive.sha256, silent: opts.silent, retries: opts.retries });
    } catch (e) {
      if (e instanceof UserError)
        throw new UserError(`${e.message}\nExpected layout after a manual download: ${spec.layout}.`);
      throw e;
    }
    manifest[url] = {
      file: path.relative(root, zip),
      bytes: result.bytes,
      sha256: result.sha256,
      extracted: false,
      at: new Date().toISOString(),
    };
    fs.writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
    await extractZip(zip, path.join(root, archive.into ?? '.'), { stripPrefix: archive.into, silent: opts.silent });
    manifest[url].extracted = true;
    fs.writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
    if (!opts.keepArchives) fs.rmSync(zip);
  }
}
