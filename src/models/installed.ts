/**
 * The models a user can name: the shipped ones (bundle folders in the package's models/ folder) and the ones
 * installed in the cache (`<cache>/models/<name>/`, src/util/cache-dir.ts), each a bundle folder written by
 * `sat export` plus, for a model installed from a URL, its install record:
 *
 *   <cache>/models/
 *     <name>/manifest.json, encoder.onnx, ...   the bundle, every file checked against the manifest's SHA-256
 *     <name>/install.json                       { url, manifestSha256, bytes, installedAt }
 *     .partial-<random>/                        a download in progress (or abandoned): never a model
 *
 * `sat models` lists them and removes cached ones; src/models/source.ts resolves names to them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readManifest } from '../export/bundle-folder.js';
import { MANIFEST_FILE, type BundleManifest, type ModelCard } from '../export/manifest.js';
import { cacheDir } from '../util/cache-dir.js';
import { UserError } from '../util/errors.js';
import { packageRoot } from '../util/package-files.js';
import { DEFAULT_MODEL_NAME } from './default-model.js';

export const INSTALL_RECORD = 'install.json';
/** A model name: letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters. */
export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const isModelName = (text: string) => MODEL_NAME_PATTERN.test(text) && !text.endsWith('.safetensors') && !text.endsWith('.json');

/** Where models can be found; both default to the real places and are options for tests and tools. */
export interface ModelPlaces {
  /** Folder of the shipped models (default: the package's models/ folder). */
  shippedDir?: string;
  /** Folder of the models installed in the cache (default: <cache>/models). */
  cacheModelsDir?: string;
}

export const shippedModelsDir = (places: ModelPlaces = {}) => places.shippedDir ?? path.join(packageRoot(), 'models');
export const cachedModelsDir = (places: ModelPlaces = {}) => places.cacheModelsDir ?? path.join(cacheDir(), 'models');

/** How a URL install is recorded beside the bundle. */
export interface InstallRecord {
  url: string;
  /** SHA-256 (hex) of the manifest.json as downloaded. */
  manifestSha256: string;
  /** Bytes of the whole bundle. */
  bytes: number;
  installedAt: string;
}

export interface InstalledModel {
  name: string;
  origin: 'shipped' | 'cache';
  /** The bundle folder. */
  path: string;
  /** The manifest's modelId; absent when the manifest cannot be read (see `problem`). */
  id?: string;
  /** Bytes of the bundle's files (manifest included). */
  bytes: number;
  /** A URL install's record. */
  install?: InstallRecord;
  card?: ModelCard;
  /** The training run's best validation score, when the manifest has no card scores. */
  best?: BundleManifest['source']['best'];
  /** Why the folder cannot be used (a damaged or foreign manifest); the fix is `sat models remove NAME`. */
  problem?: string;
  isDefault: boolean;
}

function folderBytes(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) if (entry.isFile()) total += fs.statSync(path.join(dir, entry.name)).size;
  return total;
}

export function readInstallRecord(dir: string): InstallRecord | undefined {
  const file = path.join(dir, INSTALL_RECORD);
  if (!fs.existsSync(file)) return undefined;
  try {
    const record = JSON.parse(fs.readFileSync(file, 'utf8')) as InstallRecord;
    return typeof record.url === 'string' && typeof record.manifestSha256 === 'string' ? record : undefined;
  } catch {
    return undefined;
  }
}

function describeModel(name: string, dir: string, origin: InstalledModel['origin']): InstalledModel {
  const model: InstalledModel = {
    name, origin, path: dir, bytes: folderBytes(dir), install: origin === 'cache' ? readInstallRecord(dir) : undefined, isDefault: false,
  };
  try {
    const manifest = readManifest(dir);
    model.id = manifest.modelId;
    model.card = manifest.card;
    model.best = manifest.source?.best ?? null;
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    model.problem = e.message;
  }
  return model;
}

/** The model folders (those holding a manifest.json) directly under `dir`, by name; hidden folders are skipped. */
function modelFolders(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && isModelName(e.name) && fs.existsSync(path.join(dir, e.name, MANIFEST_FILE)))
    .map((e) => e.name).sort();
}

/** Every model a name can pick: the shipped ones first, then the cache's (a cached model never hides a shipped one). */
export function listInstalledModels(places: ModelPlaces = {}): InstalledModel[] {
  const shipped = shippedModelsDir(places);
  const cached = cachedModelsDir(places);
  const models = modelFolders(shipped).map((n) => describeModel(n, path.join(shipped, n), 'shipped'));
  const shippedNames = new Set(models.map((m) => m.name));
  for (const n of modelFolders(cached)) if (!shippedNames.has(n)) models.push(describeModel(n, path.join(cached, n), 'cache'));
  for (const m of models) m.isDefault = m.origin === 'shipped' && m.name === DEFAULT_MODEL_NAME;
  return models;
}

/** The installed model called `name`, or undefined. */
export function findInstalledModel(name: string, places: ModelPlaces = {}): InstalledModel | undefined {
  if (!isModelName(name)) return undefined;
  for (const [dir, origin] of [[shippedModelsDir(places), 'shipped'], [cachedModelsDir(places), 'cache']] as const) {
    const folder = path.join(dir, name);
    if (fs.existsSync(path.join(folder, MANIFEST_FILE))) return describeModel(name, folder, origin);
  }
  return undefined;
}

/** "flickr8k-mobilenet-v2 (shipped, default), mine (cache)", or a sentence saying there are none. */
export function installedModelsLine(places: ModelPlaces = {}): string {
  const models = listInstalledModels(places);
  if (models.length === 0) return 'No models are installed.';
  return `Installed models: ${models.map((m) => `${m.name} (${m.origin}${m.isDefault ? ', default' : ''})`).join(', ')}.`;
}

/**
 * Removes the cached model `name` and returns what it was. The shipped models are part of the package and
 * cannot be removed; an unknown name is refused with the installed ones listed.
 */
export function removeInstalledModel(name: string, places: ModelPlaces = {}): InstalledModel {
  const model = findInstalledModel(name, places);
  if (!model) throw new UserError(`no model named "${name}" is installed. ${installedModelsLine(places)}`);
  if (model.origin === 'shipped') {
    throw new UserError(`"${name}" is the model shipped in the package (${model.path}); it cannot be removed. ` +
      'Only models installed in the cache can be.');
  }
  // Rename first, so that no reader ever sees a half-removed bundle under the model's name.
  const doomed = path.join(path.dirname(model.path), `.removing-${name}-${process.pid}-${Date.now()}`);
  fs.renameSync(model.path, doomed);
  fs.rmSync(doomed, { recursive: true, force: true });
  return model;
}
