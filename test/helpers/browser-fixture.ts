/**
 * Headless Chromium for the browser tests (models-web, web-chromium, site-static, serve-page): where it is, the
 * reason a test skips without it, its launch (the flags of src/bench/chromium-flags.ts, a throw-away profile), a plain
 * static file server on 127.0.0.1 and a random port for the pages they load, and the result a test page reports.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { CHROMIUM_FLAGS } from '../../src/bench/chromium-flags.js';

export const CHROMIUM = process.env.SAT_CHROMIUM ?? '/usr/bin/chromium';
/** False where Chromium is installed; else why the browser tests skip. */
export const chromiumSkip: false | string = fs.existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set SAT_CHROMIUM)`;

/** Headless Chromium on a fresh profile, removed by its close(). */
export async function launchChromium(viewport?: { width: number; height: number }): Promise<BrowserContext> {
  const { chromium } = await import('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-chromium-profile-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_FLAGS],
    ...(viewport ? { viewport } : {}),
  });
  const close = browser.close.bind(browser);
  browser.close = async (options) => {
    await close(options);
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return browser;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.mjs': 'text/javascript',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
};

export interface StaticServer {
  /** http://127.0.0.1:PORT/ */
  url: string;
  close(): Promise<void>;
}

/**
 * GET of the files under `root` by path (a folder's index.html for a folder); `/` answers `page` when given. Anything
 * else, or outside `root`, is 404.
 */
export async function staticServer(root: string, page?: string): Promise<StaticServer> {
  const server = http.createServer((req, res) => {
    const pathname = decodeURIComponent(new URL(req.url!, 'http://x').pathname);
    if (page !== undefined && pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(page);
      return;
    }
    let file = path.join(root, pathname);
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
    if (!file.startsWith(root + path.sep) || !fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res
      .writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' })
      .end(fs.readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** What a test page sets as window.__result; its window.__error (a failure inside the page) fails the test. */
export async function pageResult(page: Page): Promise<any> {
  await page.waitForFunction(() => (window as any).__result || (window as any).__error, undefined, {
    timeout: 60_000,
  });
  const error = await page.evaluate(() => (window as any).__error);
  assert.equal(error, undefined, error);
  return page.evaluate(() => (window as any).__result);
}

/**
 * On the `sat serve` page with a caption shown: switch "caption in this browser" on and wait for its verdict line
 * ("same as the server", "differs ..." or "could not ..."), which it returns.
 */
export async function inBrowserVerdict(page: Page): Promise<string> {
  await page.locator('#in-browser').check();
  await page.waitForFunction(
    () => /same as|differs|could not/.test(document.getElementById('browser-caption')?.textContent ?? ''),
    null,
    { timeout: 100_000 },
  );
  return page.locator('#browser-caption').innerText();
}
