/**
 * `sat bench browser --model BUNDLE --images DIR` (flags parsed in src/cli/bench.ts): milliseconds per image (decode + resize + encoder + beam 3) in
 * headless Chromium with onnxruntime-web, next to the same bundle on onnxruntime-node and (with --checkpoint)
 * the native backend in Node, measured in the same run on the same images.
 *
 * The page is served from 127.0.0.1 (random port) twice: plainly (single-threaded wasm) and cross-origin
 * isolated (COOP/COEP headers, so SharedArrayBuffer and wasm threads are available; numThreads = cores).
 * Each image is fetched into a Blob first (no network in the timing), then captioned `runs` times after
 * `warmup` untimed captions; the median and other quantiles are over all timed captions.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { CaptionOptions } from '../decode/options.js';
import { checkpointWeightsFile } from '../checkpoint/checkpoint.js';
import { checkpointSha256 } from '../checkpoint/source.js';
import type { EncoderOptions } from '../encoders/registry.js';
import { readManifest } from '../export/bundle-folder.js';
import { loadCaptioner } from '../models/load-captioner.js';
import { UserError } from '../util/errors.js';
import { packageRoot } from '../util/package-files.js';
import { CHROMIUM_FLAGS } from './chromium-flags.js';

export interface BrowserBenchOptions {
  /** Bundle folder (sat export). */
  bundle: string;
  /** Folder of images: the first `count` JPEG/PNG files by name are timed. */
  images: string;
  count: number;
  beam: number;
  /** Consensus reranking with this many neighbours (the bundle needs a caption memory); absent: off. */
  consensus?: number;
  /** Chromium executable. */
  chromium: string;
  /** The checkpoint the bundle came from, to time the native backend too. */
  checkpoint?: string;
  /** Encoder options for `checkpoint` (e.g. a weights folder). */
  encoder?: EncoderOptions;
}

export const BROWSER_BENCH_DEFAULTS = { count: 20, beam: 3, chromium: '/usr/bin/chromium' } as const;

export interface Timing {
  median: number;
  p10: number;
  p90: number;
  n: number;
}
export interface BrowserBenchResult {
  bundle: string;
  images: number;
  beam: number;
  consensus: number | null;
  cores: number;
  browser: { singleThread: Timing & { threads: number }; isolated: (Timing & { threads: number }) | { error: string } };
  onnxNode: Timing;
  native: Timing | null;
  captionsAgree: { browserVsOnnxNode: number; nativeVsOnnxNode: number | null };
  /** The images whose browser caption is not onnxruntime-node's, with both captions. */
  browserDifferences: { image: string; browser: string; onnxNode: string }[];
  /** Whether --checkpoint is the file the bundle was exported from (SHA-256 in the manifest); else captions may differ. */
  checkpointIsBundleSource: boolean | null;
}

function stats(ms: number[]): Timing {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { median: q(0.5), p10: q(0.1), p90: q(0.9), n: s.length };
}

/** dist/web of this package (the browser build of show-attend-tell/web). */
function webDist(): string {
  const web = path.join(packageRoot(), 'dist', 'web');
  if (!fs.existsSync(path.join(web, 'show-attend-tell.mjs')))
    throw new UserError(`${web}/show-attend-tell.mjs is missing: run \`npm run build\` first.`);
  return web;
}

type Chromium = (typeof import('playwright-core'))['chromium'];

