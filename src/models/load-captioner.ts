/**
 * `loadCaptioner` in Node: the Captioner API (src/decode/captioner-api.ts) on any model source
 * (src/models/source.ts: nothing for the shipped model, a name, a path, or a bundle's manifest URL).
 *
 *   const captioner = await loadCaptioner();                      // the shipped model
 *   const { caption } = await captioner.caption('photo.jpg', { beam: 3 });
 *   console.log(caption, captioner.info.modelId);
 *
 *   backend 'onnx'    onnxruntime-node runs the bundle's graphs: a bundle folder is read and verified
 *                     (SHA-256 of every file), a checkpoint is exported in memory first (`dtype`, default fp32).
 *   backend 'native'  the C++ addon decodes; the encoder runs on onnxruntime-node. Needs a checkpoint.
 *   default           DEFAULT_CAPTIONER_BACKEND ('onnx') for every source, here and in every front end.
 *
 * Images: a file path, an http(s) URL (downloaded into the cache, size-limited), encoded bytes
 * (Buffer/Uint8Array: JPEG, PNG, WebP ...) or decoded pixels { data, width, height, channels? } (RGB or RGBA,
 * HWC). All go through the `sat features` path (src/features/image.ts): sharp, resize 'fill' with the linear
 * kernel, then the encoder's scaling and layout.
 *
 * Ensembles: a list of run folders or checkpoints (decoded as one model, src/decode/ensemble.ts), or one
 * ensemble bundle folder (`sat export` with several --model).
 */
import fs from 'node:fs';
import sharp from 'sharp';
import { createCaptioner, type Captioner } from '../decode/captioner-api.js';
import type { EncoderOptions } from '../encoders/registry.js';
import { fetchImageUrl, isImageUrl } from '../features/image-url.js';
import { DEFAULT_MAX_PIXELS, ImageLoadError, loadRgb } from '../features/image.js';
import { asPixelBuffer, PIXELS_SHAPE, type RgbImage } from '../features/resize.js';
import { nodeOrt, nodeSessionOptions } from '../features/node-onnxruntime.js';
import { UserError } from '../util/errors.js';
import { bundleBackend, type Bundle } from '../export/bundle-backend.js';
import { readBundleFolder, readManifest } from '../export/bundle-folder.js';
import type { BundleDtype } from '../export/weights.js';
import type { InstallOptions } from './install.js';
import { locateModel, type ModelLocation } from './source.js';

export type { RgbImage } from '../features/resize.js';

/** An image in Node: a file path or http(s) URL, encoded bytes, or decoded pixels. */
export type NodeImageInput = string | Uint8Array | RgbImage;

export const CAPTIONER_BACKENDS = ['native', 'onnx'] as const;
export type CaptionerBackend = (typeof CAPTIONER_BACKENDS)[number];

/**
 * The backend of every front end that is not told one (loadCaptioner, sat caption, sat serve, sat bench serve), for
 * every model source: a bundle runs only on onnx, and a checkpoint on onnx is exported in memory first (about 0.1
 * CPU-s more at load than native for the Flickr8k MobileNetV2 model) and then captions as the native backend does
 * (docs/design.md) at 20-33% fewer CPU-ms per caption (`sat bench serve --backend onnx|native`). 'native' stays
 * the choice for a checkpoint when no export should be made.
 */
export const DEFAULT_CAPTIONER_BACKEND: CaptionerBackend = 'onnx';

/** `value` as a backend name, refused with the choices otherwise; `what` names the flag or option in the refusal. */
export function checkBackend(value: unknown, what = 'backend'): CaptionerBackend {
  if (!CAPTIONER_BACKENDS.includes(value as CaptionerBackend)) {
    throw new UserError(`${what} ${JSON.stringify(value)} is not known: use ${CAPTIONER_BACKENDS.join(' or ')}.`);
  }
  return value as CaptionerBackend;
}

export interface LoadCaptionerOptions {
  /** Default DEFAULT_CAPTIONER_BACKEND ('onnx'); 'native' needs a checkpoint. */
  backend?: CaptionerBackend;
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
  /**
   * Load image URLs whose host is or resolves to a loopback, private, link-local or other special-use address
   * (default false: refused, also on redirects; see src/features/image-url.ts). `sat caption` allows them.
   */
  allowPrivateNetwork?: boolean;
  /**
   * Read image strings that are not http(s) URLs as file paths (default true, as sharp and fs do). An app that
   * passes strings from its users sets false: then only URLs, bytes and pixels are accepted.
   */
  allowFiles?: boolean;
  /** A manifest URL source: the pinned SHA-256 of its manifest.json, download limits (src/models/install.ts). */
  install?: InstallOptions;
}

/** The encoder options given, or undefined when none is set (commands pass every flag, most of them undefined). */
export function givenEncoderOptions(e: EncoderOptions | undefined): EncoderOptions | undefined {
  return e && Object.values(e).some((v) => v !== undefined) ? e : undefined;
}

/**
 * Loads a captioner on `source` (default: the shipped model; see src/models/source.ts for names, paths and URLs).
 * Several sources make an ensemble (loadEnsembleCaptioner). Its `info` says which model it is: `modelId`, and `modelName` for an installed model.
 */
export async function loadCaptioner(source?: string | readonly string[], opts: LoadCaptionerOptions = {}): Promise<Captioner<NodeImageInput>> {
  if (source !== undefined && typeof source !== 'string') return loadEnsembleCaptioner(source, opts);
  return loadLocatedCaptioner(await locateModel(source, opts.install), opts);
}

