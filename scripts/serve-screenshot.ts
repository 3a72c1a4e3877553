/**
 * The README's picture of the `sat serve` page: serve a model, caption one image in headless Chromium, also in
 * the browser (the export bundle on onnxruntime-web), point at one word, and save a screenshot.
 *
 *   node --import tsx scripts/serve-screenshot.ts --model RUN --encoder-weights DIR --image IMG.jpg --word dog --out docs/serve.png
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { buildBundle } from '../src/export/bundle.js';
import { loadCaptionerEngine } from '../src/serve/captioner-adapter.js';
import { startServer } from '../src/serve/server.js';
import { bundleFiles, lazyFiles } from '../src/serve/static-files.js';
import { CHROMIUM_FLAGS } from '../src/bench/chromium-flags.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    'encoder-weights': { type: 'string' },
    image: { type: 'string' },
    word: { type: 'string' },
    out: { type: 'string', default: 'docs/serve.png' },
    width: { type: 'string', default: '820' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
if (!values.model || !values.image)
  throw new Error(
    'usage: scripts/serve-screenshot.ts --model RUN --image IMG [--encoder-weights DIR] [--word W] [--out PNG]',
  );

const encoder = values['encoder-weights'] ? { weights: values['encoder-weights'] } : undefined;
const engine = await loadCaptionerEngine(values.model, { encoder });
const model = values.model;
const server = await startServer(async () => engine, {
  port: 0,
  bundle: lazyFiles(async () => bundleFiles(await buildBundle(model, { encoder }))),
});
await server.ready;
// one request first, so the page shows warm timings
await fetch(`${server.url}/v1/captions`, {
  method: 'POST',
  headers: { 'content-type': 'image/jpeg' },
  body: new Uint8Array(fs.readFileSync(values.image)),
});
const browser = await chromium.launch({
  executablePath: values.chromium,
  headless: true,
  args: [...CHROMIUM_FLAGS],
});
try {
  const page = await browser.newPage({ viewport: { width: Number(values.width), height: 900 } });
  await page.goto(`${server.url}/`);
  await page.waitForFunction(() => (document.getElementById('beam') as HTMLSelectElement).options.length > 0);
  await page.locator('#in-browser').check();
  await page.setInputFiles('#file', values.image);
  await page.waitForSelector('#words .word');
  await page.waitForFunction(
    () => /same as|differs|could not/.test(document.getElementById('browser-caption')?.textContent ?? ''),
    null,
    { timeout: 300_000 },
  );
  const words = await page.locator('#words .word').allTextContents();
  const index = Math.max(0, values.word ? words.indexOf(values.word) : 1);
  await page.locator('#words .word').nth(index).click();
  await page.mouse.move(0, 0);
  fs.mkdirSync(path.dirname(values.out!), { recursive: true });
  await page.screenshot({ path: values.out, fullPage: true });
  console.log(
    `${values.out}: "${words.join(' ')}", showing "${words[index]}"; in the browser: ${await page.locator('#browser-caption').innerText()}`,
  );
} finally {
  await browser.close();
  await server.close();
}
