/**
 * The shipped model in a browser: a plain static server serves a folder laid out as the installed package
 * (dist/web/show-attend-tell.mjs beside models/flickr8k-mobilenet-v2/, here a tiny bundle under that name), and a
 * page calls show-attend-tell/web's loadCaptioner() with no URL: it must find the bundle from the script's own
 * address (defaultModelUrl) and caption with it. Skipped with a message where chromium is not installed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DEFAULT_MODEL_NAME } from '../src/models/default-model.js';
import { writeBrowserBuild } from '../scripts/build-browser.js';
import { makeBundleFixture, type BundleFixture } from './helpers/models-fixture.js';
import { CHROMIUM_FLAGS } from '../src/bench/chromium-flags.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
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
  if (!haveChromium) return;
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

const TYPES: Record<string, string> = {
  '.mjs': 'text/javascript',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
};

test(
  "show-attend-tell/web loadCaptioner() finds the shipped bundle in the package's files",
  { skip: haveChromium ? false : `${CHROMIUM} is not installed (apt-get install chromium)` },
  async () => {
    const site = path.join(dir, 'site');
    const server = http.createServer((req, res) => {
      const pathname = decodeURIComponent(new URL(req.url!, 'http://x').pathname);
      if (pathname === '/') {
        res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
        return;
      }
      const file = path.join(site, pathname);
      if (!file.startsWith(site + path.sep) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
        res.writeHead(404).end();
        return;
      }
      res
        .writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' })
        .end(fs.readFileSync(file));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const { chromium } = await import('playwright-core');
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-models-web-profile-'));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_FLAGS],
    });
    try {
      const page = await browser.newPage();
      await page.goto(url);
      await page.waitForFunction(() => (window as any).__result || (window as any).__error, undefined, {
        timeout: 60_000,
      });
      const error = await page.evaluate(() => (window as any).__error);
      assert.equal(error, undefined, error);
      const result = await page.evaluate(() => (window as any).__result);
      assert.equal(result.source, `${url}node_modules/show-attend-tell/models/${DEFAULT_MODEL_NAME}/`);
      assert.equal(result.modelId, fx.id);
      assert.equal(result.caption, 'a red square');
    } finally {
      await browser.close();
      fs.rmSync(profile, { recursive: true, force: true });
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  },
);
