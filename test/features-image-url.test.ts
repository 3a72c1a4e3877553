/**
 * http(s) image URLs (`sat caption URL`, loadCaptioner images) against a local server on 127.0.0.1: an image
 * downloads once into the cache, redirects are followed, and a page that is not an image, an image over the
 * size limit (declared or streamed), a 404 and bytes that do not decode are refused, leaving nothing cached.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { loadCaptioner } from '../src/models/load-captioner.js';
import { fetchImageUrl } from '../src/features/image-url.js';
import { makeCaptionRun, type CaptionFixture } from './helpers/export-fixture.js';
import { bundledChild } from './helpers/child-bundle.js';
import { setEnv } from './helpers/scoped-env.js';

let dir: string;
let server: http.Server;
let base: string;
let png: Buffer;
const hits = new Map<string, number>();

/** Puts SAT_CACHE back after: other test files may share this process (test/run.mjs). */
let restoreCache = () => {};

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-url-'));
  restoreCache = setEnv('SAT_CACHE', path.join(dir, 'cache')); // loadCaptioner's downloads stay in the test folder
  png = await sharp({ create: { width: 20, height: 12, channels: 3, background: '#1030e0' } })
    .png()
    .toBuffer();
  server = http.createServer((req, res) => {
    const url = req.url!;
    hits.set(url, (hits.get(url) ?? 0) + 1);
    if (url === '/blue.png') res.writeHead(200, { 'content-type': 'image/png' }).end(png);
    else if (url === '/moved') res.writeHead(302, { location: '/blue.png?via=redirect' }).end();
    else if (url === '/blue.png?via=redirect')
      res.writeHead(200, { 'content-type': 'image/png; charset=binary' }).end(png);
    else if (url === '/page') res.writeHead(200, { 'content-type': 'text/html' }).end('<html>hello</html>');
    else if (url === '/big.png')
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(3 << 20) }).end(Buffer.alloc(3 << 20));
    else if (url === '/stream.png') {
      // no Content-Length: the limit must hold while streaming
      res.writeHead(200, { 'content-type': 'image/png', 'transfer-encoding': 'chunked' });
      for (let i = 0; i < 8; i++) res.write(Buffer.alloc(256 << 10));
      res.end();
    } else if (url === '/fake.jpg') res.writeHead(200, { 'content-type': 'image/jpeg' }).end('not really a jpeg');
    else if (url === '/broken.jpg')
      res.writeHead(200, { 'content-type': 'image/jpeg' }).end(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]));
    else res.writeHead(404, { 'content-type': 'text/plain' }).end('no such thing');
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

test('an image URL downloads once into the cache; redirects are followed', async () => {
  const cache = path.join(dir, 'cache');
  const file = await fetchImageUrl(`${base}/blue.png`, { dir: cache, allowPrivateNetwork: true });
  assert.ok(file.startsWith(cache) && file.endsWith('.png'));
  assert.deepEqual(fs.readFileSync(file), png);
  assert.equal(await fetchImageUrl(`${base}/blue.png`, { dir: cache, allowPrivateNetwork: true }), file);
  assert.equal(hits.get('/blue.png'), 1, 'the second call reads the cache');
  const moved = await fetchImageUrl(`${base}/moved`, { dir: cache, allowPrivateNetwork: true });
  assert.deepEqual(fs.readFileSync(moved), png);
});

test('not an image, too large, 404, undecodable: refused, nothing cached', async () => {
  const cache = path.join(dir, 'refusals');
  const opts = { dir: cache, maxBytes: 1 << 20, allowPrivateNetwork: true };
  await assert.rejects(fetchImageUrl(`${base}/page`, opts), /not an image \(Content-Type "text\/html"\)/);
  await assert.rejects(fetchImageUrl(`${base}/big.png`, opts), /3145728 bytes is larger than the 1\.0 MiB limit/);
  await assert.rejects(fetchImageUrl(`${base}/stream.png`, opts), /more than the 1\.0 MiB limit/);
  await assert.rejects(fetchImageUrl(`${base}/nope.jpg`, opts), /HTTP 404/);
  await assert.rejects(
    fetchImageUrl(`${base}/fake.jpg`, opts),
    /says it is image\/jpeg but its bytes are not JPEG, PNG/,
  );
  await assert.rejects(fetchImageUrl(`${base}/broken.jpg`, opts), /says it is image\/jpeg but does not decode/);
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  await assert.rejects(fetchImageUrl(`http://127.0.0.1:${port}/x.jpg`, opts), /cannot download .*\(ECONNREFUSED\)/);
  assert.deepEqual(fs.existsSync(cache) ? fs.readdirSync(cache) : [], []);
});

test('sat caption takes URLs next to files; loadCaptioner names a bad URL', async () => {
  const fx: CaptionFixture = await makeCaptionRun(path.join(dir, 'fixture'));
  const e = fx.encoder;
  const args = [bundledChild('src/cli.ts'), 'caption', '--model', fx.run, ...fx.encoderFlags, '--beam', '2'];
  const env = { ...process.env, SAT_CACHE: path.join(dir, 'cli-cache') };
  const { stdout } = await promisify(execFile)(process.execPath, [...args, `${base}/blue.png`, fx.images.red], { env });
  assert.deepEqual(stdout.trim().split('\n'), [
    `${base}/blue.png\ta blue circle on the left`,
    `${fx.images.red}\ta red square`,
  ]);
  const captioner = await loadCaptioner(fx.run, { encoder: e, maxImageBytes: 1 << 20, allowPrivateNetwork: true });
  try {
    await assert.rejects(
      captioner.caption(`${base}/big.png`),
      /big\.png: 3145728 bytes is larger than the 1\.0 MiB limit/,
    );
    await assert.rejects(captioner.caption(`${base}/page`), /page: not an image/);
  } finally {
    await captioner.dispose();
  }
});
