/**
 * show-attend-tell in the browser (`import { loadCaptioner } from 'show-attend-tell/web'`): caption images with
 * an exported bundle (`sat export`) on onnxruntime-web (WebAssembly), with the same search code (greedy, beam,
 * sampling) and the same Captioner API as Node (src/decode/captioner-api.ts).
 *
 *   const captioner = await loadCaptioner('/models/f8k-int8/');             // the bundle folder's URL
 *   const { caption, words } = await captioner.caption(document.querySelector('img'), { beam: 3 });
 *   const shipped = await loadCaptioner();   // the shipped model, from the package's files (defaultModelUrl)
 *
 * onnxruntime-web's files (ort-wasm-simd-threaded.mjs/.wasm) ship next to this bundle in dist/web/ and are
 * loaded from there unless `wasmPaths` says otherwise; nothing comes from a CDN. Multi-threaded wasm needs a
 * cross-origin isolated page (Cross-Origin-Opener-Policy: same-origin, Cross-Origin-Embedder-Policy:
 * require-corp); otherwise one thread runs.
 *
 * This entry and everything it imports must stay free of Node built-ins, sharp, the native addon and
 * onnxruntime-node (the build bundles it with esbuild for platform 'browser', which refuses them).
 */
import { createCaptioner, type Captioner } from '../decode/captioner-api.js';
import { bundleBackend, type Bundle } from '../export/bundle-backend.js';
import {
  BundleError,
  MANIFEST_FILE,
  parseManifest,
  verifyBundleFile,
  type BundleManifest,
} from '../export/manifest.js';
import type { OrtNamespace } from '../encoders/onnx/runtime.js';
import { DEFAULT_MODEL_NAME } from '../models/default-model.js';
import { preprocessWebImage, type WebImageInput } from './image.js';

export type {
  CaptionOptions,
  CaptionResult,
  CaptionWord,
  CaptionAlternativeText,
  Captioner,
  CaptionerInfo,
} from '../decode/captioner-api.js';
export { checkCaptionOptions, CAPTION_OPTION_LIMITS } from '../decode/captioner-api.js';
export { attentionGrid, heatMap, heatColour, upsampleBilinear } from '../figures/heat.js';
export type { BundleManifest } from '../export/manifest.js';
export { BundleError } from '../export/manifest.js';
export type { WebImageInput, RgbImage } from './image.js';
export { ImageDecodeError } from './image.js';
export { DEFAULT_MODEL_NAME } from '../models/default-model.js';

export interface WebCaptionerOptions {
  /** Where onnxruntime-web's .wasm/.mjs files are (a folder URL ending in '/'); default: next to this script. */
  wasmPaths?: string;
  /** wasm threads (default: onnxruntime-web's choice, 1 unless the page is cross-origin isolated). */
  numThreads?: number;
  /** Use SIMD wasm (default true; every current browser has it). */
  simd?: boolean;
  /** Another onnxruntime namespace (e.g. onnxruntime-web imported elsewhere, or in Node for tests). */
  ort?: OrtNamespace & { env?: unknown };
  fetch?: typeof fetch;
}

interface OrtWasmEnv {
  wasm: { wasmPaths?: string; numThreads?: number; simd?: boolean };
}

async function fetchBytes(fetchImpl: typeof fetch, url: string, what: string): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetchImpl(url);
  } catch (e) {
    throw new BundleError(`${url}: cannot fetch ${what} (${(e as Error).message}). Check the bundle URL.`);
  }
  if (!res.ok) {
    throw new BundleError(
      `${url}: HTTP ${res.status} ${res.statusText} for ${what}. ` +
        (res.status === 404
          ? 'The file is missing: serve the whole bundle folder written by `sat export`.'
          : 'Check the server.'),
    );
  }
  return new Uint8Array(await res.arrayBuffer());
}

/**
 * Fetches the bundle's manifest and files, each checked against its SHA-256. `lazy`: files left out here (the caption
 * memory, fetched on first use by bundleFileFetcher); the bundle's `files` then lacks them.
 */
