/**
 * "Caption in this browser": the served model's export bundle run by onnxruntime-web, without the server's model.
 *
 * GET /v1/model says whether the server publishes what that needs (`browser`):
 *   module   the browser build of show-attend-tell/web (onnxruntime-web's ort-wasm-simd-threaded.{mjs,wasm}
 *            beside it, nothing from a CDN)
 *   bundle   the export bundle of the served model (the first request may wait while the server exports it)
 * show-attend-tell/web's loadCaptioner(bundleUrl, { wasmPaths }) resolves to the Captioner API; caption(Blob,
 * { beam, consensus }) gives { caption, words, logProb, alternatives } as the server does (the same default number
 * of samples and seed, so the same caption).
 */

export type BrowserSupport = { available: true; module: string; bundle: string } | { available: false; reason: string };

export interface BrowserCaption {
  caption: string;
  /** The bundle's model id (the server's when it publishes its own model). */
  modelId: string;
  ms: number;
}

/** The decoding options the page's controls set. */
export interface PageOptions {
  beam: number;
  consensus?: number;
}

interface WebCaptioner {
  info: { modelId: string };
  caption(image: Blob, options: PageOptions): Promise<{ caption: string }>;
}

let loading: Promise<WebCaptioner> | null = null;

/** Caption `image` in this browser (the first call downloads the module and the model). */
export async function captionHere(
  support: BrowserSupport & { available: true },
  image: Blob,
  options: PageOptions,
): Promise<BrowserCaption> {
  const moduleUrl = new URL(support.module, location.href);
  loading ??= import(/* @vite-ignore */ moduleUrl.href).then(
    (m: { loadCaptioner(url: string, o: { wasmPaths: string }): Promise<WebCaptioner> }) =>
      m.loadCaptioner(new URL(support.bundle, location.href).href, { wasmPaths: new URL('./', moduleUrl).href }),
  );
  loading.catch(() => {
    loading = null;
  });
  const captioner = await loading;
  const t0 = performance.now();
  const result = await captioner.caption(image, options);
  return { caption: result.caption, modelId: captioner.info.modelId, ms: performance.now() - t0 };
}
