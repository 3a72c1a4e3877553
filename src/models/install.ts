/**
 * Installing a bundle from the URL of its manifest.json into the cache (`--model https://host/m/manifest.json`,
 * `sat models install URL`), once: a URL already installed is used without the network.
 *
 *   1. manifest.json is downloaded (at most `maxManifestBytes`), checked against the pinned SHA-256 when one is
 *      given (`URL#sha256=HEX` or `manifestSha256`), and read as a bundle manifest (a newer format is refused
 *      with the upgrade to make);
 *   2. every file it lists is downloaded beside it (the bundle at most `maxBytes` in all) and must have the size
 *      and SHA-256 the manifest lists;
 *   3. only then is the temporary folder renamed to `<cache>/models/<name>/`.
 *
 * Downloads go to `<cache>/models/.partial-<random>/`, removed on any failure, so a model folder under its name is
 * always complete and verified. Plain http is refused unless the host is this machine or the manifest's SHA-256
 * is pinned (the manifest's hashes protect the other files, the pin protects the manifest).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BundleError, MANIFEST_FILE, parseManifest, type BundleManifest } from '../export/manifest.js';
import { downloadFile, type DownloadOptions } from '../util/download.js';
import { UserError } from '../util/errors.js';
import {
  cachedModelsDir, findInstalledModel, INSTALL_RECORD, isModelName, listInstalledModels, readInstallRecord,
  type InstalledModel, type InstallRecord, type ModelPlaces,
} from './installed.js';

export interface InstallOptions extends ModelPlaces {
  /** SHA-256 (hex) that manifest.json must have; also given as `URL#sha256=HEX`. */
  manifestSha256?: string;
  /** Install under this name (default: the card's name, else the URL's folder, else the model id). */
  name?: string;
  /** Largest bundle accepted, all files together, in bytes (default 1 GiB). */
  maxBytes?: number;
  /** Largest manifest.json accepted, in bytes (default 16 MiB). */
  maxManifestBytes?: number;
  /** A download attempt ends after this many milliseconds without data (default 60 000). */
  timeoutMs?: number;
  /** Most redirects followed per file (default 5). */
  maxRedirects?: number;
  /** Automatic resume attempts per file after a dropped connection (default 3). */
  retries?: number;
  silent?: boolean;
}

export const DEFAULT_MAX_BUNDLE_BYTES = 1024 ** 3;
export const DEFAULT_MAX_MANIFEST_BYTES = 16 * 1024 ** 2;
const PARTIAL_PREFIX = '.partial-';
/** Abandoned downloads (a killed process) older than this are removed by the next install. */
const STALE_PARTIAL_MS = 24 * 3600 * 1000;
const HEX64 = /^[0-9a-f]{64}$/i;
/** A file of a bundle: a plain name beside manifest.json (no folders, so no path outside the bundle). */
const BUNDLE_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export const isModelUrl = (source: string) => /^https?:\/\//i.test(source);

/** A model URL split into the manifest URL and the pinned SHA-256 of `URL#sha256=HEX`; a folder URL gets manifest.json. */
export function parseModelUrl(source: string, pinned?: string): { url: string; manifestSha256?: string } {
  let parsed: URL;
  try {
    parsed = new URL(source);
  } catch {
    throw new UserError(`model URL ${source} is not a valid URL. Give the URL of a bundle's manifest.json, e.g. https://host/models/m/manifest.json.`);
  }
  const fromFragment = /^sha256=(.*)$/i.exec(parsed.hash.slice(1))?.[1];
  if (parsed.hash && fromFragment === undefined) {
    throw new UserError(`model URL ${source}: the only fragment understood is #sha256=HEX (the manifest's SHA-256), not ${parsed.hash}.`);
  }
  for (const [what, hex] of [['#sha256=', fromFragment], ['the pinned SHA-256', pinned]] as const) {
    if (hex !== undefined && !HEX64.test(hex)) throw new UserError(`model URL ${source}: ${what} ${hex} is not 64 hex digits (a SHA-256).`);
  }
  if (fromFragment && pinned && fromFragment.toLowerCase() !== pinned.toLowerCase()) {
    throw new UserError(`model URL ${source}: #sha256=${fromFragment} and the pinned SHA-256 ${pinned} differ; give one.`);
  }
  parsed.hash = '';
  if (parsed.pathname.endsWith('/')) parsed.pathname += MANIFEST_FILE;
  const sha = (fromFragment ?? pinned)?.toLowerCase();
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(parsed.hostname);
  if (parsed.protocol === 'http:' && !loopback && !sha) {
    throw new UserError(`model URL ${parsed.href} is plain http, so its manifest could be altered on the way: use https, or pin the ` +
      `manifest's SHA-256 (${parsed.href}#sha256=HEX, e.g. from \`sha256sum manifest.json\`).`);
  }
  return { url: parsed.href, manifestSha256: sha };
}

