/**
 * The shipped model in a browser: a plain static server serves a folder laid out as the installed package
 * (dist/web/show-attend-tell.mjs beside models/flickr8k-mobilenet-v2/, here a tiny bundle under that name), and a
 * page calls show-attend-tell/web's loadCaptioner() with no URL: it must find the bundle from the script's own
 * address (defaultModelUrl) and caption with it. Skipped with a message where chromium is not installed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DEFAULT_MODEL_NAME } from '../src/models/default-model.js';
import { writeBrowserBuild } from '../scripts/build-browser.js';
import { makeBundleFixture, type BundleFixture } from './helpers/models-fixture.js';
import { chromiumSkip, launchChromium, pageResult, staticServer } from './helpers/browser-fixture.js';

let dir: string;
let pkg: string;
let fx: BundleFixture;

const PAGE = `<!doctype html><meta charset="utf-8"><title>the shipped model</title>
<script type="module">
import { loadCaptioner } from '/node_modules/show-attend-tell/dist/web/show-attend-tell.mjs';
try {
  const captioner = await loadCaptioner();
  const { caption } = await captioner.caption('/images/red.png');
  window.__result = { caption, source: captioner.info.source, modelId: captioner.info.modelId };
  await captioner.dispose();
} catch (e) {
  window.__error = String(e && e.stack || e);
}
</script>`;

before(async () => {
  if (chromiumSkip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-models-web-'));
  fx = await makeBundleFixture(path.join(dir, 'fixture'));
  pkg = path.join(dir, 'site', 'node_modules', 'show-attend-tell');
  await writeBrowserBuild('web', path.join(pkg, 'dist', 'web'));
  fs.cpSync(fx.bundle, path.join(pkg, 'models', DEFAULT_MODEL_NAME), { recursive: true });
  fs.mkdirSync(path.join(dir, 'site', 'images'));
  fs.copyFileSync(fx.images.red, path.join(dir, 'site', 'images', 'red.png'));
});

after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test(
  "show-attend-tell/web loadCaptioner() finds the shipped bundle in the package's files",
  { skip: chromiumSkip },
  async () => {
    const server = await staticServer(path.join(dir, 'site'), PAGE);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(server.url);
      const result = await pageResult(page);
      assert.equal(result.source, `${server.url}node_modules/show-attend-tell/models/${DEFAULT_MODEL_NAME}/`);
      assert.equal(result.modelId, fx.id);
      assert.equal(result.caption, 'a red square');
    } finally {
      await browser.close();
      await server.close();
    }
  },
);
