/**
 * The page at GET /: drop, paste or pick an image; POST it to /v1/captions with attention; show the
 * caption as word buttons (hover, click, focus or arrow keys lay that word's attention over the image;
 * play steps through them), the beam alternatives with their scores, and optionally the caption made in
 * this browser (in-browser.ts) next to the server's.
 */
import { drawHeat } from './heatmap.js';
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
  options: { beam: number };
  timings_ms: Record<string, number>;
  batch_size: number;
}
interface ErrorAnswer {
  error: { message: string; fix: string };
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  model: $('model'),
  drop: $('drop'),
  file: $<HTMLInputElement>('file'),
  choose: $<HTMLButtonElement>('choose'),
  beam: $<HTMLSelectElement>('beam'),
  inBrowser: $<HTMLInputElement>('in-browser'),
  inBrowserNote: $('in-browser-note'),
  status: $('status'),
  result: $('result'),
  photo: $<HTMLCanvasElement>('photo'),
  heat: $<HTMLCanvasElement>('heat'),
  play: $<HTMLButtonElement>('play'),
  words: $('words'),
  timings: $('timings'),
  alternatives: $('alternatives'),
  alternativesNote: $('alternatives-note'),
  browserResult: $('browser-result'),
  browserCaption: $('browser-caption'),
};

let current: CaptionAnswer | null = null;
let currentImage: Blob | null = null; // the image `current` captions, however it came (picked, dropped, pasted)
let browserSupport: here.BrowserSupport = { available: false, reason: 'the model is not loaded yet' };
let selected = -1; // the word whose attention is shown (-1: none)
let pinned = false; // a click or Enter keeps the selection when the pointer leaves
let playing: number | null = null;

function setStatus(text: string, error = false): void {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', error);
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
  stop();
  setStatus('captioning…');
  const beam = Number(ui.beam.value || 3);
  const response = await fetch(`/v1/captions?attention=true&beam=${beam}`, {
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
  currentImage = image;
  show(answer, bitmap);
  bitmap.close(); // drawn into the canvas; its pixels are not needed any more
  setStatus(`captioned in ${Math.round(answer.timings_ms.total)} ms`);
  if (ui.inBrowser.checked) void compareInBrowser(image, beam, answer.caption);
}

function show(answer: CaptionAnswer, bitmap: ImageBitmap): void {
  const longest = 768;
  const scale = Math.min(1, longest / Math.max(bitmap.width, bitmap.height));
  for (const c of [ui.photo, ui.heat]) {
    c.width = Math.round(bitmap.width * scale);
    c.height = Math.round(bitmap.height * scale);
  }
  ui.photo.getContext('2d')!.drawImage(bitmap, 0, 0, ui.photo.width, ui.photo.height);
  ui.words.replaceChildren(
    ...answer.words.map((w, i) => {
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
  ui.alternativesNote.hidden = answer.alternatives.length > 0;
  ui.alternatives.replaceChildren(
    ...answer.alternatives.map((a) => {
      const li = document.createElement('li');
      const score = document.createElement('span');
      score.className = 'score';
      score.textContent = `log p ${a.log_prob.toFixed(3)}${a.score !== a.log_prob ? ` · score ${a.score.toFixed(3)}` : ''}${a.finished ? '' : ' · unfinished'}`;
      li.append(a.caption || '(empty)', score);
      return li;
    }),
  );
  const t = answer.timings_ms;
  ui.timings.textContent = `model ${answer.model} · image ${t.image} ms · queue ${t.queue} ms · model ${t.model} ms (batch of ${answer.batch_size})`;
  ui.play.disabled = answer.words.length === 0;
  ui.browserResult.hidden = true;
  ui.result.hidden = false;
  pinned = false;
  select(-1);
}

function select(i: number): void {
  selected = i;
  ui.words.querySelectorAll<HTMLButtonElement>('.word').forEach((b, j) => {
    b.setAttribute('aria-pressed', String(j === i));
    if (i >= 0) b.tabIndex = j === i ? 0 : -1;
  });
  drawHeat(ui.heat, current && i >= 0 ? current.words[i].attention : null);
}

function stop(): void {
  if (playing !== null) clearInterval(playing);
  playing = null;
  ui.play.innerHTML = '&#9654;';
  ui.play.setAttribute('aria-label', 'Play: step through the words');
}

function play(): void {
  if (!current || current.words.length === 0) return;
  if (playing !== null) return stop();
  let i = selected >= current.words.length - 1 ? 0 : selected + 1;
  pinned = true;
  select(i);
  ui.play.innerHTML = '&#10074;&#10074;';
  ui.play.setAttribute('aria-label', 'Pause');
  playing = window.setInterval(() => {
    if (!current || ++i >= current.words.length) {
      stop();
      return;
    }
    select(i);
  }, 800);
}

async function compareInBrowser(image: Blob, beam: number, serverCaption: string): Promise<void> {
  ui.browserResult.hidden = false;
  ui.browserCaption.textContent = 'loading the model in this browser…';
  if (!browserSupport.available) return;
  try {
    const r = await here.captionHere(browserSupport, image, beam);
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

ui.choose.addEventListener('click', () => ui.file.click());
ui.file.addEventListener('change', () => {
  if (ui.file.files?.[0]) caption(ui.file.files[0]);
});
ui.play.addEventListener('click', play);
ui.words.addEventListener('keydown', (e) => {
  if (!current) return;
  const n = current.words.length;
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
ui.inBrowser.addEventListener('change', () => {
  if (ui.inBrowser.checked && current && currentImage)
    void compareInBrowser(currentImage, current.options.beam, current.caption);
  if (!ui.inBrowser.checked) ui.browserResult.hidden = true;
});
void init();