/** Loads a captioner on a model already located (locateModel). */
export async function loadLocatedCaptioner(model: ModelLocation, opts: LoadCaptionerOptions = {}): Promise<Captioner<NodeImageInput>> {
  const bundle = model.kind === 'bundle';
  const backend = checkBackend(opts.backend ?? DEFAULT_CAPTIONER_BACKEND);
  const encoder = givenEncoderOptions(opts.encoder);
  if (bundle && backend === 'native') {
    throw new UserError(`${model.path} is an exported bundle: the native backend needs the checkpoint it came from ` +
      `(${readManifest(model.path).source.checkpoint}). Use backend 'onnx' for the bundle, or pass the run folder.`);
  }
  if (bundle && encoder) throw new UserError(`${model.path} is an exported bundle with its own encoder.onnx: encoder options do not apply.`);
  let captioner: Captioner<NodeImageInput>;
  if (backend === 'native') {
    // Loaded on use: a bundle needs neither the native addon nor the encoder builders (faster `sat caption` start).
    const { nativeCaptionBackend } = await import('../decode/native-backend.js');
    const native = await nativeCaptionBackend(model.path, {
      encoder, threads: opts.threads, preprocess: (image: NodeImageInput, size) => preprocessImage(image, size, opts),
    });
    captioner = createCaptioner(native, (m) => new UserError(m));
  } else if (bundle) {
    captioner = await loadBundleCaptioner(await readBundleFolder(model.path), model.path, opts);
  } else {
    const { buildBundle } = await import('../export/bundle.js');
    captioner = await loadBundleCaptioner(await buildBundle(model.path, { dtype: opts.dtype, encoder }), model.path, opts);
  }
  if (model.name !== undefined) captioner.info.modelName = model.name;
  return captioner;
}

/**
 * An ensemble of checkpoints (src/decode/ensemble.ts: the same vocabulary and encoder, refused otherwise with what
 * differs): the native backend decodes them with the addon, 'onnx' exports them in memory as one ensemble bundle.
 * An exported ensemble bundle is one folder: pass it alone. A list of one source is that source.
 */
async function loadEnsembleCaptioner(sources: readonly string[], opts: LoadCaptionerOptions): Promise<Captioner<NodeImageInput>> {
  if (sources.length === 1) return loadCaptioner(sources[0], opts);
  if (sources.length === 0) throw new UserError('no model given: pass a run folder, checkpoint or bundle folder (several checkpoints for an ensemble).');
  const members: string[] = [];
  for (const source of sources) {
    const model = await locateModel(source, opts.install);
    if (model.kind === 'bundle') {
      throw new UserError(`${source} is an exported bundle: an ensemble is made from checkpoints (runs). Pass the run folders, ` +
        'or export them together with `sat export --model RUN1 --model RUN2 --out DIR` and load that one bundle.');
    }
    members.push(model.path);
  }
  const backend = checkBackend(opts.backend ?? DEFAULT_CAPTIONER_BACKEND);
  const encoder = givenEncoderOptions(opts.encoder);
  if (backend === 'native') {
    const { nativeCaptionBackend } = await import('../decode/native-backend.js');
    const native = await nativeCaptionBackend(members, {
      encoder, threads: opts.threads, preprocess: (image: NodeImageInput, size) => preprocessImage(image, size, opts),
    });
    return createCaptioner(native, (m) => new UserError(m));
  }
  const { buildBundle } = await import('../export/bundle.js');
  return loadBundleCaptioner(await buildBundle(members, { dtype: opts.dtype, encoder }), members.join(' + '), opts);
}

/**
 * A captioner on onnxruntime-node over a bundle already in memory (read from a folder, exported from a
 * checkpoint, or shared between threads as `sat serve` shares one export); `source` names where it came from.
 */
export async function loadBundleCaptioner(bundle: Bundle, source: string, opts: Omit<LoadCaptionerOptions, 'backend' | 'encoder' | 'dtype'> = {}): Promise<Captioner<NodeImageInput>> {
  const backend = await bundleBackend(nodeOrt, bundle, {
    source, backend: 'onnx', sessionOptions: nodeSessionOptions({ threads: opts.threads }),
    preprocess: (image: NodeImageInput) => preprocessImage(image, bundle.manifest.encoder.inputSize, opts),
  });
  return createCaptioner(backend, (m) => new UserError(m));
}

/** How preprocessImage treats strings and sizes (the image options of LoadCaptionerOptions). */
export type ImageLoadOptions = Pick<LoadCaptionerOptions, 'maxImageBytes' | 'maxPixels' | 'allowPrivateNetwork' | 'allowFiles'>;

/** Any NodeImageInput -> RGB uint8 HWC, size x size, exactly as `sat features` loads files. */
export async function preprocessImage(image: NodeImageInput, size: number, opts: ImageLoadOptions = {}): Promise<Uint8Array> {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  try {
    if (typeof image === 'string') {
      if (isImageUrl(image)) {
        const file = await fetchImageUrl(image, { maxBytes: opts.maxImageBytes, allowPrivateNetwork: opts.allowPrivateNetwork });
        return await loadRgb(file, size, maxPixels, image);
      }
      if (opts.allowFiles === false) {
        throw new UserError(`image ${JSON.stringify(image.slice(0, 200))} is not an http(s) URL, and this captioner reads no files ` +
          '(allowFiles: false). Pass a URL, encoded bytes or decoded pixels.');
      }
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
  const pixels = asPixelBuffer(image);
  if (!pixels) {
    throw new UserError(`an image must be a file path, an http(s) URL, encoded bytes (Buffer/Uint8Array) or decoded pixels ${PIXELS_SHAPE}.`);
  }
  const { data, width, height, channels } = pixels;
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (channels === 3 && width === size && height === size) return bytes;
  const out = await sharp(bytes, { raw: { width, height, channels } }).removeAlpha()
    .resize(size, size, { fit: 'fill', kernel: 'linear' }).raw().toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
