/**
 * The `sat serve` page in headless Chromium (Debian's /usr/bin/chromium through playwright-core): pick an
 * image and see the server's caption; hover a word and see the heat map change on the overlay canvas;
 * the keyboard reaches and moves through the words; no horizontal scrolling at a phone's width; "caption in
 * this browser" (the export bundle on onnxruntime-web, the browser build made from the sources) agrees with the
 * server (for a dropped image too), and is off, saying why, on a server that publishes no bundle; an answer that is not
 * JSON ends in an error line. One Chromium and one server serve all
 * the tests. Screenshots go to out/test/serve-page-*.png. Skipped where chromium is not installed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { buildBundle } from '../src/export/bundle.js';
import { loadCaptionerEngine } from '../src/serve/captioner-adapter.js';
import type { CaptionEngine } from '../src/serve/engine.js';
import { startServer, type CaptionServer } from '../src/serve/server.js';
import { bundleFiles, lazyFiles } from '../src/serve/static-files.js';
import { browserBuilds, makeTinyModel, splitImage, type TinyModel } from './helpers/serve-fixture.js';
import { chromiumSkip, inBrowserVerdict, launchChromium } from './helpers/browser-fixture.js';

const SHOTS = path.resolve('out', 'test');
const skip = chromiumSkip;

let dir: string;
let engine: CaptionEngine;
let server: CaptionServer;
let browser: BrowserContext;
let image: Buffer;
let tiny: TinyModel;

before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-serve-page-'));
  const launched = launchChromium({ width: 1100, height: 900 });
  tiny = await makeTinyModel(dir);
  engine = await loadCaptionerEngine(tiny.run, { encoder: tiny.encoder });
  // the bundle the CLI would export on first use (there on a thread of its own)
  server = await startServer(async () => engine, {
    port: 0,
    ...browserBuilds(),
    bundle: lazyFiles(async () => bundleFiles(await buildBundle(tiny.run, { encoder: tiny.encoder }))),
  });
  image = await splitImage(96, 64);
  await server.ready;
  browser = await launched;
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await server?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Sum of the overlay canvas's alpha and red channels: 0 when no heat map is drawn. */
const heat = (page: Page) =>
  page.evaluate(() => {
    const c = document.getElementById('heat') as HTMLCanvasElement;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let alpha = 0,
      red = 0;
    for (let i = 0; i < d.length; i += 4) {
      red += d[i];
      alpha += d[i + 3];
    }
    return { alpha, red, width: c.width };
  });

async function captionOnPage(page: Page): Promise<string> {
  await page.goto(`${server.url}/`);
  await page.waitForFunction(() => (document.getElementById('beam') as HTMLSelectElement).options.length > 0);
  await page.setInputFiles('#file', { name: 'split.png', mimeType: 'image/png', buffer: image });
  await page.waitForSelector('#words .word');
  return (await page.locator('#words .word').allTextContents()).join(' ');
}

test(
  'the page captions an image, hovering a word lays its attention over it, the keyboard works',
  { skip },
  async (t) => {
    const api = await (
      await fetch(`${server.url}/v1/captions?attention=true`, {
        method: 'POST',
        headers: { 'content-type': 'image/png' },
        body: new Uint8Array(image),
      })
    ).json();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    assert.equal(await captionOnPage(page), api.caption);
    assert.equal(await page.locator('#consensus-switch').isHidden(), true, 'no caption memory, no consensus switch');
    assert.match(await page.locator('#alternatives').innerText(), new RegExp(api.alternatives[0].caption));
    assert.match(await page.locator('#model').innerText(), /checkpoints-best-[0-9a-f]{12}/);

    assert.equal((await heat(page)).alpha, 0);
    const words = page.locator('#words .word');
    await words.nth(0).hover();
    const first = await heat(page);
    assert.ok(first.alpha > 0, 'hovering a word draws a heat map');
    await words.nth(2).hover();
    const third = await heat(page);
    assert.notDeepEqual(
      api.words[0].attention,
      api.words[2].attention,
      'the split image gives its words different attention',
    );
    assert.notDeepEqual(third, first, 'another word, another heat map');
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
    assert.ok(
      await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
      'no horizontal scroll at 390 px',
    );
    await page.screenshot({ path: path.join(SHOTS, 'serve-page-phone.png'), fullPage: true });

    // an answer that is not JSON (a proxy's error page) ends in a status line that says so
    await page.route('**/v1/captions*', (route) =>
      route.fulfill({ status: 502, contentType: 'text/html', body: '<h1>Bad Gateway</h1>' }),
    );
    await page.setInputFiles('#file', { name: 'again.png', mimeType: 'image/png', buffer: image });
    await page.waitForFunction(() => document.getElementById('status')?.classList.contains('error'));
    assert.match(await page.locator('#status').innerText(), /answered 502/);
    await page.unroute('**/v1/captions*');
    assert.deepEqual(errors, []);
    t.diagnostic(`screenshots: ${SHOTS}/serve-page-{desktop,phone}.png`);
  },
);

test(
  'caption in this browser: the page captions with the export bundle and onnxruntime-web, and agrees with the server',
  { skip, timeout: 120_000 },
  async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${server.url}/`);
    await page.waitForFunction(() => (document.getElementById('beam') as HTMLSelectElement).options.length > 0);
    assert.equal(
      await page.locator('#in-browser').isDisabled(),
      false,
      await page.locator('#in-browser-note').innerText(),
    );
    // a dropped image (not the file input's), then the switch: the page captions that image in the browser
    await page.evaluate(
      (bytes) => {
        const data = new DataTransfer();
        data.items.add(new File([new Uint8Array(bytes)], 'split.png', { type: 'image/png' }));
        document
          .getElementById('drop')!
          .dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
      },
      [...image],
    );
    await page.waitForSelector('#words .word');
    const verdict = await inBrowserVerdict(page);
    await page.screenshot({ path: path.join(SHOTS, 'serve-page-in-browser.png'), fullPage: true });
    assert.match(verdict, /same as the server/, verdict);
    assert.doesNotMatch(verdict, /bundle /, 'the bundle is the served model');
    assert.deepEqual(errors, []);
  },
);

test('a server that publishes no bundle keeps the switch off and says why', { skip }, async () => {
  const closed = await startServer(
    async () => ({
      info: engine.info,
      captionBatch: (i, o) => engine.captionBatch(i, o),
      dispose: async () => undefined,
    }),
    { port: 0, ...browserBuilds(), bundle: { none: 'sat serve runs with --no-bundle' } },
  );
  try {
    await closed.ready;
    const page = await browser.newPage();
    await page.goto(`${closed.url}/`);
    await page.waitForFunction(() => (document.getElementById('in-browser') as HTMLInputElement).disabled);
    assert.match(await page.locator('#in-browser-note').innerText(), /not available: sat serve runs with --no-bundle/);
    assert.equal((await fetch(`${closed.url}/v1/bundle/manifest.json`)).status, 404);
  } finally {
    await closed.close();
  }
});
