/**
 * The tiny captioner of the `sat serve` tests (test/helpers/tiny-model.ts): it says "a red square" for a red image and
 * "a blue circle" for a blue one; images to send it, and the checks the service tests share.
 */
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { buildBrowser } from '../../scripts/build-browser.js';
import type { CaptionServer } from '../../src/serve/server.js';
import { lazyFiles, type FileSource } from '../../src/serve/static-files.js';
import { makeTinyRun, RED_BLUE, type TinyRun } from './tiny-model.js';

export { SIZE } from './tiny-model.js';
export type TinyModel = TinyRun;

export const makeTinyModel = (dir: string): Promise<TinyModel> => makeTinyRun(dir, RED_BLUE, { steps: 300 });

/** A solid-colour image as PNG or JPEG bytes (any size: the server resizes). */
export function solidImage(colour: string, format: 'png' | 'jpeg' = 'png', width = 40, height = 30): Promise<Buffer> {
  const img = sharp({ create: { width, height, channels: 3, background: colour } });
  return (format === 'png' ? img.png() : img.jpeg()).toBuffer();
}

/**
 * A half red, half blue image (left red): the captioner says one of its two captions, with attention
 * that differs between words, which the page test needs to see the overlay change.
 */
export function splitImage(width = 64, height = 48): Promise<Buffer> {
  const half = Math.floor(width / 2);
  return sharp({ create: { width, height, channels: 3, background: '#1030e0' } })
    .composite([{ input: { create: { width: half, height, channels: 3, background: '#e01010' } }, left: 0, top: 0 }])
    .png()
    .toBuffer();
}

/** The page and the browser build of show-attend-tell/web made in memory from the sources (never a stale dist/). */
export const browserBuilds = (): { page: FileSource; webBuild: FileSource } => ({
  page: lazyFiles(() => buildBrowser('page')),
  webBuild: lazyFiles(() => buildBrowser('web')),
});

/** The refusal of `response`: its status and catalogue code checked, with a message and a fix; returns the error body. */
export async function refusal(response: Response, status: number, code: string) {
  const body = await response.json();
  assert.equal(response.status, status, JSON.stringify(body));
  assert.equal(body.error.code, code, JSON.stringify(body));
  assert.ok(body.error.message.length > 10 && body.error.fix.length > 10, JSON.stringify(body));
  return body.error;
}

/** Resolves once `ready()` holds, checking every 5 ms (instead of sleeping for a guessed time); fails after `ms`. */
export async function until(ready: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = performance.now() + ms;
  while (!(await ready())) {
    if (performance.now() > end) throw new Error(`not within ${ms} ms: ${ready.toString()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The value of the Prometheus gauge `name` on the server's /metrics. */
export const gauge = async (server: CaptionServer, name: string) =>
  Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await (await fetch(`${server.url}/metrics`)).text())?.[1]);
