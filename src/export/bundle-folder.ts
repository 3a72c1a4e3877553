/**
 * Bundle folders on disk (`sat export --out DIR`): whether a folder is one, its manifest (checked, with the file
 * named and the fix in every refusal), and the whole bundle read and verified against the manifest's SHA-256s.
 * Every reader of a bundle folder in Node goes through here (loadCaptioner, sat serve, sat bench browser).
 *
 * Only regular files are read (no symbolic links, devices or FIFOs), only names the manifest may use
 * (plain names inside the folder: see isBundleFileName), and a file is read only when its size is the one the
 * manifest gives, so a damaged or hostile bundle cannot make the reader follow a link or read /dev/zero.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import type { Bundle } from './bundle-backend.js';
import {
  BundleError,
  MANIFEST_FILE,
  parseManifest,
  verifyBundleFile,
  type BundleManifest,
  type ManifestLimits,
} from './manifest.js';

export const isBundleFolder = (source: string) => fs.existsSync(path.join(source, MANIFEST_FILE));

export interface ReadManifestOptions extends ManifestLimits {
  /** The manifest's SHA-256 (hex) as published: refuse any other manifest (and so any other bundle). */
  manifestSha256?: string;
  /** Largest manifest.json read, in bytes (default 16 MiB). */
  maxManifestBytes?: number;
}

const MAX_MANIFEST_BYTES = 16 * 2 ** 20;

/**
 * The bytes of `file`, which must be a regular file (a symbolic link, device, FIFO or folder is refused) of at
 * most `maxBytes` bytes, or of exactly `exactBytes` when given; checked on the open descriptor before reading.
 */
export function readRegularFile(file: string, limit: { maxBytes?: number; exactBytes?: number }, fix: string): Buffer {
  let fd: number;
  try {
    // O_NOFOLLOW: a symbolic link fails to open (ELOOP); O_NONBLOCK: opening a FIFO does not wait for a writer.
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP')
      throw new UserError(
        `${file} is a symbolic link; bundle files must be regular files in the bundle folder. ${fix}`,
      );
    if (code === 'ENOENT') throw new UserError(`${file} is missing from the bundle. ${fix}`);
    throw new UserError(`cannot open ${file} (${(e as Error).message}). ${fix}`);
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile())
      throw new UserError(
        `${file} is not a regular file (a folder, device or FIFO); bundle files must be regular files. ${fix}`,
      );
    if (limit.exactBytes !== undefined && stat.size !== limit.exactBytes) {
      throw new UserError(
        `${path.dirname(file)}/${path.basename(file)} does not match its manifest (${stat.size} bytes instead of ${limit.exactBytes}): ` +
          `the file is damaged, truncated, or from another export. ${fix}`,
      );
    }
    if (limit.maxBytes !== undefined && stat.size > limit.maxBytes)
      throw new UserError(`${file} is ${stat.size} bytes, more than the limit of ${limit.maxBytes}. ${fix}`);
    const bytes = Buffer.alloc(stat.size);
    let done = 0;
    while (done < bytes.length) {
      const n = fs.readSync(fd, bytes, done, bytes.length - done, done);
      if (n === 0) throw new UserError(`${file} became shorter while it was read. ${fix}`);
      done += n;
    }
    return bytes;
  } finally {
    fs.closeSync(fd);
  }
}

/** The checked manifest.json of the bundle folder `dir`; a UserError naming the file and the fix otherwise. */
export function readManifest(dir: string, opts: ReadManifestOptions = {}): BundleManifest {
  const file = path.join(dir, MANIFEST_FILE);
  if (!fs.existsSync(file))
    throw new UserError(
      `${dir}: no ${MANIFEST_FILE} there, so it is not a bundle folder. Pass a folder written by \`sat export\`.`,
    );
  const fix = 'Export it again with `sat export`.';
  const bytes = readRegularFile(file, { maxBytes: opts.maxManifestBytes ?? MAX_MANIFEST_BYTES }, fix);
  if (opts.manifestSha256 !== undefined) {
    const want = opts.manifestSha256.trim().toLowerCase();
    const got = crypto.createHash('sha256').update(bytes).digest('hex');
    if (got !== want) {
      throw new UserError(
        `${file} has SHA-256 ${got}, not the pinned ${want}: the bundle was changed or replaced since the hash was published. ` +
          'Check where the bundle comes from, and pin the new hash only if you trust the change.',
      );
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new UserError(`${file} is not valid JSON (${(e as Error).message}): the bundle is damaged. ${fix}`);
  }
  try {
    return parseManifest(json, dir, opts);
  } catch (e) {
    throw e instanceof BundleError ? new UserError(e.message) : e;
  }
}

/** Reads a bundle folder and checks every file against the manifest's size and SHA-256. */
export async function readBundleFolder(dir: string, opts: ReadManifestOptions = {}): Promise<Bundle> {
  const manifest = readManifest(dir, opts);
  const root = path.resolve(dir);
  const fix = 'Copy the whole bundle folder, or export it again with `sat export`.';
  const files = new Map<string, Uint8Array>();
  for (const name of Object.keys(manifest.files)) {
    const file = path.join(dir, name);
    if (path.dirname(path.resolve(root, name)) !== root)
      throw new UserError(
        `${dir}/${MANIFEST_FILE} names ${JSON.stringify(name)}, which is not inside the bundle folder. ${fix}`,
      );
    const bytes = new Uint8Array(readRegularFile(file, { exactBytes: manifest.files[name].bytes }, fix));
    try {
      await verifyBundleFile(manifest, name, bytes, dir);
    } catch (e) {
      throw e instanceof BundleError ? new UserError(e.message) : e;
    }
    files.set(name, bytes);
  }
  return { manifest, files };
}
