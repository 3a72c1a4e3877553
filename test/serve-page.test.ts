/**
 * The `sat serve` page in headless Chromium (Debian's /usr/bin/chromium through playwright-core): pick an
 * image and see the server's caption; hover a word and see the heat map change on the overlay canvas;
 * the keyboard reaches and moves through the words; no horizontal scrolling at a phone's width; with an
 * export bundle, "caption in this browser" agrees with the server. Screenshots go to
 * out/test/serve-page-*.png. Skipped where chromium is not installed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { loadCaptionerEngine } from '../src/serve/captioner-adapter.js';
import type { CaptionEngine } from '../src/serve/engine.js';
import { startServer, type CaptionServer } from '../src/serve/server.js';
import { makeTinyModel, splitImage, type TinyModel } from './serve-fixture.js';

const CHROMIUM = process.env.SAT_CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const SHOTS = path.resolve('out', 'test');
const skip = fs.existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set SAT_CHROMIUM)`;

let dir: string;
let engine: CaptionEngine;
let server: CaptionServer;
let browser: BrowserContext;
let image: Buffer;
let tiny: TinyModel;

before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-serve-page-'));
  tiny = await makeTinyModel(dir);
  engine = await loadCaptionerEngine(tiny.run, { encoder: tiny.encoder });
  server = await startServer(async () => engine, { port: 0 });
  await server.ready;
  image = await splitImage(96, 64);
  const { chromium } = await import('playwright-core');
  browser = await chromium.launchPersistentContext(path.join(dir, 'profile'), { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1100, height: 900 } });
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await server?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Sum of the overlay canvas's alpha and red channels: 0 when no heat map is drawn. */
const heat = (page: Page) => page.evaluate(() => {
  const c = document.getElementById('heat') as HTMLCanvasElement;
  const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
  let alpha = 0, red = 0;
  for (let i = 0; i < d.length; i += 4) { red += d[i]; alpha += d[i + 3]; }
  return { alpha, red, width: c.width };
});

async function captionOnPage(page: Page): Promise<string> {
  await page.goto(`${server.url}/`);
  await page.waitForFunction(() => (document.getElementById('beam') as HTMLSelectElement).options.length > 0);
  await page.setInputFiles('#file', { name: 'split.png', mimeType: 'image/png', buffer: image });
  await page.waitForSelector('#words .word');
  return (await page.locator('#words .word').allTextContents()).join(' ');
}

test('the page captions an image, hovering a word lays its attention over it, the keyboard works', { skip }, async (t) => {
  const api = await (await fetch(`${server.url}/v1/captions?attention=true`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(image) })).json();
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  assert.equal(await captionOnPage(page), api.caption);
  assert.match(await page.locator('#alternatives').innerText(), new RegExp(api.alternatives[0].caption));
  assert.match(await page.locator('#model').innerText(), /run\/best@/);

  assert.equal((await heat(page)).alpha, 0);
  const words = page.locator('#words .word');
  await words.nth(0).hover();
  const first = await heat(page);
  assert.ok(first.alpha > 0, 'hovering a word draws a heat map');
  await words.nth(2).hover();
  const third = await heat(page);
  const grids = JSON.stringify(api.words[0].attention) !== JSON.stringify(api.words[2].attention);
  if (grids) assert.notDeepEqual(third, first, 'another word, another heat map');
  assert.equal(await words.nth(2).getAttribute('aria-pressed'), 'true');
  await page.screenshot({ path: path.join(SHOTS, 'serve-page-desktop.png') });

  // keyboard: Tab reaches the image button first; arrows move through the words, the focused one is shown
  await page.mouse.move(0, 0);
  await page.locator('body').focus();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'choose');
  await words.nth(0).focus();
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), api.words[1].word);
  assert.equal(await words.nth(1).getAttribute('aria-pressed'), 'true');
  await page.keyboard.press('End');
  assert.equal(await words.nth(api.words.length - 1).getAttribute('aria-pressed'), 'true');
  await page.locator('#play').press('Enter');
  assert.equal(await words.nth(0).getAttribute('aria-pressed'), 'true', 'play starts at the first word');

  // phone width: everything fits without sideways scrolling
  await page.setViewportSize({ width: 390, height: 844 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no horizontal scroll at 390 px');
  await page.screenshot({ path: path.join(SHOTS, 'serve-page-phone.png'), fullPage: true });
  assert.deepEqual(errors, []);
  t.diagnostic(`screenshots: ${SHOTS}/serve-page-{desktop,phone}.png`);
});

/**
 * The export bundle's writer (src/export/bundle.ts, buildBundle + writeBundle) and the browser build
 * (dist/web/show-attend-tell.mjs, npm run build), when this checkout has both; null otherwise.
 */
async function bundleTools(): Promise<{ buildBundle(target: string, o: object): Promise<unknown>; writeBundle(dir: string, b: unknown): string[] } | null> {
  const writer = path.resolve('src', 'export', 'bundle.ts');
  if (!fs.existsSync(writer) || !fs.existsSync(path.resolve('dist', 'web', 'show-attend-tell.mjs'))) return null;
  return import(pathToFileURL(writer).href);
}

test('caption in this browser: the page captions with the export bundle and onnxruntime-web, and agrees with the server', { skip, timeout: 180_000 }, async (t) => {
  const tools = await bundleTools();
  if (!tools) {
    // Without them the switch must be off and say why.
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await page.waitForFunction(() => (document.getElementById('in-browser') as HTMLInputElement).disabled);
    assert.match(await page.locator('#in-browser-note').innerText(), /not available: .*(\/assets\/web\/|\/v1\/bundle\/)/);
    t.skip('no export bundle writer (src/export/bundle.ts) or browser build (dist/web): checked that the switch is off and says why');
    return;
  }
  const bundleDir = path.join(dir, 'bundle');
  tools.writeBundle(bundleDir, await tools.buildBundle(tiny.run, { encoder: tiny.encoder }));
  // the same engine; this server's close() must leave it to the first server
  const withBundle = await startServer(async () => ({ info: engine.info, captionBatch: (i, o) => engine.captionBatch(i, o), dispose: async () => undefined }), { port: 0, bundleDir });
  try {
    await withBundle.ready;
    const page = await browser.newPage();
    await page.goto(`${withBundle.url}/`);
    await page.waitForFunction(() => !(document.getElementById('in-browser') as HTMLInputElement).disabled);
    await page.locator('#in-browser').check();
    await page.setInputFiles('#file', { name: 'split.png', mimeType: 'image/png', buffer: image });
    await page.waitForFunction(() => /same as|differs|could not/.test(document.getElementById('browser-caption')?.textContent ?? ''), null, { timeout: 150_000 });
    const verdict = await page.locator('#browser-caption').innerText();
    await page.screenshot({ path: path.join(SHOTS, 'serve-page-in-browser.png'), fullPage: true });
    assert.match(verdict, /same as the server/, verdict);
  } finally {
    await withBundle.close();
  }
});
