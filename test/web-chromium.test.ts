/**
 * The browser entry in a real browser: headless Chromium (Debian's /usr/bin/chromium through playwright-core)
 * opens a tiny page served from 127.0.0.1 that imports the esbuild bundle of src/web, loads an exported bundle
 * with onnxruntime-web (wasm files served next to the bundle, nothing from a CDN) and captions <img> elements
 * and image URLs; the captions must equal Node's (onnxruntime-node) for the same images. A screenshot of the
 * page is saved to out/web-chromium.png. Skipped with a message where chromium is not installed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { buildBundle, writeBundle } from '../src/export/bundle.js';
import { loadCaptioner } from '../src/models/load-captioner.js';
import { writeBrowserBuild } from '../scripts/build-browser.js';
import { makeCaptionRun, type CaptionFixture } from './helpers/export-fixture.js';
import { testNeeding } from './helpers/capabilities.js';
import { chromiumSkip, launchChromium, pageResult, staticServer } from './helpers/browser-fixture.js';

const SCREENSHOT = path.join('out', 'web-chromium.png');
let dir: string;
let fx: CaptionFixture;

const PAGE = `<!doctype html><meta charset="utf-8"><title>show-attend-tell in the browser</title>
<style>body{font:14px sans-serif;margin:16px} pre{white-space:pre-wrap} img{width:64px;height:64px;image-rendering:pixelated;border:1px solid #888;margin-right:8px}</style>
<h3>show-attend-tell/web: captions by onnxruntime-web</h3>
<div><img id="red" src="/images/red.png"><img id="blue" src="/images/blue.png"><img id="green" src="/images/green.png"></div>
<pre id="out">captioning...</pre>
<script type="module">
import { loadCaptioner } from '/web/show-attend-tell.mjs';
const out = document.getElementById('out');
try {
  const captioner = await loadCaptioner('/bundle/');
  const fromImg = [];
  for (const id of ['red', 'blue', 'green']) {
    const img = document.getElementById(id);
    await img.decode();
    fromImg.push(await captioner.caption(img, { beam: 3 }));
  }
  const fromUrl = await captioner.captionBatch(['/images/red.png', '/images/blue.png', '/images/green.png'], { beam: 3 });
  let refusal = null;
  try { await captioner.caption('/images/fake.png'); } catch (e) { refusal = e.message; }
  const show = (r) => ({ caption: r.caption, logProb: r.logProb, attentionSum: r.words[0].attention.reduce((a, b) => a + b, 0) });
  window.__result = { info: captioner.info, fromImg: fromImg.map(show), fromUrl: fromUrl.map(show), refusal };
  out.textContent = fromImg.map((r) => r.caption + '  (log p ' + r.logProb.toFixed(4) + ')').join('\\n') +
    '\\n\\nbackend ' + captioner.info.backend + ', model ' + captioner.info.modelId + '\\nundecodable image: ' + refusal;
  await captioner.dispose();
} catch (e) {
  window.__error = String(e && e.stack || e);
  out.textContent = window.__error;
}
</script>`;

before(async () => {
  if (chromiumSkip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-chromium-'));
  fx = await makeCaptionRun(path.join(dir, 'fixture'));
  writeBundle(path.join(dir, 'bundle'), await buildBundle(fx.run, { encoder: fx.encoder }));
  await writeBrowserBuild('web', path.join(dir, 'web')); // a fresh build of the current sources, as npm run build makes it
  fs.mkdirSync(path.join(dir, 'images'));
  for (const [name, file] of Object.entries(fx.images)) fs.copyFileSync(file, path.join(dir, 'images', `${name}.png`));
  fs.writeFileSync(path.join(dir, 'images', 'fake.png'), 'this is not a png');
});

after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

testNeeding(
  'chromium',
  chromiumSkip || null,
  'headless Chromium captions images with the bundle as Node does',
  async () => {
    const server = await staticServer(dir, PAGE);
    const url = server.url;
    const browser = await launchChromium({ width: 640, height: 300 });
    const node = await loadCaptioner(path.join(dir, 'bundle'));
    try {
      const page = await browser.newPage();
      const requests: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      await page.goto(url);
      const result = await pageResult(page);
      fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT });

      const want = await node.captionBatch(Object.values(fx.images), { beam: 3 });
      for (const got of [result.fromImg, result.fromUrl]) {
        assert.deepEqual(
          got.map((r: { caption: string }) => r.caption),
          want.map((r) => r.caption),
        );
        got.forEach((r: { logProb: number; attentionSum: number }, i: number) => {
          assert.ok(Math.abs(r.logProb - want[i].logProb) < 1e-4, `logProb ${r.logProb} vs ${want[i].logProb}`);
          assert.ok(Math.abs(r.attentionSum - 1) < 1e-4);
        });
      }
      assert.equal(result.info.backend, 'onnx-web');
      assert.match(result.refusal, /fake\.png: the browser cannot decode this image/);
      assert.ok(
        requests.every((r) => r.startsWith(url)),
        `only our server: ${requests.filter((r) => !r.startsWith(url))}`,
      );
      assert.ok(
        requests.some((r) => r.endsWith('/web/ort-wasm-simd-threaded.wasm')),
        'the wasm comes from our package, next to the bundle',
      );
    } finally {
      await node.dispose();
      await browser.close();
      await server.close();
    }
  },
);
