/**
 * `sat export --site DIR` (src/web/site-build.ts): a static captioning site that needs no server of ours. A plain
 * static file server (node:http, files of DIR by path, nothing else) serves it; headless Chromium (Debian's
 * /usr/bin/chromium through playwright-core) opens the page, picks an image through the file input, and the page
 * must caption it as Node does with the same bundle, with an attention map for every word. Only the static server
 * is contacted. A screenshot with the first word's attention laid over the image goes to out/site-static.png.
 * The Chromium part is skipped with a message where chromium is not installed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { buildBundle, writeBundle } from '../src/export/bundle.js';
import { loadCaptioner } from '../src/models/load-captioner.js';
import { sat } from './helpers/cli-run.js';
import { makeCaptionRun, type CaptionFixture } from './helpers/export-fixture.js';
import { chromiumSkip, launchChromium, staticServer } from './helpers/browser-fixture.js';
import { pageHtml, renderPageHtml } from '../src/web/page-html.js';

const SCREENSHOT = path.join('out', 'site-static.png');
let dir: string;
let fx: CaptionFixture;
let site: string;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-site-'));
  fx = await makeCaptionRun(path.join(dir, 'fixture'));
  site = path.join(dir, 'site');
  await sat(['export', '--model', fx.run, '--site', site, '--dtype', 'int8', ...encoderFlags()]);
});

after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function encoderFlags(): string[] {
  const e = fx.encoder;
  return [
    '--encoder',
    e.encoder!,
    '--encoder-size',
    String(e.size),
    '--encoder-scaling',
    String(e.scaling),
    '--encoder-layout',
    String(e.layout),
  ];
}

test('sat export --site writes the page, the runtime and the bundle; a bundle folder makes a site too; bad input is refused', async () => {
  for (const name of [
    'index.html',
    'app.js',
    'style.css',
    'ort-wasm-simd-threaded.mjs',
    'ort-wasm-simd-threaded.wasm',
    'model/manifest.json',
    'model/encoder.onnx',
    'model/decoder-init.onnx',
    'model/decoder-step.onnx',
  ]) {
    assert.ok(fs.existsSync(path.join(site, name)), `${name} in the site`);
  }
  const html = fs.readFileSync(path.join(site, 'index.html'), 'utf8');
  assert.ok(!/(src|href)="\//.test(html), 'relative URLs only, so the site works from any folder of a static host');
  assert.equal(JSON.parse(fs.readFileSync(path.join(site, 'model', 'manifest.json'), 'utf8')).dtype, 'int8');

  const bundle = path.join(dir, 'bundle');
  writeBundle(bundle, await buildBundle(fx.run, { encoder: fx.encoder }));
  const fromBundle = path.join(dir, 'site-from-bundle');
  await sat(['export', '--model', bundle, '--site', fromBundle]);
  assert.equal(
    fs
      .readFileSync(path.join(fromBundle, 'model', 'encoder.onnx'))
      .compare(fs.readFileSync(path.join(bundle, 'encoder.onnx'))),
    0,
  );
  await assert.rejects(
    sat(['export', '--model', bundle, '--site', fromBundle, '--dtype', 'int8']),
    /is a fp32 bundle with its own encoder, card and memory: --dtype.* do not apply/,
  );
  await assert.rejects(sat(['export', '--model', bundle, '--out', path.join(dir, 'copy')]), /already a bundle/);
  await assert.rejects(sat(['export', '--model', fx.run]), /--out DIR \(a bundle folder\) or --site DIR/);
  fs.writeFileSync(path.join(dir, 'a-file'), 'x');
  await assert.rejects(
    sat(['export', '--model', bundle, '--site', path.join(dir, 'a-file')]),
    /is a file; pass a folder/,
  );
});

test('both pages come from one template: the lines they share are the same, each keeps only its own marked lines', () => {
  const template = ['<a>', '<b><!--served-->', '<c><!--site-->', '<d>'].join('\n');
  assert.equal(renderPageHtml(template, 'served'), '<a>\n<b>\n<d>');
  assert.equal(renderPageHtml(template, 'site'), '<a>\n<c>\n<d>');
  const served = pageHtml('served'),
    site = pageHtml('site');
  for (const html of [served, site]) {
    assert.ok(!/<!--(served|site)-->/.test(html), 'no marker left');
    assert.ok(!html.includes('The one page of both builds'), "the template's note is dropped");
    for (const id of [
      'model',
      'drop',
      'file',
      'choose',
      'beam',
      'consensus',
      'status',
      'result',
      'photo',
      'heat',
      'words',
    ])
      assert.ok(html.includes(`id="${id}"`), `#${id} on both pages (captionPageElements)`);
  }
  assert.match(served, /id="in-browser"/);
  assert.ok(!site.includes('id="in-browser"'), 'the site runs in the browser only: no switch');
  assert.ok(!/(src|href)="\//.test(site), 'the site has relative URLs only');
  assert.match(served, /src="\/assets\/app\.js"/);
});

test(
  "the static site captions a picked image in headless Chromium as Node does, with every word's attention",
  { skip: chromiumSkip },
  async () => {
    const server = await staticServer(site);
    const browser = await launchChromium({ width: 720, height: 860 });
    const node = await loadCaptioner(path.join(site, 'model'));
    try {
      const page = await browser.newPage();
      const requests: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(server.url);
      await page.waitForFunction(
        () =>
          document.body.dataset.ready === 'true' || /could not/.test(document.getElementById('model')!.textContent!),
        undefined,
        { timeout: 60_000 },
      );
      assert.match((await page.textContent('#model')) ?? '', /^model \S+ · encoder pool4-features-\w+ · attention 4×4/);
      assert.equal(await page.locator('#consensus-switch').isHidden(), true, 'no caption memory, no consensus switch');

      await page.setInputFiles('#file', fx.images.blue);
      await page.waitForFunction(
        () =>
          document.body.dataset.caption !== undefined || document.getElementById('status')!.classList.contains('error'),
        undefined,
        { timeout: 60_000 },
      );
      assert.deepEqual(errors, []);
      const status = await page.textContent('#status');
      assert.match(status ?? '', /captioned in \d+ ms in this browser/);
      const caption = await page.evaluate(() => document.body.dataset.caption);
      const want = await node.caption(fx.images.blue, { beam: 3, alternatives: true });
      assert.equal(caption, want.caption);
      const words = await page.$$eval('#words .word', (bs) => bs.map((b) => b.textContent));
      assert.deepEqual(
        words,
        want.words.map((w) => w.word),
      );
      const alternatives = await page.$$eval('#alternatives li', (lis) => lis.map((li) => li.firstChild!.textContent));
      assert.deepEqual(
        alternatives,
        want.alternatives.map((a) => a.caption || '(empty)'),
      );

      // Hovering a word lays its attention over the image: the heat canvas is no longer blank.
      await page.hover('#words .word >> nth=0');
      const painted = await page.evaluate(() => {
        const c = document.getElementById('heat') as HTMLCanvasElement;
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let alpha = 0;
        for (let i = 3; i < d.length; i += 4) alpha += d[i];
        return alpha / (d.length / 4);
      });
      assert.ok(painted > 20, `mean heat-map alpha ${painted}`);
      fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });

      assert.ok(
        requests.every((r) => r.startsWith(server.url)),
        `only the static server: ${requests.filter((r) => !r.startsWith(server.url))}`,
      );
      assert.ok(
        requests.some((r) => r.endsWith('/ort-wasm-simd-threaded.wasm')),
        'the wasm comes from the site',
      );
      assert.ok(
        requests.some((r) => r.endsWith('/model/decoder-step.onnx')),
        'the bundle comes from the site',
      );
    } finally {
      await node.dispose();
      await browser.close();
      await server.close();
    }
  },
);
