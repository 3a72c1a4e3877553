/**
 * The static captioning page that `sat export --site DIR` writes: no server behind it. It loads the bundle in
 * ./model/ (or the folder URL in ?model=...) with show-attend-tell/web on onnxruntime-web, captions a dropped,
 * pasted or picked image in this browser, and shows every word's attention over the image (hover, click, focus or
 * arrow keys; play steps through them), with the beam alternatives. Any static file server can serve DIR.
 */
import { loadCaptioner, type CaptionResult, type Captioner, type WebImageInput } from '../index.js';
import { drawHeat } from '../page/heatmap.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  model: $('model'),
  drop: $('drop'),
  file: $<HTMLInputElement>('file'),
  choose: $<HTMLButtonElement>('choose'),
  beam: $<HTMLSelectElement>('beam'),
  status: $('status'),
  result: $('result'),
  photo: $<HTMLCanvasElement>('photo'),
  heat: $<HTMLCanvasElement>('heat'),
  play: $<HTMLButtonElement>('play'),
  words: $('words'),
  timings: $('timings'),
  alternatives: $('alternatives'),
  alternativesNote: $('alternatives-note'),
};

let captioner: Captioner<WebImageInput> | null = null;
let current: { result: CaptionResult; grid: [number, number] } | null = null;
let selected = -1; // the word whose attention is shown (-1: none)
let pinned = false; // a click or Enter keeps the selection when the pointer leaves
let playing: number | null = null;
let busy = false;

function setStatus(text: string, error = false): void {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', error);
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
  stop();
  setStatus('captioning…');
  const beam = Number(ui.beam.value || 3);
  const t0 = performance.now();
  const result = await model.caption(image, { beam, alternatives: beam > 1 });
  const ms = performance.now() - t0;
  const bitmap = await createImageBitmap(image, { imageOrientation: 'from-image' });
  current = { result, grid: model.info.grid };
  show(result, bitmap, ms);
  bitmap.close();
  setStatus(`captioned in ${Math.round(ms)} ms in this browser`);
  document.body.dataset.caption = result.caption;
}

function show(result: CaptionResult, bitmap: ImageBitmap, ms: number): void {
  const longest = 768;
  const scale = Math.min(1, longest / Math.max(bitmap.width, bitmap.height));
  for (const c of [ui.photo, ui.heat]) {
    c.width = Math.round(bitmap.width * scale);
    c.height = Math.round(bitmap.height * scale);
  }
  ui.photo.getContext('2d')!.drawImage(bitmap, 0, 0, ui.photo.width, ui.photo.height);
  ui.words.replaceChildren(
    ...result.words.map((w, i) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'word';
      b.textContent = w.word;
      b.tabIndex = i === 0 ? 0 : -1;
      b.setAttribute('aria-pressed', 'false');
      b.addEventListener('mouseenter', () => {
        if (!pinned) select(i);
      });
      b.addEventListener('mouseleave', () => {
        if (!pinned) select(-1);
      });
      b.addEventListener('focus', () => select(i));
      b.addEventListener('click', () => {
        stop();
        pinned = !(pinned && selected === i);
        select(i);
      });
      return b;
    }),
  );
  ui.alternativesNote.hidden = result.alternatives.length > 0;
  ui.alternatives.replaceChildren(
    ...result.alternatives.map((a) => {
      const li = document.createElement('li');
      const score = document.createElement('span');
      score.className = 'score';
      score.textContent = `log p ${a.logProb.toFixed(3)}${a.score !== a.logProb ? ` · score ${a.score.toFixed(3)}` : ''}${a.finished ? '' : ' · unfinished'}`;
      li.append(a.caption || '(empty)', score);
      return li;
    }),
  );
  ui.timings.textContent = `log p ${result.logProb.toFixed(3)} · ${Math.round(ms)} ms (image, encoder and decoder in onnxruntime-web)`;
  ui.play.disabled = result.words.length === 0;
  ui.result.hidden = false;
  pinned = false;
  select(-1);
}

/** One word's attention [h * w] as rows [h][w]. */
function gridOf(attention: Float32Array, [h, w]: [number, number]): number[][] {
  return Array.from({ length: h }, (_, r) => Array.from(attention.subarray(r * w, (r + 1) * w)));
}

function select(i: number): void {
  selected = i;
  ui.words.querySelectorAll<HTMLButtonElement>('.word').forEach((b, j) => {
    b.setAttribute('aria-pressed', String(j === i));
    if (i >= 0) b.tabIndex = j === i ? 0 : -1;
  });
  drawHeat(ui.heat, current && i >= 0 ? gridOf(current.result.words[i].attention, current.grid) : null);
}

function stop(): void {
  if (playing !== null) clearInterval(playing);
  playing = null;
  ui.play.innerHTML = '&#9654;';
  ui.play.setAttribute('aria-label', 'Play: step through the words');
}

function play(): void {
  if (!current || current.result.words.length === 0) return;
  if (playing !== null) return stop();
  const n = current.result.words.length;
  let i = selected >= n - 1 ? 0 : selected + 1;
  pinned = true;
  select(i);
  ui.play.innerHTML = '&#10074;&#10074;';
  ui.play.setAttribute('aria-label', 'Pause');
  playing = window.setInterval(() => {
    if (++i >= n) {
      stop();
      return;
    }
    select(i);
  }, 800);
}

ui.choose.addEventListener('click', () => ui.file.click());
ui.file.addEventListener('change', () => {
  if (ui.file.files?.[0]) caption(ui.file.files[0]);
});
ui.play.addEventListener('click', play);
ui.words.addEventListener('keydown', (e) => {
  if (!current) return;
  const n = current.result.words.length;
  const to = {
    ArrowRight: selected + 1,
    ArrowDown: selected + 1,
    ArrowLeft: selected - 1,
    ArrowUp: selected - 1,
    Home: 0,
    End: n - 1,
  }[e.key];
  if (to === undefined) return;
  e.preventDefault();
  stop();
  const i = Math.max(0, Math.min(n - 1, to));
  pinned = true;
  ui.words.querySelectorAll<HTMLButtonElement>('.word')[i].focus();
  select(i);
});
ui.drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  ui.drop.classList.add('over');
});
ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
ui.drop.addEventListener('drop', (e) => {
  e.preventDefault();
  ui.drop.classList.remove('over');
  const file = [...(e.dataTransfer?.files ?? [])].find((f) => f.type.startsWith('image/'));
  if (file) caption(file);
  else setStatus('drop an image file (JPEG, PNG, WebP ...)', true);
});
document.addEventListener('paste', (e) => {
  const item = [...(e.clipboardData?.items ?? [])].find((it) => it.type.startsWith('image/'));
  const file = item?.getAsFile();
  if (file) caption(file);
});
void init();
