/**
 * "Caption in this browser": the export bundle run by onnxruntime-web, without the server's model.
 *
 * It needs two things the server publishes only when they exist:
 *   /assets/web/show-attend-tell.mjs   the browser build of show-attend-tell/web, with onnxruntime-web's
 *                                      ort-wasm-simd-threaded.{mjs,wasm} beside it (npm run build)
 *   /v1/bundle/                        an export bundle of the served model (sat serve --bundle DIR)
 * show-attend-tell/web exports loadCaptioner(bundleUrl, { wasmPaths }) resolving to a Captioner whose
 * caption(image: Blob, { beam }) gives { caption, words, logProb, alternatives }. Until both are there,
 * `available` says why not and the page keeps the switch off.
 */

export interface BrowserCaption {
  caption: string;
  ms: number;
}

interface WebCaptioner {
  caption(image: Blob, options: { beam: number }): Promise<{ caption: string }>;
}

const WEB_BUILD = '/assets/web/';
const MODULE_URL = `${WEB_BUILD}show-attend-tell.mjs`;
const BUNDLE_URL = '/v1/bundle/';

let loading: Promise<WebCaptioner> | null = null;

/** Whether this server serves the browser module and an export bundle; otherwise the reason. */
export async function available(): Promise<{ ok: true } | { ok: false; reason: string }> {
  const [module, bundle] = await Promise.all([MODULE_URL, `${BUNDLE_URL}manifest.json`].map((u) => fetch(u, { method: 'HEAD' }).then((r) => r.ok, () => false)));
  if (!module) return { ok: false, reason: 'this server has no browser build of the captioner (/assets/web/: npm run build)' };
  if (!bundle) return { ok: false, reason: 'this server publishes no export bundle (/v1/bundle/: sat serve --bundle DIR)' };
  return { ok: true };
}

/** Caption `image` in this browser (the first call downloads the module and the model). */
export async function captionHere(image: Blob, beam: number): Promise<BrowserCaption> {
  loading ??= import(/* @vite-ignore */ MODULE_URL as string).then((m: { loadCaptioner(url: string, o: { wasmPaths: string }): Promise<WebCaptioner> }) =>
    m.loadCaptioner(new URL(BUNDLE_URL, location.href).href, { wasmPaths: new URL(WEB_BUILD, location.href).href }));
  loading.catch(() => { loading = null; });
  const captioner = await loading;
  const t0 = performance.now();
  const result = await captioner.caption(image, { beam });
  return { caption: result.caption, ms: performance.now() - t0 };
}
