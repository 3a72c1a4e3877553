/**
 * The static captioning page that `sat export --site DIR` writes: no server behind it. It loads the bundle in
 * ./model/ (or the folder URL in ?model=...) with show-attend-tell/web on onnxruntime-web, captions a dropped,
 * pasted or picked image in this browser, and shows every word's attention over the image (hover, click, focus or
 * arrow keys; play steps through them), with the beam alternatives. A bundle with a caption memory (`sat export
 * --memory`) adds a switch for consensus reranking, on by default; its memory is fetched on the first such caption.
 * Any static file server can serve DIR.
 */
import { loadCaptioner, type CaptionResult, type Captioner, type WebImageInput } from '../index.js';
import { AttentionView, captionPageElements, PAGE_CONSENSUS, showStatus, takeImages } from '../page/caption-page.js';

const ui = captionPageElements();

let captioner: Captioner<WebImageInput> | null = null;
let busy = false;
const view = new AttentionView(ui);

function setStatus(text: string, error = false): void {
  showStatus(ui.status, text, error);
}

/** The bundle folder's URL: ?model=URL, else ./model/ beside this page. */
function bundleUrl(): string {
  const asked = new URLSearchParams(location.search).get('model');
  return new URL(asked ?? 'model/', location.href).href;
}

async function init(): Promise<void> {
  for (let k = 1; k <= 5; k++) ui.beam.add(new Option(k === 1 ? '1 (greedy)' : String(k), String(k), k === 3, k === 3));
  const url = bundleUrl();
  const t0 = performance.now();
  try {
    // onnxruntime-web's .mjs/.wasm are beside this page's app.js
    captioner = await loadCaptioner(url, { wasmPaths: new URL('./', import.meta.url).href });
  } catch (e) {
    ui.model.textContent = `could not load the model from ${url}: ${(e as Error).message}`;
    ui.model.classList.add('error');
    return;
  }
  const info = captioner.info;
  ui.model.textContent =
    `model ${info.modelId} · encoder ${info.encoderId} · attention ${info.grid.join('×')} · ` +
    `${info.vocabSize} words · loaded in ${Math.round(performance.now() - t0)} ms`;
  ui.consensusSwitch.hidden = !info.consensus;
  ui.choose.disabled = false;
  document.body.dataset.ready = 'true';
}

/** Caption `image` here and show it; every failure ends in a status line that says what happened. */
function caption(image: Blob): void {
  if (!captioner) return setStatus('the model is not loaded yet: wait a moment, or reload the page.', true);
  if (busy) return setStatus('still captioning the previous image…');
  busy = true;
  captionHere(captioner, image)
    .catch((e: Error) => setStatus(`could not caption this image: ${e.message}`, true))
    .finally(() => {
      busy = false;
    });
}

async function captionHere(model: Captioner<WebImageInput>, image: Blob): Promise<void> {
  view.stop();
  setStatus('captioning…');
  const beam = Number(ui.beam.value || 3);
  const reranked = model.info.consensus && ui.consensus.checked;
  const t0 = performance.now();
  const result = await model.caption(
    image,
    reranked ? { beam, consensus: PAGE_CONSENSUS, alternatives: true } : { beam, alternatives: beam > 1 },
  );
  const ms = performance.now() - t0;
  const bitmap = await createImageBitmap(image, { imageOrientation: 'from-image' });
  show(result, model.info.grid, bitmap, ms, reranked);
  bitmap.close();
  setStatus(`captioned in ${Math.round(ms)} ms in this browser`);
  document.body.dataset.caption = result.caption;
}

function show(result: CaptionResult, grid: [number, number], bitmap: ImageBitmap, ms: number, reranked: boolean): void {
  view.show(
    bitmap,
    result.words.map((w) => w.word),
    (i) => gridOf(result.words[i].attention, grid),
    result.alternatives,
    reranked,
  );
  ui.timings.textContent = `log p ${result.logProb.toFixed(3)} · ${Math.round(ms)} ms (image, encoder and decoder in onnxruntime-web)`;
  ui.result.hidden = false;
}

/** One word's attention [h * w] as rows [h][w]. */
function gridOf(attention: Float32Array, [h, w]: [number, number]): number[][] {
  return Array.from({ length: h }, (_, r) => Array.from(attention.subarray(r * w, (r + 1) * w)));
}

takeImages(ui, caption, (message) => setStatus(message, true));
void init();
