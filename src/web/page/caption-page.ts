/**
 * The part of a captioning page shared by the `sat serve` page (main.ts) and the static site's page
 * (../site/main.ts): the elements both pages have, the status line, taking an image that is picked, dropped or
 * pasted, and the view of a caption: the image with a heat map over it, the caption as word buttons (hover, click,
 * focus or arrow keys lay that word's attention over the image; play steps through them) and the beam alternatives
 * with their scores.
 */
import { drawHeat } from './heatmap.js';

export const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** The elements both pages' index.html have (by id). */
export function captionPageElements() {
  return {
    model: $('model'),
    drop: $('drop'),
    file: $<HTMLInputElement>('file'),
    choose: $<HTMLButtonElement>('choose'),
    beam: $<HTMLSelectElement>('beam'),
    consensus: $<HTMLInputElement>('consensus'),
    consensusSwitch: $('consensus-switch'),
    status: $('status'),
    result: $('result'),
    photo: $<HTMLCanvasElement>('photo'),
    heat: $<HTMLCanvasElement>('heat'),
    play: $<HTMLButtonElement>('play'),
    words: $('words'),
    timings: $('timings'),
    alternatives: $('alternatives'),
    alternativesTitle: $('alternatives-title'),
    alternativesNote: $('alternatives-note'),
  };
}

/** The status line says `text`, styled as an error when `error`. */
export function showStatus(status: HTMLElement, text: string, error = false): void {
  status.textContent = text;
  status.classList.toggle('error', error);
}

/** The elements the view draws into. */
export interface AttentionViewElements {
  photo: HTMLCanvasElement;
  heat: HTMLCanvasElement;
  play: HTMLButtonElement;
  words: HTMLElement;
  alternatives: HTMLElement;
  alternativesTitle: HTMLElement;
  alternativesNote: HTMLElement;
}

/**
 * The neighbours a page asks consensus reranking for (`sat eval --consensus 60` is the recipe's setting), within
 * the model's cap; the switch is shown only for a model with a caption memory.
 */
export const PAGE_CONSENSUS = 60;

/** One beam alternative as the view lists it. */
export interface Alternative {
  caption: string;
  logProb: number;
  score: number;
  finished: boolean;
}

/** The caption on show: its words, and one word's attention grid [h][w]. */
interface Shown {
  words: string[];
  attentionOf: (i: number) => number[][];
}

/** A caption's view: drawn by show(); the play button and the keyboard over the words work from the start. */
export class AttentionView {
  private shown: Shown | null = null;
  private selected = -1; // the word whose attention is shown (-1: none)
  private pinned = false; // a click or Enter keeps the selection when the pointer leaves
  private playing: number | null = null;

  constructor(private readonly ui: AttentionViewElements) {
    ui.play.addEventListener('click', () => this.play());
    ui.words.addEventListener('keydown', (e) => this.key(e));
  }

  /**
   * Shows `bitmap` (at most 768 pixels on its longer side), the caption's words and the alternatives (the beam's, or
   * every candidate ranked by consensus when `reranked`); nothing selected.
   */
  show(
    bitmap: ImageBitmap,
    words: string[],
    attentionOf: (i: number) => number[][],
    alternatives: Alternative[],
    reranked = false,
  ): void {
    const { ui } = this;
    ui.alternativesTitle.textContent = reranked ? 'Candidates ranked by consensus' : 'Beam alternatives';
    this.shown = { words, attentionOf };
    const longest = 768;
    const scale = Math.min(1, longest / Math.max(bitmap.width, bitmap.height));
    for (const c of [ui.photo, ui.heat]) {
      c.width = Math.round(bitmap.width * scale);
      c.height = Math.round(bitmap.height * scale);
    }
    ui.photo.getContext('2d')!.drawImage(bitmap, 0, 0, ui.photo.width, ui.photo.height);
    ui.words.replaceChildren(
      ...words.map((word, i) => {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'word';
        b.textContent = word;
        b.tabIndex = i === 0 ? 0 : -1;
        b.setAttribute('aria-pressed', 'false');
        b.addEventListener('mouseenter', () => {
          if (!this.pinned) this.select(i);
        });
        b.addEventListener('mouseleave', () => {
          if (!this.pinned) this.select(-1);
        });
        b.addEventListener('focus', () => this.select(i));
        b.addEventListener('click', () => {
          this.stop();
          this.pinned = !(this.pinned && this.selected === i);
          this.select(i);
        });
        return b;
      }),
    );
    ui.alternativesNote.hidden = alternatives.length > 0;
    ui.alternatives.replaceChildren(
      ...alternatives.map((a) => {
        const li = document.createElement('li');
        const score = document.createElement('span');
        score.className = 'score';
        score.textContent = `log p ${a.logProb.toFixed(3)}${a.score !== a.logProb ? ` · score ${a.score.toFixed(3)}` : ''}${a.finished ? '' : ' · unfinished'}`;
        li.append(a.caption || '(empty)', score);
        return li;
      }),
    );
    ui.play.disabled = words.length === 0;
    this.pinned = false;
    this.select(-1);
  }

