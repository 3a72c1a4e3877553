/**
 * "Caption in this browser": the export bundle run by onnxruntime-web, without the server's model.
 *
 * Plug-in point. It needs two things this server serves only when they exist:
 *   /assets/web/index.js   the browser build of show-attend-tell/web (with onnxruntime-web and its .wasm)
 *   /v1/bundle/            the export bundle of the served model (manifest.json, the .onnx graphs, vocab)
 * The module is expected to export loadCaptioner(bundleUrl, { backend: 'onnx' }) resolving to an object
 * with caption(image: ImageBitmap | Blob, { beam }) -> { caption: string, words: { word: string }[] }.
 * Until both are there, `available` says why not and the page keeps the switch off.
 */

export interface BrowserCaption {
  caption: string;
  ms: number;
}

interface WebCaptioner {
  caption(image: Blob, options: { beam: number }): Promise<{ caption: string }>;
}

const MODULE_URL = '/assets/web/index.js';
const BUNDLE_URL = '/v1/bundle/';

let loading: Promise<WebCaptioner> | null = null;

/** Whether this server serves the browser module and an export bundle; otherwise the reason. */
export async function available(): Promise<{ ok: true } | { ok: false; reason: string }> {
  const [module, bundle] = await Promise.all([MODULE_URL, `${BUNDLE_URL}manifest.json`].map((u) => fetch(u, { method: 'HEAD' }).then((r) => r.ok, () => false)));
  if (!module) return { ok: false, reason: 'this server has no browser build of the captioner (/assets/web/)' };
  if (!bundle) return { ok: false, reason: 'this server serves no export bundle of its model (/v1/bundle/)' };
  return { ok: true };
}

/** Caption `image` in this browser (the first call downloads the module and the model). */
export async function captionHere(image: Blob, beam: number): Promise<BrowserCaption> {
  loading ??= import(/* @vite-ignore */ MODULE_URL as string).then((m: { loadCaptioner(url: string, o: { backend: string }): Promise<WebCaptioner> }) =>
    m.loadCaptioner(new URL(BUNDLE_URL, location.href).href, { backend: 'onnx' }));
  loading.catch(() => { loading = null; });
  const captioner = await loading;
  const t0 = performance.now();
  const result = await captioner.caption(image, { beam });
  return { caption: result.caption, ms: performance.now() - t0 };
}
