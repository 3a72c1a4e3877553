/**
 * Models from a URL (src/models/install.ts) against a local server on 127.0.0.1: a bundle installs once into the
 * cache (redirects followed, a pinned manifest SHA-256 checked) and loads by URL or name; a wrong hash, a truncated
 * file, a server that stops mid-file, too many redirects, a page that is not a bundle and a newer format are each
 * refused with the cause and the fix, and leave nothing in the cache. `sat models` lists, installs and removes.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import { installModelFromUrl, parseModelUrl } from '../src/models/install.js';
import { loadCaptioner } from '../src/models/load-captioner.js';
import { BUNDLE_FORMAT_VERSION } from '../src/export/manifest.js';
import { resolveModelSource } from '../src/models/source.js';
import { sat } from './helpers/cli-run.js';
import { makeBundleFixture, type BundleFixture } from './helpers/models-fixture.js';
import { setEnv } from './helpers/scoped-env.js';

let dir: string;
let fx: BundleFixture;
let server: http.Server;
let base: string;
let cacheModels: string;
const files = new Map<string, Buffer>();
const hits: string[] = [];

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
/** Serves the fixture bundle's files under /PREFIX/ after `change` edits them. */
function publish(prefix: string, change: (files: Map<string, Buffer>) => void = () => undefined) {
  const bundle = new Map(fs.readdirSync(fx.bundle).map((n) => [n, fs.readFileSync(path.join(fx.bundle, n))]));
  change(bundle);
  for (const [name, bytes] of bundle) files.set(`/${prefix}/${name}`, bytes);
}
const manifestOf = (files: Map<string, Buffer>) => JSON.parse(files.get('manifest.json')!.toString());
const setManifest = (files: Map<string, Buffer>, m: unknown) =>
  files.set('manifest.json', Buffer.from(JSON.stringify(m)));
/** What the cache's models folder holds (hidden folders included: a failed install must leave no .partial-*). */
const cached = () => (fs.existsSync(cacheModels) ? fs.readdirSync(cacheModels).sort() : []);