  /** Stops stepping through the words (the play button shows play again). */
  stop(): void {
    if (this.playing !== null) clearInterval(this.playing);
    this.playing = null;
    this.ui.play.innerHTML = '&#9654;';
    this.ui.play.setAttribute('aria-label', 'Play: step through the words');
  }

  private select(i: number): void {
    this.selected = i;
    this.ui.words.querySelectorAll<HTMLButtonElement>('.word').forEach((b, j) => {
      b.setAttribute('aria-pressed', String(j === i));
      if (i >= 0) b.tabIndex = j === i ? 0 : -1;
    });
    drawHeat(this.ui.heat, this.shown && i >= 0 ? this.shown.attentionOf(i) : null);
  }

  /** Steps through the words from the one after the selection, 800 ms each; pauses if playing. */
  private play(): void {
    if (!this.shown || this.shown.words.length === 0) return;
    if (this.playing !== null) return this.stop();
    let i = this.selected >= this.shown.words.length - 1 ? 0 : this.selected + 1;
    this.pinned = true;
    this.select(i);
    this.ui.play.innerHTML = '&#10074;&#10074;';
    this.ui.play.setAttribute('aria-label', 'Pause');
    // the caption shown at each step: one that arrives while playing is stepped through from there on
    this.playing = window.setInterval(() => {
      if (!this.shown || ++i >= this.shown.words.length) {
        this.stop();
        return;
      }
      this.select(i);
    }, 800);
  }

  /** Arrow keys, Home and End move the selection (pinned) and the focus over the words. */
  private key(e: KeyboardEvent): void {
    if (!this.shown) return;
    const n = this.shown.words.length;
    const to = {
      ArrowRight: this.selected + 1,
      ArrowDown: this.selected + 1,
      ArrowLeft: this.selected - 1,
      ArrowUp: this.selected - 1,
      Home: 0,
      End: n - 1,
    }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    this.stop();
    const i = Math.max(0, Math.min(n - 1, to));
    this.pinned = true;
    this.ui.words.querySelectorAll<HTMLButtonElement>('.word')[i].focus();
    this.select(i);
  }
}

/** The elements that take an image: the drop zone, the hidden file input and the button that opens it. */
export interface ImageInputElements {
  drop: HTMLElement;
  file: HTMLInputElement;
  choose: HTMLButtonElement;
}

/**
 * Calls `caption` with an image picked with the choose button, dropped on the drop zone or pasted anywhere on the
 * page; a drop without an image file calls `wrongDrop` with a message saying what to drop.
 */
export function takeImages(
  ui: ImageInputElements,
  caption: (image: Blob) => void,
  wrongDrop: (message: string) => void,
): void {
  ui.choose.addEventListener('click', () => ui.file.click());
  ui.file.addEventListener('change', () => {
    if (ui.file.files?.[0]) caption(ui.file.files[0]);
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
    else wrongDrop('drop an image file (JPEG, PNG, WebP ...)');
  });
  document.addEventListener('paste', (e) => {
    const item = [...(e.clipboardData?.items ?? [])].find((it) => it.type.startsWith('image/'));
    const file = item?.getAsFile();
    if (file) caption(file);
  });
}