/** The installed model that came from `url` (with the pinned manifest, when one is given), or undefined. */
export function findUrlInstall(url: string, manifestSha256: string | undefined, places: ModelPlaces = {}): InstalledModel | undefined {
  return listInstalledModels(places).find((m) => m.origin === 'cache' && !m.problem && m.install?.url === url &&
    (!manifestSha256 || m.install.manifestSha256 === manifestSha256));
}

/**
 * The model at `source` (a manifest URL, optionally `#sha256=HEX`), installed into the cache unless it already is;
 * see the file comment for the steps and refusals.
 */
export async function installModelFromUrl(source: string, opts: InstallOptions = {}): Promise<InstalledModel> {
  const { url, manifestSha256 } = parseModelUrl(source, opts.manifestSha256);
  const done = findUrlInstall(url, manifestSha256, opts);
  if (done && (!opts.name || opts.name === done.name)) return done;
  const root = cachedModelsDir(opts);
  fs.mkdirSync(root, { recursive: true });
  removeStalePartials(root);
  const partial = fs.mkdtempSync(path.join(root, PARTIAL_PREFIX));
  try {
    const { manifest, record } = await downloadBundle(url, manifestSha256, partial, opts);
    const name = installName(url, manifest, record, opts);
    return placeInstall(partial, path.join(root, name), name, opts);
  } finally {
    fs.rmSync(partial, { recursive: true, force: true });
  }
}

function downloadOptions(opts: InstallOptions, fix: string): DownloadOptions {
  return { keepPartial: false, retries: opts.retries, timeoutMs: opts.timeoutMs, maxRedirects: opts.maxRedirects, silent: opts.silent ?? true, fix };
}

/** Downloads and verifies the bundle at `url` into `dir`; returns its manifest and install record. */
async function downloadBundle(url: string, manifestSha256: string | undefined, dir: string, opts: InstallOptions) {
  const fix = 'Nothing was installed; check the URL and run the command again.';
  const maxManifestBytes = opts.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES;
  const got = await downloadFile(url, path.join(dir, MANIFEST_FILE), { ...downloadOptions(opts, fix), maxBytes: maxManifestBytes });
  if (manifestSha256 && got.sha256 !== manifestSha256) {
    throw new UserError(`${url} has SHA-256 ${got.sha256}, but ${manifestSha256} was pinned: the manifest is not the one you pinned ` +
      '(changed on the server, or altered on the way). Nothing was installed. Check the pinned hash with whoever publishes the model.');
  }
  const manifest = parseDownloadedManifest(url, path.join(dir, MANIFEST_FILE));
  const names = Object.keys(manifest.files);
  const total = names.reduce((sum, n) => sum + manifest.files[n].bytes, got.bytes);
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BUNDLE_BYTES;
  if (total > maxBytes) {
    throw new UserError(`${url} lists a bundle of ${total} bytes, more than the limit of ${maxBytes}: refused. Raise the limit (maxBytes) if you trust it.`);
  }
  for (const name of names) {
    const want = manifest.files[name];
    const fileUrl = new URL(name, url).href;
    const file = path.join(dir, name);
    // A server may not send more than the manifest lists; a shorter file is caught by the size check below.
    const result = await downloadFile(fileUrl, file, { ...downloadOptions(opts, fix), maxBytes: want.bytes });
    if (result.bytes !== want.bytes) {
      throw new UserError(`${fileUrl} has ${result.bytes} bytes, but the manifest lists ${want.bytes}: the file on the server is truncated ` +
        `or from another export. ${fix}`);
    }
    if (result.sha256 !== want.sha256) {
      throw new UserError(`${fileUrl} has SHA-256 ${result.sha256}, but the manifest lists ${want.sha256}: the file on the server is damaged ` +
        `or from another export. ${fix}`);
    }
  }
  const record: InstallRecord = { url, manifestSha256: got.sha256, bytes: total, installedAt: new Date().toISOString() };
  fs.writeFileSync(path.join(dir, INSTALL_RECORD), JSON.stringify(record, null, 2) + '\n');
  return { manifest, record };
}

