/**
 * The page at GET /: drop, paste or pick an image; POST it to /v1/captions with attention; show the
 * caption as word buttons (hover, click, focus or arrow keys lay that word's attention over the image;
 * play steps through them), the beam alternatives with their scores, and optionally the caption made in
 * this browser (in-browser.ts) next to the server's.
 */
import { $, AttentionView, captionPageElements, PAGE_CONSENSUS, showStatus, takeImages } from './caption-page.js';
import * as here from './in-browser.js';

interface Word {
  word: string;
  attention: number[][];
}
interface CaptionAnswer {
  model: string;
  caption: string;
  words: Word[];
  alternatives: { caption: string; log_prob: number; score: number; finished: boolean }[];
  options: { beam: number; consensus?: number };
  timings_ms: Record<string, number>;
  batch_size: number;
}
interface ErrorAnswer {
  error: { message: string; fix: string };
}

const ui = {
  ...captionPageElements(),
  inBrowser: $<HTMLInputElement>('in-browser'),
  inBrowserNote: $('in-browser-note'),
  browserResult: $('browser-result'),
  browserCaption: $('browser-caption'),
};

let current: CaptionAnswer | null = null;
let currentOptions: here.PageOptions = { beam: 3 }; // what the page asked `current` for
let currentImage: Blob | null = null; // the image `current` captions, however it came (picked, dropped, pasted)
let browserSupport: here.BrowserSupport = { available: false, reason: 'the model is not loaded yet' };
/** Neighbours for consensus reranking when the switch is on; 0: the model has no caption memory. */
let consensusNeighbours = 0;
const view = new AttentionView(ui);

function setStatus(text: string, error = false): void {
  showStatus(ui.status, text, error);
}

async function init(): Promise<void> {
  const model = await fetch('/v1/model').then(
    (r) => (r.ok ? r.json() : null),
    () => null,
  );
  const maxBeam = model?.decoding?.beam?.max ?? 5;
  const defaultBeam = model?.decoding?.beam?.default ?? 3;
  for (let k = 1; k <= Math.min(maxBeam, 8); k++)
    ui.beam.add(new Option(k === 1 ? '1 (greedy)' : String(k), String(k), k === defaultBeam, k === defaultBeam));
  const consensusCap = Number(model?.decoding?.consensus?.max ?? 0);
  consensusNeighbours = Math.min(PAGE_CONSENSUS, consensusCap);
  ui.consensusSwitch.hidden = consensusNeighbours === 0;
  ui.model.textContent = model
    ? `model ${model.id} · encoder ${model.encoder.id} · attention ${model.attention_grid?.join('×') ?? 'n/a'}`
    : 'the model is not loaded yet: reload in a moment';
  browserSupport = model?.browser ?? browserSupport;
  if (!browserSupport.available) {
    ui.inBrowser.disabled = true;
    ui.inBrowser.parentElement!.title = `Not available: ${browserSupport.reason}`;
    ui.inBrowserNote.textContent = `(not available: ${browserSupport.reason})`;
  }
}

/** Caption `image` on the server and show it; every failure ends in a status line that says what happened. */
function caption(image: Blob): void {
  captionOnServer(image).catch((e: Error) =>
    setStatus(`something went wrong on this page: ${e.message}. Reload the page and try again.`, true),
  );
}

async function captionOnServer(image: Blob): Promise<void> {
  view.stop();
  setStatus('captioning…');
  const options = pageOptions();
  const query = `attention=true&beam=${options.beam}${options.consensus ? `&consensus=${options.consensus}` : ''}`;
  const response = await fetch(`/v1/captions?${query}`, {
    method: 'POST',
    headers: { 'content-type': image.type || 'application/octet-stream' },
    body: image,
  }).catch((e: Error) => e);
  if (response instanceof Error)
    return setStatus(
      `the server did not answer: ${response.message}. Check that sat serve is running, then try again.`,
      true,
    );
  const answer = (await response.json().catch(() => null)) as CaptionAnswer | ErrorAnswer | null;
  if (!answer)
    return setStatus(
      `the server answered ${response.status} ${response.statusText} without a caption. Try again; if it repeats, the server log says why.`,
      true,
    );
  if ('error' in answer) return setStatus(`${answer.error.message} ${answer.error.fix}`, true);
  const bitmap = await createImageBitmap(image).catch(() => null);
  if (!bitmap)
    return setStatus(
      `the server captioned the image (“${answer.caption}”), but this browser cannot display it: try a JPEG or PNG.`,
      true,
    );
  current = answer;
  currentOptions = options;
  currentImage = image;
  show(answer, bitmap);
  bitmap.close(); // drawn into the canvas; its pixels are not needed any more
  setStatus(`captioned in ${Math.round(answer.timings_ms.total)} ms`);
  if (ui.inBrowser.checked) void compareInBrowser(image, options, answer.caption);
}

/** The decoding the page's controls ask for. */
function pageOptions(): here.PageOptions {
  const beam = Number(ui.beam.value || 3);
  return consensusNeighbours > 0 && ui.consensus.checked ? { beam, consensus: consensusNeighbours } : { beam };
}

function show(answer: CaptionAnswer, bitmap: ImageBitmap): void {
  view.show(
    bitmap,
    answer.words.map((w) => w.word),
    (i) => answer.words[i].attention,
    answer.alternatives.map((a) => ({ ...a, logProb: a.log_prob })),
    answer.options.consensus !== undefined,
  );
  const t = answer.timings_ms;
  ui.timings.textContent = `model ${answer.model} · image ${t.image} ms · queue ${t.queue} ms · model ${t.model} ms (batch of ${answer.batch_size})`;
  ui.browserResult.hidden = true;
  ui.result.hidden = false;
}

async function compareInBrowser(image: Blob, options: here.PageOptions, serverCaption: string): Promise<void> {
  ui.browserResult.hidden = false;
  ui.browserCaption.textContent = 'loading the model in this browser…';
  if (!browserSupport.available) return;
  try {
    const r = await here.captionHere(browserSupport, image, options);
    const same = r.caption === serverCaption;
    ui.browserCaption.innerHTML = '';
    const verdict = document.createElement('span');
    verdict.className = same ? 'agree' : 'differ';
    verdict.textContent = same ? '✓ same as the server' : '✗ differs from the server';
    const otherModel = current && r.modelId !== current.model ? ` (bundle ${r.modelId})` : '';
    ui.browserCaption.append(`“${r.caption}” (${Math.round(r.ms)} ms in onnxruntime-web${otherModel}) `, verdict);
  } catch (e) {
    ui.browserCaption.textContent = `could not caption in this browser: ${(e as Error).message}`;
  }
}

takeImages(ui, caption, (message) => setStatus(message, true));
ui.inBrowser.addEventListener('change', () => {
  if (ui.inBrowser.checked && current && currentImage)
    void compareInBrowser(currentImage, currentOptions, current.caption);
  if (!ui.inBrowser.checked) ui.browserResult.hidden = true;
});
void init();