/** Puts SAT_CACHE back after: other test files may share this process (test/run.mjs). */
let restoreCache = () => {};

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-models-url-'));
  restoreCache = setEnv('SAT_CACHE', path.join(dir, 'cache'));
  cacheModels = path.join(dir, 'cache', 'models');
  fx = await makeBundleFixture(path.join(dir, 'fx'));
  publish('good');
  publish('named', (f) => setManifest(f, { ...manifestOf(f), card: { name: 'colours' } }));
  publish('bad-hash', (f) => {
    const b = Buffer.from(f.get('decoder-step.onnx')!);
    b[100] ^= 1;
    f.set('decoder-step.onnx', b);
  });
  publish('truncated', (f) => f.set('decoder-step.onnx', f.get('decoder-step.onnx')!.subarray(0, 1000)));
  publish('stops');
  publish('newer', (f) =>
    setManifest(f, {
      ...manifestOf(f),
      formatVersion: BUNDLE_FORMAT_VERSION + 1,
      writtenBy: { package: 'show-attend-tell', version: '9.9.9' },
    }),
  );
  publish('evil', (f) => {
    const m = manifestOf(f);
    m.files['../escape.onnx'] = m.files['encoder.onnx'];
    setManifest(f, m);
  });
  files.set('/page/manifest.json', Buffer.from('<html>not a bundle</html>'));
  files.set('/other/manifest.json', Buffer.from(JSON.stringify({ format: 'someone-else', files: {} })));
  server = http.createServer((req, res) => {
    const url = req.url!;
    hits.push(url);
    const moved = /^\/moved\/(.*)$/.exec(url);
    if (moved) return void res.writeHead(302, { location: `/good/${moved[1]}` }).end();
    if (url.startsWith('/loop/')) return void res.writeHead(302, { location: url }).end();
    const body = files.get(url);
    if (!body) return void res.writeHead(404).end('no such file');
    if (url === '/stops/decoder-step.onnx') {
      // Announces the whole file, sends half of it, and hangs up: every time.
      res.writeHead(200, { 'content-length': String(body.length) });
      res.write(body.subarray(0, body.length >> 1), () => res.destroy());
      return;
    }
    res.writeHead(200, { 'content-length': String(body.length) }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  restoreCache();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  fs.rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  hits.length = 0;
});

test('a manifest URL installs once into the cache, verified, and loads by URL and by name', async () => {
  const url = `${base}/good/manifest.json`;
  const first = await resolveModelSource(url);
  assert.deepEqual(first, {
    kind: 'bundle',
    path: path.join(cacheModels, 'good'),
    name: 'good',
    origin: 'url',
    url,
    id: fx.id,
  });
  assert.deepEqual(cached(), ['good']);
  for (const name of fs.readdirSync(fx.bundle))
    assert.deepEqual(
      fs.readFileSync(path.join(cacheModels, 'good', name)),
      fs.readFileSync(path.join(fx.bundle, name)),
    );
  assert.equal(hits.length, 4, 'the manifest and its three files');
  hits.length = 0;
  const captioner = await loadCaptioner(url);
  try {
    assert.equal(hits.length, 0, 'an installed URL needs no network');
    assert.equal(captioner.info.modelName, 'good');
    assert.equal((await captioner.caption(fx.images.red)).caption, 'a red square');
  } finally {
    await captioner.dispose();
  }
  assert.equal((await resolveModelSource('good')).origin, 'cache');
});

test('redirects are followed; a redirect loop is refused', async () => {
  const m = await installModelFromUrl(`${base}/moved/manifest.json`, { name: 'via-redirect' });
  assert.equal(m.id, fx.id);
  assert.ok(hits.includes('/good/encoder.onnx'));
  await assert.rejects(
    installModelFromUrl(`${base}/loop/manifest.json`, { maxRedirects: 3 }),
    /too many redirects downloading .*Nothing was installed/,
  );
  assert.deepEqual(cached(), ['good', 'via-redirect']);
});

test('two installs of one URL at once end with one model and no leftovers', async () => {
  publish('twice');
  const [a, b] = await Promise.all([
    installModelFromUrl(`${base}/twice/manifest.json`),
    installModelFromUrl(`${base}/twice/manifest.json`),
  ]);
  assert.equal(a.path, b.path);
  assert.equal(a.name, 'twice');
  assert.deepEqual(
    cached().filter((n) => n.startsWith('.') || n.startsWith('twice')),
    ['twice'],
  );
});

test('the card names the install; a pinned manifest SHA-256 is checked first', async () => {
  const manifest = files.get('/named/manifest.json')!;
  const wrong = sha(Buffer.from('something else'));
  await assert.rejects(
    installModelFromUrl(`${base}/named/manifest.json#sha256=${wrong}`),
    new RegExp(`has SHA-256 ${sha(manifest)}, but ${wrong} was pinned: the manifest is not the one you pinned`),
  );
  assert.deepEqual(hits, ['/named/manifest.json'], 'nothing else is downloaded after a pin mismatch');
  assert.ok(!cached().includes('colours'));
  const m = await installModelFromUrl(`${base}/named/manifest.json#sha256=${sha(manifest)}`);
  assert.equal(m.name, 'colours');
  assert.equal(m.install?.manifestSha256, sha(manifest));
  assert.throws(() => parseModelUrl(`${base}/named/manifest.json#sha256=xyz`), /#sha256= xyz is not 64 hex digits/);
  assert.throws(
    () => parseModelUrl('http://example.com/m/manifest.json'),
    /plain http.*use https, or pin the manifest's SHA-256/,
  );
  assert.equal(parseModelUrl(`http://example.com/m/manifest.json#sha256=${wrong}`).manifestSha256, wrong);
  assert.equal(parseModelUrl('https://example.com/m/').url, 'https://example.com/m/manifest.json');
});

test('a wrong hash, a truncated file and a server that stops mid-file are refused; nothing is half-installed', async () => {
  const before = cached();
  await assert.rejects(
    installModelFromUrl(`${base}/bad-hash/manifest.json`),
    /bad-hash\/decoder-step\.onnx has SHA-256 [0-9a-f]{64}, but the manifest lists [0-9a-f]{64}: .*damaged.*Nothing was installed/,
  );
  await assert.rejects(
    installModelFromUrl(`${base}/truncated/manifest.json`),
    /truncated\/decoder-step\.onnx has 1000 bytes, but the manifest lists \d+: the file on the server is truncated/,
  );
  await assert.rejects(
    installModelFromUrl(`${base}/stops/manifest.json`, { retries: 1 }),
    /stops\/decoder-step\.onnx was interrupted .*after 1 retries; nothing was kept/,
  );
  assert.equal(hits.filter((h) => h === '/stops/decoder-step.onnx').length, 2, 'one automatic retry');
  assert.deepEqual(cached(), before);
  await assert.rejects(resolveModelSource('stops'), /is neither a file or folder nor an installed model/);
});

test('a URL that is not a bundle, a newer format, a file outside the bundle and limits are refused', async () => {
  const before = cached();
  await assert.rejects(
    installModelFromUrl(`${base}/page/manifest.json`),
    /page\/manifest\.json is not JSON, so it is not a bundle's manifest\.json/,
  );
  await assert.rejects(
    installModelFromUrl(`${base}/other/manifest.json`),
    /is not a show-attend-tell bundle manifest .*Nothing was installed/,
  );
  await assert.rejects(installModelFromUrl(`${base}/missing/manifest.json`), /HTTP 404/);
  await assert.rejects(
    installModelFromUrl(`${base}/newer/manifest.json`),
    new RegExp(
      `format version ${BUNDLE_FORMAT_VERSION + 1}, written by show-attend-tell 9\\.9\\.9; .*Upgrade to show-attend-tell 9\\.9\\.9 or newer`,
    ),
  );
  await assert.rejects(
    installModelFromUrl(`${base}/evil/manifest.json`),
    /lists a file named "\.\.\/escape\.onnx": bundle files are plain names/,
  );
  await assert.rejects(
    installModelFromUrl(`${base}/good/manifest.json`, { name: 'small', maxBytes: 1000 }),
    /lists a bundle of \d+ bytes, more than the limit of 1000/,
  );
  await assert.rejects(
    installModelFromUrl(`${base}/good/manifest.json`, { name: 'small', maxManifestBytes: 100 }),
    /larger than the limit of 100 bytes/,
  );
  assert.deepEqual(cached(), before);
  assert.equal(
    fs.existsSync(path.join(dir, 'escape.onnx')) || fs.existsSync(path.join(cacheModels, 'escape.onnx')),
    false,
  );
});

test('sat models lists, installs and removes; the shipped model cannot be removed', async () => {
  const out = await sat(['models', 'install', `${base}/good/manifest.json`, '--name', 'by-cli']);
  assert.match(out, /^installed by-cli \(0\.0 MB, .*\) at .*by-cli; use it with --model by-cli$/);
  const listed = JSON.parse(await sat(['models', '--json'])) as {
    name: string;
    origin: string;
    url: string | null;
    card: unknown;
    bytes: number;
  }[];
  const mine = listed.find((m) => m.name === 'by-cli')!;
  assert.equal(mine.origin, 'cache');
  assert.equal(mine.url, `${base}/good/manifest.json`);
  assert.deepEqual(mine.card, { evaluatedOn: 'the three colours', scores: { 'BLEU-4': 1 } });
  const table = await sat(['models']);
  assert.match(table, /^NAME +SIZE +SOURCE +SCORES +ID$/m);
  assert.match(
    table,
    new RegExp(
      `^by-cli +0\\.0 MB +${base.replace(/\./g, '\\.')}/good/manifest\\.json +BLEU-4 1 \\(the three colours\\) +${fx.id}$`,
      'm',
    ),
  );
  assert.match(await sat(['models', 'remove', 'by-cli']), /^removed by-cli /);
  assert.ok(!cached().includes('by-cli'));
  await assert.rejects(
    sat(['models', 'remove', 'by-cli']),
    /no model named "by-cli" is installed\. Installed models: .*good \(cache\)/,
  );
  await assert.rejects(sat(['models', 'frobnicate']), /unknown action "frobnicate"/);
});