/** The manifest of a download, or a refusal saying why the URL is not a usable bundle. */
function parseDownloadedManifest(url: string, file: string): BundleManifest {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    throw new UserError(`${url} is not JSON, so it is not a bundle's manifest.json. Give the URL of the manifest.json of a bundle written by \`sat export\`.`);
  }
  let manifest: BundleManifest;
  try {
    manifest = parseManifest(json, url.slice(0, url.lastIndexOf('/')));
  } catch (e) {
    throw e instanceof BundleError ? new UserError(`${e.message} Nothing was installed.`) : e;
  }
  for (const name of Object.keys(manifest.files)) {
    const entry = manifest.files[name];
    if (!BUNDLE_FILE_NAME.test(name) || name === MANIFEST_FILE || name === INSTALL_RECORD) {
      throw new UserError(`${url} lists a file named ${JSON.stringify(name)}: bundle files are plain names beside the manifest. Nothing was installed.`);
    }
    if (!HEX64.test(entry.sha256) || !Number.isSafeInteger(entry.bytes) || entry.bytes < 0) {
      throw new UserError(`${url} lists no valid SHA-256 and size for ${name}. Nothing was installed.`);
    }
  }
  return manifest;
}

/** The name a URL install gets: as asked, else the card's, the URL's folder or the model id; made unique if taken. */
function installName(url: string, manifest: BundleManifest, record: InstallRecord, opts: InstallOptions): string {
  if (opts.name !== undefined) {
    if (!isModelName(opts.name)) throw new UserError(`model name ${JSON.stringify(opts.name)} is not valid: use letters, digits, '.', '_' and '-' (at most 64).`);
    const taken = findInstalledModel(opts.name, opts);
    if (taken && (taken.origin === 'shipped' || taken.install?.url !== url)) {
      throw new UserError(`a model named "${opts.name}" is already installed (${taken.origin}). Choose another name, or \`sat models remove ${opts.name}\` first.`);
    }
    return opts.name;
  }
  const folder = decodeURIComponent(new URL('.', url).pathname.split('/').filter(Boolean).pop() ?? '');
  const candidates = [manifest.card?.name, folder, manifest.modelId].filter((n): n is string => typeof n === 'string' && isModelName(n));
  const base = candidates[0] ?? `model-${record.manifestSha256.slice(0, 12)}`;
  const free = (name: string) => {
    const taken = findInstalledModel(name, opts);
    return !taken || (taken.origin === 'cache' && taken.install?.url === url);
  };
  if (free(base)) return base;
  const unique = `${base.slice(0, 50)}-${record.manifestSha256.slice(0, 8)}`;
  if (free(unique)) return unique;
  throw new UserError(`models named "${base}" and "${unique}" are already installed. Give the install a name of its own.`);
}

/** Renames the verified download into place; a previous install of the same URL there is replaced. */
function placeInstall(partial: string, target: string, name: string, places: ModelPlaces): InstalledModel {
  if (fs.existsSync(target)) {
    const previous = readInstallRecord(target);
    const same = previous && previous.manifestSha256 === readInstallRecord(partial)!.manifestSha256;
    if (!same) {
      // The same URL with another manifest (a pinned update): move the old one aside, then put the new one in.
      const old = path.join(path.dirname(target), `.removing-${name}-${crypto.randomBytes(4).toString('hex')}`);
      fs.renameSync(target, old);
      fs.rmSync(old, { recursive: true, force: true });
    }
  }
  if (!fs.existsSync(target)) {
    try {
      fs.renameSync(partial, target);
    } catch (e) {
      // Another process installed the same model at the same moment: use theirs.
      if (!['ENOTEMPTY', 'EEXIST'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
    }
  }
  const model = findInstalledModel(name, places);
  if (!model || model.origin !== 'cache') throw new Error(`installed ${name} but cannot find it at ${target}`);
  return model;
}

function removeStalePartials(root: string): void {
  const now = Date.now();
  for (const entry of fs.readdirSync(root)) {
    if (!entry.startsWith(PARTIAL_PREFIX) && !entry.startsWith('.removing-')) continue;
    const dir = path.join(root, entry);
    try {
      if (now - fs.statSync(dir).mtimeMs > STALE_PARTIAL_MS) fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // another process removed it first
    }
  }
}