/** playwright-core's Chromium driver: a development dependency, so an installed package may lack it. */
async function chromiumDriver(): Promise<Chromium> {
  try {
    return (await import('playwright-core')).chromium;
  } catch (e) {
    if ((e as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw e;
    throw new UserError(
      'sat bench browser drives Chromium with playwright-core, which is not installed (it is a development ' +
        'dependency of show-attend-tell): run `npm install playwright-core` where show-attend-tell is installed, or run from a clone with `npm ci`.',
    );
  }
}

const page = (
  images: string[],
  options: CaptionOptions,
  warmup: number,
  runs: number,
  isolated: boolean,
) => `<!doctype html><meta charset="utf-8"><pre id="out">benchmarking...</pre>
<script type="module">
import { loadCaptioner } from '/web/show-attend-tell.mjs';
try {
  const threads = ${isolated} ? navigator.hardwareConcurrency : 1;
  const captioner = await loadCaptioner('/bundle/', { numThreads: threads });
  const blobs = await Promise.all(${JSON.stringify(images)}.map(async (u) => (await fetch(u)).blob()));
  for (let i = 0; i < ${warmup}; i++) await captioner.caption(blobs[i % blobs.length], ${JSON.stringify(options)});
  const ms = [], captions = [];
  for (let r = 0; r < ${runs}; r++) {
    for (const blob of blobs) {
      const t0 = performance.now();
      const c = await captioner.caption(blob, ${JSON.stringify(options)});
      ms.push(performance.now() - t0);
      if (r === 0) captions.push(c.caption);
    }
  }
  window.__result = { ms, captions, threads, crossOriginIsolated: self.crossOriginIsolated };
  document.getElementById('out').textContent = JSON.stringify(window.__result);
} catch (e) { window.__error = String(e && e.stack || e); }
</script>`;

/** The bench page, onnxruntime-web's files, the bundle and the images on 127.0.0.1 (random port) until closed. */
async function benchServer(
  web: string,
  bundle: string,
  files: string[],
  html: string,
  isolated: boolean,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const p = decodeURIComponent(new URL(req.url!, 'http://x').pathname);
    const headers: Record<string, string> = isolated
      ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' }
      : {};
    let file: string | null = null;
    if (p === '/') {
      res.writeHead(200, { ...headers, 'content-type': 'text/html' }).end(html);
      return;
    }
    if (p.startsWith('/web/')) file = path.join(web, path.basename(p));
    else if (p.startsWith('/bundle/')) file = path.join(bundle, path.basename(p));
    else if (p.startsWith('/images/')) file = files[Number(path.basename(p, path.extname(p)))] ?? null;
    if (!file || !fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    const type = p.endsWith('.mjs')
      ? 'text/javascript'
      : p.endsWith('.wasm')
        ? 'application/wasm'
        : p.endsWith('.json')
          ? 'application/json'
          : 'application/octet-stream';
    res.writeHead(200, { ...headers, 'content-type': type }).end(fs.readFileSync(file));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

async function timeInBrowser(
  chromium: Chromium,
  chromiumPath: string,
  web: string,
  bundle: string,
  files: string[],
  options: CaptionOptions,
  isolated: boolean,
) {
  const imageUrls = files.map((_, i) => `/images/${i}${path.extname(files[i])}`);
  const server = await benchServer(web, bundle, files, page(imageUrls, options, 3, 2, isolated), isolated);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-bench-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      args: [...CHROMIUM_FLAGS],
    });
    try {
      const tab = await context.newPage();
      await tab.goto(server.url);
      await tab.waitForFunction(() => (window as any).__result || (window as any).__error, undefined, {
        timeout: 600_000,
        polling: 500,
      });
      const error = await tab.evaluate(() => (window as any).__error);
      if (error) throw new Error(`in the browser: ${error}`);
      return (await tab.evaluate(() => (window as any).__result)) as {
        ms: number[];
        captions: string[];
        threads: number;
        crossOriginIsolated: boolean;
      };
    } finally {
      await context.close();
    }
  } finally {
    fs.rmSync(profile, { recursive: true, force: true });
    await server.close();
  }
}

async function timeInNode(
  source: string,
  files: string[],
  options: CaptionOptions,
  opts: Parameters<typeof loadCaptioner>[1],
) {
  const captioner = await loadCaptioner(source, opts);
  try {
    for (let i = 0; i < 3; i++) await captioner.caption(files[i % files.length], options);
    const ms: number[] = [],
      captions: string[] = [];
    for (let r = 0; r < 2; r++) {
      for (const file of files) {
        const t0 = performance.now();
        const c = await captioner.caption(file, options);
        ms.push(performance.now() - t0);
        if (r === 0) captions.push(c.caption);
      }
    }
    return { ms, captions };
  } finally {
    await captioner.dispose();
  }
}

export async function runBrowserBench(opts: BrowserBenchOptions): Promise<BrowserBenchResult> {
  const { bundle, beam } = opts;
  const options: CaptionOptions = { beam, ...(opts.consensus ? { consensus: opts.consensus } : {}) };
  const manifest = readManifest(bundle);
  if (!fs.existsSync(opts.images))
    throw new UserError(`--images ${opts.images} does not exist: pass a folder of JPEG/PNG images.`);
  const chromiumPath = opts.chromium;
  if (!fs.existsSync(chromiumPath))
    throw new UserError(
      `${chromiumPath} does not exist: install Chromium (apt-get install chromium) or pass --chromium PATH.`,
    );
  const files = fs
    .readdirSync(opts.images)
    .filter((f) => /\.(jpe?g|png)$/i.test(f))
    .sort()
    .slice(0, opts.count)
    .map((f) => path.join(opts.images, f));
  if (files.length === 0) throw new UserError(`--images ${opts.images} holds no JPEG/PNG files.`);
  const web = webDist();
  const chromium = await chromiumDriver();
  const single = await timeInBrowser(chromium, chromiumPath, web, bundle, files, options, false);
  let isolated: BrowserBenchResult['browser']['isolated'];
  try {
    const r = await timeInBrowser(chromium, chromiumPath, web, bundle, files, options, true);
    isolated = { ...stats(r.ms), threads: r.crossOriginIsolated ? r.threads : 1 };
  } catch (e) {
    isolated = { error: (e as Error).message.split('\n')[0] };
  }
  const onnxNode = await timeInNode(bundle, files, options, { backend: 'onnx' });
  const checkpoint = opts.checkpoint;
  const native = checkpoint
    ? await timeInNode(checkpoint, files, options, { backend: 'native', encoder: opts.encoder })
    : null;
  const agree = (a: string[], b: string[]) => a.filter((x, i) => x === b[i]).length;
  let checkpointIsBundleSource: boolean | null = null;
  if (checkpoint) {
    const file = checkpointWeightsFile(checkpoint);
    checkpointIsBundleSource = checkpointSha256(file) === manifest.source.sha256;
  }
  return {
    checkpointIsBundleSource,
    bundle,
    images: files.length,
    beam,
    consensus: opts.consensus ?? null,
    cores: os.cpus().length,
    browser: { singleThread: { ...stats(single.ms), threads: single.threads }, isolated },
    onnxNode: stats(onnxNode.ms),
    native: native ? stats(native.ms) : null,
    captionsAgree: {
      browserVsOnnxNode: agree(single.captions, onnxNode.captions),
      nativeVsOnnxNode: native ? agree(native.captions, onnxNode.captions) : null,
    },
    browserDifferences: files.flatMap((file, i) =>
      single.captions[i] === onnxNode.captions[i]
        ? []
        : [{ image: path.basename(file), browser: single.captions[i], onnxNode: onnxNode.captions[i] }],
    ),
  };
}

export function formatBrowserBench(r: BrowserBenchResult): string {
  const row = (name: string, t: Timing | { error: string } | null) =>
    t === null
      ? `${name.padEnd(44)} (not run)`
      : 'error' in t
        ? `${name.padEnd(44)} failed: ${t.error}`
        : `${name.padEnd(44)} ${t.median.toFixed(1).padStart(8)} ${t.p10.toFixed(1).padStart(8)} ${t.p90.toFixed(1).padStart(8)}   ${t.n}`;
  const iso = r.browser.isolated;
  return [
    `${r.images} images x 2 runs, beam ${r.beam}${r.consensus ? `, consensus ${r.consensus}` : ''}, ${r.cores} cores; ms per image (decode + resize + encoder + ${r.consensus ? 'beam search, samples and reranking' : 'beam search'})`,
    `${'backend'.padEnd(44)} ${'median'.padStart(8)} ${'p10'.padStart(8)} ${'p90'.padStart(8)}   n`,
    row(`Chromium, onnxruntime-web wasm, ${r.browser.singleThread.threads} thread`, r.browser.singleThread),
    row(`Chromium, cross-origin isolated, ${'threads' in iso ? iso.threads : '?'} threads`, iso),
    row('Node, onnxruntime-node (2 threads)', r.onnxNode),
    row('Node, native addon + onnxruntime-node encoder', r.native),
    `captions equal to onnxruntime-node's: browser ${r.captionsAgree.browserVsOnnxNode}/${r.images}` +
      (r.captionsAgree.nativeVsOnnxNode === null ? '' : `, native ${r.captionsAgree.nativeVsOnnxNode}/${r.images}`) +
      (r.checkpointIsBundleSource === false
        ? ' (--checkpoint is not the checkpoint the bundle was exported from)'
        : ''),
    ...r.browserDifferences.map((d) => `  ${d.image}: browser "${d.browser}", onnxruntime-node "${d.onnxNode}"`),
  ].join('\n');
}
