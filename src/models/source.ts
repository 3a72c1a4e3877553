/**
 * What a model source names: the one answer for `--model`, `loadCaptioner(source)` and `sat serve`.
 *
 *   nothing            the shipped model (DEFAULT_MODEL_NAME, in the package's models/ folder)
 *   https://.../manifest.json[#sha256=HEX]
 *                      a bundle installed from that URL into the cache, downloaded the first time (src/models/install.ts)
 *   an existing path   a bundle folder (or its manifest.json), a run folder, its checkpoints/ folder, or a
 *                      .safetensors checkpoint (or its .json); a path wins over a model of the same name
 *   a NAME             a shipped model, else one installed in the cache (<cache>/models/NAME)
 *
 * Anything else is refused with the installed models listed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { checkpointWeightsFile } from '../checkpoint/checkpoint.js';
import { checkpointModelId } from '../checkpoint/source.js';
import { readManifest } from '../export/bundle-folder.js';
import { MANIFEST_FILE } from '../export/manifest.js';
import { UserError } from '../util/errors.js';
import { installModelFromUrl, isModelUrl, type InstallOptions } from './install.js';
import { DEFAULT_MODEL_NAME } from './default-model.js';
import { findInstalledModel, installedModelsLine, isModelName, shippedModelsDir, type ModelPlaces } from './installed.js';

export type ModelOrigin = 'shipped' | 'cache' | 'path' | 'url';

/** Where a model source leads, before anything is loaded. */
export interface ModelLocation {
  kind: 'bundle' | 'checkpoint';
  /** The bundle folder, or the checkpoint's weights file (.safetensors). */
  path: string;
  /** The installed model's name (shipped, cache and URL origins). */
  name?: string;
  origin: ModelOrigin;
  /** The manifest URL of a URL origin. */
  url?: string;
}

/** A model source resolved, with the id that names the model everywhere (manifests, `sat caption`, `sat serve`). */
export interface ModelSource extends ModelLocation {
  /** The bundle's modelId, or the checkpoint's "<folder>-<name>-<SHA-256 prefix>" (the same id its export carries). */
  id: string;
}

export type ResolveModelOptions = InstallOptions & ModelPlaces;

/** Resolves `source` (see the file comment) to a model location, installing a URL once; the id is not computed. */
export async function locateModel(source: string | undefined, opts: ResolveModelOptions = {}): Promise<ModelLocation> {
  if (source === undefined || source === '') return shippedDefault(opts);
  if (isModelUrl(source)) {
    const installed = await installModelFromUrl(source, opts);
    return { kind: 'bundle', path: installed.path, name: installed.name, origin: 'url', url: installed.install?.url };
  }
  if (fs.existsSync(source)) return locatePath(source);
  if (isModelName(source)) {
    const installed = findInstalledModel(source, opts);
    if (installed) return { kind: 'bundle', path: installed.path, name: installed.name, origin: installed.origin };
  }
  throw new UserError(`model "${source}" is neither a file or folder nor an installed model. ${installedModelsLine(opts)} ` +
    'Pass one of these names, a bundle folder (sat export), a run folder, its checkpoints/ folder, a .safetensors checkpoint, ' +
    'or the https URL of a bundle\'s manifest.json.');
}

/** Resolves `source` (see the file comment) and identifies the model; a checkpoint's id costs a SHA-256 of its file. */
export async function resolveModelSource(source?: string, opts: ResolveModelOptions = {}): Promise<ModelSource> {
  const location = await locateModel(source, opts);
  const id = location.kind === 'bundle' ? readManifest(location.path).modelId : checkpointModelId(location.path);
  return { ...location, id };
}

function shippedDefault(places: ModelPlaces): ModelLocation {
  const dir = path.join(shippedModelsDir(places), DEFAULT_MODEL_NAME);
  if (!fs.existsSync(path.join(dir, MANIFEST_FILE))) {
    throw new UserError(`the shipped model ${DEFAULT_MODEL_NAME} is missing (no ${path.join(dir, MANIFEST_FILE)}): this installation is ` +
      'incomplete. Reinstall show-attend-tell, or name a model: a bundle folder, a run folder, an installed name or a manifest URL.');
  }
  return { kind: 'bundle', path: dir, name: DEFAULT_MODEL_NAME, origin: 'shipped' };
}

function locatePath(source: string): ModelLocation {
  const isDir = fs.statSync(source).isDirectory();
  if (isDir && fs.existsSync(path.join(source, MANIFEST_FILE))) return { kind: 'bundle', path: path.resolve(source), origin: 'path' };
  if (!isDir && path.basename(source) === MANIFEST_FILE) return { kind: 'bundle', path: path.resolve(path.dirname(source)), origin: 'path' };
  if (isDir && !hasCheckpoint(source)) {
    throw new UserError(`${source} holds neither a bundle (no ${MANIFEST_FILE}) nor a checkpoint (no best.safetensors or latest.safetensors, ` +
      'here or in its checkpoints/ folder). Pass a bundle folder written by `sat export`, or a run folder trained with `sat train --run DIR`.');
  }
  return { kind: 'checkpoint', path: path.resolve(checkpointWeightsFile(source)), origin: 'path' };
}

function hasCheckpoint(dir: string): boolean {
  return [dir, path.join(dir, 'checkpoints')].some((d) => ['best', 'latest'].some((t) => fs.existsSync(path.join(d, `${t}.safetensors`))));
}
