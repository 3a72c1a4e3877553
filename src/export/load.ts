/**
 * `loadCaptioner` in Node: the Captioner API (src/decode/captioner-api.ts) on a run, a checkpoint or a bundle.
 *
 *   backend 'native'  the C++ addon decodes; the encoder runs on onnxruntime-node. Needs a checkpoint.
 *   backend 'onnx'    onnxruntime-node runs the bundle's graphs: a bundle folder is read and verified
 *                     (SHA-256 of every file), a checkpoint is exported in memory first (`dtype`, default fp32).
 *   default           'onnx' for a bundle folder, 'native' for a run or checkpoint.
 *
 * Images: a file path, an http(s) URL (downloaded into the cache, size-limited), encoded bytes
 * (Buffer/Uint8Array: JPEG, PNG, WebP ...) or decoded pixels { data, width, height, channels? } (RGB or RGBA,
 * HWC). All go through the `sat features` path (src/features/image.ts): sharp, resize 'fill' with the linear
 * kernel, then the encoder's scaling and layout.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { createCaptioner, type CaptionBackend, type Captioner, type CaptionerInfo } from '../decode/captioner-api.js';
import { Captioner as NativeCheckpointCaptioner } from '../decode/captioner.js';
import { decodeImages, decodeVocab } from '../decode/index.js';
import type { EncoderOptions } from '../encoders/registry.js';
import { fetchImageUrl, isImageUrl } from '../features/image-url.js';
import { DEFAULT_MAX_PIXELS, ImageLoadError, loadRgb } from '../features/image.js';
import { UserError } from '../util/errors.js';
import { bundleBackend, type Bundle } from './bundle-backend.js';
import { buildBundle } from './bundle.js';
import {
  attentionGrid, BundleError, MANIFEST_FILE, parseManifest, verifyBundleFile, type BundleManifest,
} from './manifest.js';
import type { OrtNamespace } from './onnx-backend.js';
import type { BundleDtype } from './weights.js';

/** Decoded pixels: HWC, 3 (RGB) or 4 (RGBA, alpha dropped) channels. */
export interface RgbImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels?: 3 | 4;
}

/** An image in Node: a file path or http(s) URL, encoded bytes, or decoded pixels. */
export type NodeImageInput = string | Uint8Array | RgbImage;

export interface LoadCaptionerOptions {
  backend?: 'native' | 'onnx';
  /** Encoder flags a checkpoint cannot supply itself (weights folder, user .onnx flags); not for bundles. */
  encoder?: EncoderOptions;
  /** Checkpoint with backend 'onnx': the weight format of the in-memory export (default fp32). */
  dtype?: BundleDtype;
  /** onnxruntime intra-op threads (default 2). */
  threads?: number;
  /** Size limit of images downloaded from URLs (default 20 MiB). */
  maxImageBytes?: number;
  /** Refuse images with more pixels than this (default 100 megapixels). */
  maxPixels?: number;
}

export const isBundleFolder = (source: string) => fs.existsSync(path.join(source, MANIFEST_FILE));

/** Loads a captioner; see the file comment for sources and backends. */
export async function loadCaptioner(source: string, opts: LoadCaptionerOptions = {}): Promise<Captioner<NodeImageInput>> {
  if (!fs.existsSync(source)) throw new UserError(`${source}: no such file or folder. Pass a run folder, a checkpoint or a bundle folder (sat export).`);
  const bundle = isBundleFolder(source);
  const backend = opts.backend ?? (bundle ? 'onnx' : 'native');
  if (backend !== 'native' && backend !== 'onnx') throw new UserError(`backend "${backend}" is not known; use native or onnx.`);
  if (bundle && backend === 'native') {
    throw new UserError(`${source} is an exported bundle: the native backend needs the checkpoint it came from ` +
      `(${readManifest(source).source.checkpoint}). Use backend 'onnx' for the bundle, or pass the run folder.`);
  }
  if (bundle && opts.encoder) throw new UserError(`${source} is an exported bundle with its own encoder.onnx: encoder options do not apply.`);
  const fail = (m: string) => new UserError(m);
  if (backend === 'native') return createCaptioner(await nativeBackend(source, opts), fail);
  if (bundle) return createCaptioner(await onnxBackend(await readBundleFolder(source), path.resolve(source), opts), fail);
  const exported = await buildBundle(source, { dtype: opts.dtype, encoder: opts.encoder });
  return createCaptioner(await onnxBackend(exported, source, opts), fail);
}