export async function fetchBundle(
  url: string,
  fetchImpl: typeof fetch = fetch,
  lazy: (manifest: BundleManifest) => string[] = () => [],
): Promise<Bundle> {
  const base = url.endsWith('/') ? url : `${url}/`;
  const where = base.slice(0, -1);
  const text = new TextDecoder().decode(await fetchBytes(fetchImpl, base + MANIFEST_FILE, 'the bundle manifest'));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new BundleError(
      `${base}${MANIFEST_FILE} is not JSON: is ${url} the folder of a bundle written by \`sat export\`?`,
    );
  }
  const manifest = parseManifest(json, where);
  const later = new Set(lazy(manifest));
  const names = Object.keys(manifest.files).filter((name) => !later.has(name));
  const bytes = await Promise.all(names.map((name) => fetchBytes(fetchImpl, base + name, name)));
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < names.length; i++) {
    await verifyBundleFile(manifest, names[i], bytes[i], where);
    files.set(names[i], bytes[i]);
  }
  return { manifest, files };
}

/** Fetches one file of the bundle at `url`, checked against the manifest's SHA-256 and size. */
function bundleFileFetcher(url: string, manifest: BundleManifest, fetchImpl: typeof fetch) {
  const base = url.endsWith('/') ? url : `${url}/`;
  return async (name: string): Promise<Uint8Array> => {
    const bytes = await fetchBytes(fetchImpl, base + name, name);
    await verifyBundleFile(manifest, name, bytes, base.slice(0, -1));
    return bytes;
  };
}

/**
 * The URL of the shipped model's bundle folder, beside this script in the installed package:
 * node_modules/show-attend-tell/dist/web/show-attend-tell.mjs -> node_modules/show-attend-tell/models/NAME/.
 * Right wherever the package's files are served as they are installed (a static host serving node_modules, or a
 * copy of the package's dist/web and models folders side by side). A bundler that moves this script elsewhere
 * must also copy models/NAME/ and pass its URL to loadCaptioner (see docs/models.md).
 */
export function defaultModelUrl(scriptUrl: string = import.meta.url): string {
  return new URL(`../../models/${DEFAULT_MODEL_NAME}/`, scriptUrl).href;
}

/** Loads the bundle at `url` (its folder; default: the shipped model, defaultModelUrl) and returns a Captioner for browser images. */
export async function loadCaptioner(
  url: string = defaultModelUrl(),
  opts: WebCaptionerOptions = {},
): Promise<Captioner<WebImageInput>> {
  const ort = opts.ort ?? ((await import('onnxruntime-web/wasm')) as unknown as OrtNamespace & { env: OrtWasmEnv });
  const env = (ort as { env?: OrtWasmEnv }).env;
  if (env?.wasm) {
    if (opts.wasmPaths !== undefined) env.wasm.wasmPaths = opts.wasmPaths;
    if (opts.numThreads !== undefined) env.wasm.numThreads = opts.numThreads;
    if (opts.simd !== undefined) env.wasm.simd = opts.simd;
  }
  const fetchImpl = opts.fetch ?? globalThis.fetch.bind(globalThis);
  // the caption memory (about half of the shipped bundle) is fetched only when consensus reranking asks for it
  const bundle = await fetchBundle(url, fetchImpl, (m) => (m.memory ? [m.memory.vectors, m.memory.captions] : []));
  const size = bundle.manifest.encoder.inputSize;
  const backend = await bundleBackend(ort, bundle, {
    source: url,
    loadFile: bundleFileFetcher(url, bundle.manifest, fetchImpl),
    backend: 'onnx-web',
    sessionOptions: { executionProviders: ['wasm'], graphOptimizationLevel: 'all' },
    preprocess: (image: WebImageInput) => preprocessWebImage(image, size, fetchImpl),
  });
  return createCaptioner(backend);
}
