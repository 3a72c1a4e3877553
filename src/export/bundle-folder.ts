/**
 * Bundle folders on disk (`sat export --out DIR`): whether a folder is one, its manifest (checked, with the file
 * named and the fix in every refusal), and the whole bundle read and verified against the manifest's SHA-256s.
 * Every reader of a bundle folder in Node goes through here (loadCaptioner, sat serve, sat bench browser).
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import type { Bundle } from './bundle-backend.js';
import { BundleError, MANIFEST_FILE, parseManifest, verifyBundleFile, type BundleManifest } from './manifest.js';

export const isBundleFolder = (source: string) => fs.existsSync(path.join(source, MANIFEST_FILE));

/** The checked manifest.json of the bundle folder `dir`; a UserError naming the file and the fix otherwise. */
export function readManifest(dir: string): BundleManifest {
  const file = path.join(dir, MANIFEST_FILE);
  if (!fs.existsSync(file)) throw new UserError(`${dir}: no ${MANIFEST_FILE} there, so it is not a bundle folder. Pass a folder written by \`sat export\`.`);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file} is not valid JSON (${(e as Error).message}): the bundle is damaged. Export it again with \`sat export\`.`);
  }
  try {
    return parseManifest(json, dir);
  } catch (e) {
    throw e instanceof BundleError ? new UserError(e.message) : e;
  }
}

/** Reads a bundle folder and checks every file against the manifest's SHA-256. */
export async function readBundleFolder(dir: string): Promise<Bundle> {
  const manifest = readManifest(dir);
  const files = new Map<string, Uint8Array>();
  for (const name of Object.keys(manifest.files)) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) throw new UserError(`${file} is missing from the bundle. Copy the whole bundle folder, or export it again with \`sat export\`.`);
    const bytes = new Uint8Array(fs.readFileSync(file));
    try {
      await verifyBundleFile(manifest, name, bytes, dir);
    } catch (e) {
      throw e instanceof BundleError ? new UserError(e.message) : e;
    }
    files.set(name, bytes);
  }
  return { manifest, files };
}