function readManifest(dir: string): BundleManifest {
  const file = path.join(dir, MANIFEST_FILE);
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

/** onnxruntime-node session options: CPU, full graph optimisation (folds the fp16/int8 weight casts), no spinning. */
function sessionOptions(threads = 2): object {
  return {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

async function onnxBackend(bundle: Bundle, source: string, opts: LoadCaptionerOptions): Promise<CaptionBackend<NodeImageInput>> {
  try {
    return await bundleBackend(ort as unknown as OrtNamespace, bundle, {
      source, backend: 'onnx', sessionOptions: sessionOptions(opts.threads),
      preprocess: (image: NodeImageInput) => preprocessImage(image, bundle.manifest.encoder.inputSize, opts),
    });
  } catch (e) {
    throw e instanceof Error && !(e instanceof UserError) && /onnxruntime|has no tensor/.test(e.message) ? new UserError(e.message) : e;
  }
}

async function nativeBackend(source: string, opts: LoadCaptionerOptions): Promise<CaptionBackend<NodeImageInput>> {
  const c = await NativeCheckpointCaptioner.load(source, { encoder: opts.encoder, threads: opts.threads });
  const { spec } = c;
  const vocab = decodeVocab(c.vocab);
  const info: CaptionerInfo = {
    modelId: `${path.basename(path.dirname(path.resolve(c.checkpointFile)))}-${path.basename(c.checkpointFile, '.safetensors')}`,
    backend: 'native', source: c.checkpointFile, encoderId: spec.id, inputSize: spec.inputSize, scaling: spec.scaling,
    inputLayout: spec.inputLayout, locations: spec.locations, grid: attentionGrid(spec.locations), vocabSize: c.vocab.size,
    maxLength: c.defaultMaxLength, dtype: 'fp32',
  };
  return {
    info, vocab,
    preprocess: (image) => preprocessImage(image, spec.inputSize, opts),
    encode: (rgb) => c.features([...rgb]),
    decode: async (features, n, o) => decodeImages(c.model, features, n, vocab, o),
    dispose: () => c.dispose(),
  };
}

/** Any NodeImageInput -> RGB uint8 HWC, size x size, exactly as `sat features` loads files. */
export async function preprocessImage(image: NodeImageInput, size: number, opts: { maxImageBytes?: number; maxPixels?: number } = {}): Promise<Uint8Array> {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  try {
    if (typeof image === 'string') {
      if (isImageUrl(image)) return await loadRgb(await fetchImageUrl(image, { maxBytes: opts.maxImageBytes }), size, maxPixels, image);
      if (!fs.existsSync(image)) throw new UserError(`image ${image} does not exist. Check the path.`);
      return await loadRgb(image, size, maxPixels);
    }
    if (image instanceof Uint8Array) return await loadRgb(image, size, maxPixels);
    return await resizePixels(image, size);
  } catch (e) {
    if (e instanceof ImageLoadError) throw new UserError(e.message);
    throw e;
  }
}

async function resizePixels(image: RgbImage, size: number): Promise<Uint8Array> {
  const { data, width, height } = image ?? {};
  const channels = image?.channels ?? (data && width && height ? data.length / (width * height) : NaN);
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray) || !Number.isInteger(width) || !Number.isInteger(height) ||
      (channels !== 3 && channels !== 4) || data.length !== width * height * channels) {
    throw new UserError('an image must be a file path, an http(s) URL, encoded bytes (Buffer/Uint8Array) or decoded pixels ' +
      '{ data: Uint8Array, width, height, channels: 3 | 4 } with data.length = width * height * channels.');
  }
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (channels === 3 && width === size && height === size) return bytes;
  const out = await sharp(bytes, { raw: { width, height, channels } }).removeAlpha()
    .resize(size, size, { fit: 'fill', kernel: 'linear' }).raw().toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
