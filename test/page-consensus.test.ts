/**
 * Both captioning pages with a model that has a caption memory (`sat export --memory`), in headless Chromium:
 * the "rerank by consensus" switch is shown and on, the caption is the one Node's loadCaptioner reranks with the
 * page's neighbours (PAGE_CONSENSUS) and default samples, the list says the candidates are ranked by consensus, and
 * switching it off gives the plain beam caption again. The `sat serve` page's "caption in this browser" reranks in
 * the browser and agrees with the server. A model without a memory shows no switch (serve-page and site-static
 * tests). Screenshots go to out/test/page-consensus-*.png. Skipped where chromium is not installed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import sharp from 'sharp';
import { prepareRun } from '../src/dataset/prepare.js';
import { loadCaptioner } from '../src/models/load-captioner.js';
import { loadCaptionerEngine } from '../src/serve/captioner-adapter.js';
import { startServer, type CaptionServer } from '../src/serve/server.js';
import { bundleFolderFiles, lazyFiles } from '../src/serve/static-files.js';
import { PAGE_CONSENSUS } from '../src/web/page/caption-page.js';
import {
  chromiumSkip,
  inBrowserVerdict,
  launchChromium,
  staticServer,
  type StaticServer,
} from './helpers/browser-fixture.js';
import { sat } from './helpers/cli-run.js';
import { browserBuilds } from './helpers/serve-fixture.js';
import { makeTinyRun, RED_BLUE } from './helpers/tiny-model.js';

const SHOTS = path.resolve('out', 'test');
const skip = chromiumSkip;

let dir: string, bundle: string, image: string;
let browser: BrowserContext;
let served: CaptionServer;
let site: StaticServer;

before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-page-consensus-'));
  const launched = launchChromium({ width: 900, height: 900 });
  const tiny = await makeTinyRun(path.join(dir, 'tiny'), RED_BLUE, { steps: 40 });
  const shapes = path.join(dir, 'shapes');
  await prepareRun({ dataset: 'shapes', out: shapes, images: 24, imageSize: 32, seed: 4, silent: true });
  await sat(['features', '--run', shapes, ...tiny.encoderFlags]);
  bundle = path.join(dir, 'bundle');
  await sat(['export', '--model', tiny.run, '--memory', shapes, '--out', bundle, ...tiny.encoderFlags]);
  await sat(['export', '--model', bundle, '--site', path.join(dir, 'site')]);
  image = path.join(dir, 'half.png');
  await sharp({ create: { width: 32, height: 24, channels: 3, background: '#e01010' } })
    .composite([{ input: { create: { width: 16, height: 24, channels: 3, background: '#1030e0' } }, left: 16, top: 0 }])
    .png()
    .toFile(image);
  const engine = await loadCaptionerEngine(bundle, { backend: 'onnx' });
  served = await startServer(async () => engine, {
    port: 0,
    ...browserBuilds(),
    bundle: lazyFiles(async () => bundleFolderFiles(bundle)),
  });
  site = await staticServer(path.join(dir, 'site'));
  await served.ready;
  browser = await launched;
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await served?.close();
  await site?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

interface Shown {
  caption: string;
  /** The listed candidates' captions, best first. */
  alternatives: string[];
  heading?: string;
}

/** Node's caption of the test image: reranked as the pages ask (beam 3, PAGE_CONSENSUS neighbours), or plain. */
async function nodeCaption(reranked: boolean): Promise<Shown> {
  const node = await loadCaptioner(bundle);
  try {
    const options = { beam: 3, alternatives: true, ...(reranked ? { consensus: PAGE_CONSENSUS } : {}) };
    const result = await node.caption(image, options);
    return {
      caption: result.caption,
      alternatives: result.alternatives.map((a) => a.caption),
      heading: reranked ? 'Candidates ranked by consensus' : 'Beam alternatives',
    };
  } finally {
    await node.dispose();
  }
}

/** Picks the test image and waits for its caption's words; returns them, the listed candidates and their heading. */
async function captionOnPage(page: Page): Promise<Shown> {
  await page.evaluate(() => document.getElementById('words')!.replaceChildren());
  // a file input fires no change for the file it already holds: clear it first
  await page.setInputFiles('#file', []);
  await page.setInputFiles('#file', image);
  await page.waitForFunction(
    () =>
      document.querySelector('#words .word') !== null || document.getElementById('status')!.classList.contains('error'),
    undefined,
    { timeout: 60_000 },
  );
  assert.doesNotMatch((await page.textContent('#status')) ?? '', /went wrong|could not|refused/);
  const words = await page.$$eval('#words .word', (bs) => bs.map((b) => b.textContent));
  return {
    caption: words.join(' '),
    alternatives: await page.$$eval('#alternatives li', (lis) => lis.map((li) => li.firstChild?.textContent ?? '')),
    heading: (await page.textContent('#alternatives-title')) ?? '',
  };
}

test(
  'the sat serve page reranks by consensus with a memory model, off on request; the browser agrees',
  { skip, timeout: 120_000 },
  async () => {
    const [reranked, plain] = [await nodeCaption(true), await nodeCaption(false)];
    assert.notDeepEqual(reranked.alternatives, plain.alternatives, 'consensus ranks other candidates than the beam');
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const asked: string[] = [];
    page.on('request', (r) => asked.push(r.url()));
    await page.goto(`${served.url}/`);
    await page.waitForFunction(() => !document.getElementById('consensus-switch')!.hidden);
    assert.equal(await page.locator('#consensus').isChecked(), true, 'on by default');

    assert.deepEqual(await captionOnPage(page), reranked);
    assert.ok(asked.some((u) => u.includes(`/v1/captions?`) && u.includes(`consensus=${PAGE_CONSENSUS}`)));
    const verdict = await inBrowserVerdict(page);
    await page.screenshot({ path: path.join(SHOTS, 'page-consensus-served.png'), fullPage: true });
    assert.match(verdict, /same as the server/, verdict);
    assert.ok(
      asked.some((u) => u.endsWith('/v1/bundle/memory-vectors.bin')),
      'the browser fetched the memory',
    );

    await page.locator('#in-browser').uncheck();
    await page.locator('#consensus').uncheck();
    assert.deepEqual(await captionOnPage(page), plain);
    assert.deepEqual(errors, []);
  },
);

test(
  'the static site of a memory bundle reranks by consensus in the browser as Node does, off on request',
  { skip, timeout: 120_000 },
  async () => {
    const [reranked, plain] = [await nodeCaption(true), await nodeCaption(false)];
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(site.url);
    await page.waitForFunction(() => document.body.dataset.ready === 'true', undefined, { timeout: 60_000 });
    assert.equal(await page.locator('#consensus-switch').isHidden(), false);
    assert.equal(await page.locator('#consensus').isChecked(), true, 'on by default');

    assert.deepEqual(await captionOnPage(page), reranked);
    await page.screenshot({ path: path.join(SHOTS, 'page-consensus-site.png'), fullPage: true });
    await page.locator('#consensus').uncheck();
    assert.deepEqual(await captionOnPage(page), plain);
    assert.deepEqual(errors, []);
  },
);
