/**
 * URLs with care (src/features/image-url.ts, src/util/special-address.ts, preprocessImage in src/models/load-captioner.ts):
 * the library refuses loopback, private, link-local and other special-use addresses, written in any form and
 * after DNS, and on every redirect, unless the caller allows them; SVG is never decoded from a URL; strings are
 * read as files only where the caller allows it. Servers bind 127.0.0.1 (and 127.0.0.2 where the system has it).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { preprocessImage } from '../src/models/load-captioner.js';
import { fetchImageUrl, rasterFormat } from '../src/features/image-url.js';
import { specialAddressKind } from '../src/util/special-address.js';
import { setEnv } from './helpers/scoped-env.js';

let dir: string;
let server: http.Server;
let port: number;
let second: http.Server | null = null; // on 127.0.0.2: "another private host"
let secondPort = 0;
let png: Buffer;
const SVG =
  '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><image href="http://169.254.169.254/x.png"/></svg>';

const listen = (s: http.Server, host: string) =>
  new Promise<number>((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, host, () => resolve((s.address() as AddressInfo).port));
  });

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-url-safety-'));
  png = await sharp({ create: { width: 6, height: 4, channels: 3, background: '#e01010' } })
    .png()
    .toBuffer();
  server = http.createServer((req, res) => {
    const url = req.url!.split('?')[0];
    if (url === '/red.png') res.writeHead(200, { 'content-type': 'image/png' }).end(png);
    else if (url === '/to-private')
      res.writeHead(302, { location: `http://127.0.0.2:${secondPort || 9}/red.png` }).end();
    else if (url === '/to-mapped') res.writeHead(307, { location: `http://[::ffff:a00:1]:${port}/red.png` }).end();
    else if (url === '/to-file') res.writeHead(302, { location: 'file:///etc/passwd' }).end();
    else if (url === '/loop') res.writeHead(302, { location: '/loop' }).end();
    else if (url === '/logo.svg') res.writeHead(200, { 'content-type': 'image/svg+xml' }).end(SVG);
    else if (url === '/svg-as.png') res.writeHead(200, { 'content-type': 'image/png' }).end(SVG);
    else res.writeHead(404).end();
  });
  port = await listen(server, '127.0.0.1');
  const other = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(png));
  try {
    secondPort = await listen(other, '127.0.0.2');
    second = other;
  } catch {
    second = null; // no 127.0.0.2 on this system (macOS): the opted-in redirect is checked up to the connection
  }
});

after(async () => {
  for (const s of [server, second]) {
    if (!s) continue;
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test("address classification: IPv4, IPv6, IPv4 inside IPv6, and the URL parser's decimal, octal and hex forms", () => {
  const special: Record<string, string> = {
    '127.0.0.1': 'loopback',
    '127.255.0.9': 'loopback',
    '10.0.0.1': 'private',
    '172.16.0.1': 'private',
    '172.31.255.255': 'private',
    '192.168.1.1': 'private',
    '169.254.169.254': 'link-local',
    '100.64.0.1': 'carrier-grade NAT',
    '0.0.0.0': '"this network"',
    '224.0.0.251': 'multicast',
    '255.255.255.255': 'reserved',
    '198.18.0.1': 'benchmarking',
    '192.0.2.1': 'documentation',
    '::1': 'loopback',
    '::': 'unspecified',
    '[::1]': 'loopback',
    'fe80::1': 'link-local',
    'fe80::1%eth0': 'link-local',
    'fd12:3456::1': 'unique local (private)',
    'ff02::1': 'multicast',
    '2001:db8::1': 'documentation',
    '::7f00:1': 'IPv4-compatible (deprecated)',
    '::ffff:127.0.0.1': 'loopback (IPv4-mapped 127.0.0.1)',
    '::ffff:a00:1': 'private (IPv4-mapped 10.0.0.1)',
    '64:ff9b::a9fe:a9fe': 'link-local (NAT64 169.254.169.254)',
    '2002:c0a8:101::1': 'private (6to4 192.168.1.1)',
  };
  for (const [address, kind] of Object.entries(special)) assert.equal(specialAddressKind(address), kind, address);
  for (const address of [
    '8.8.8.8',
    '172.32.0.1',
    '100.128.0.1',
    '1.1.1.1',
    '2606:4700:4700::1111',
    '::ffff:8.8.8.8',
    '2002:808:808::1',
    '64:ff9b::808:808',
  ]) {
    assert.equal(specialAddressKind(address), null, address);
  }
  assert.throws(() => specialAddressKind('example.com'), /not an IP address/);
  // The WHATWG URL parser turns every IPv4 spelling into dotted decimal before the check sees it.
  for (const url of [
    'http://2130706433/',
    'http://0x7f000001/',
    'http://0177.0.0.1/',
    'http://127.1/',
    'http://0x7f.0.0.1/',
    'http://[::ffff:127.0.0.1]/',
  ]) {
    assert.match(specialAddressKind(new URL(url).hostname) ?? 'public', /^loopback/, url);
  }
});

test('by default loopback is refused however it is written, and after DNS (localhost); nothing is cached', async () => {
  const cache = path.join(dir, 'default');
  const opts = { dir: cache };
  await assert.rejects(
    fetchImageUrl(`http://127.0.0.1:${port}/red.png`, opts),
    /refused: 127\.0\.0\.1:\d+ is a loopback address\. Images are not loaded from loopback, private or link-local addresses unless the caller allows it \(loadCaptioner option allowPrivateNetwork: true/,
  );
  await assert.rejects(
    fetchImageUrl(`http://2130706433:${port}/red.png`, opts),
    /refused: 127\.0\.0\.1:\d+ is a loopback address/,
  );
  await assert.rejects(fetchImageUrl(`http://0x7f.1:${port}/red.png`, opts), /is a loopback address/);
  await assert.rejects(
    fetchImageUrl(`http://[::ffff:127.0.0.1]:${port}/red.png`, opts),
    /is a loopback \(IPv4-mapped 127\.0\.0\.1\) address/,
  );
  await assert.rejects(
    fetchImageUrl(`http://localhost:${port}/red.png`, opts),
    /refused: localhost resolves to (127\.0\.0\.1|::1), a loopback address/,
  );
  assert.equal(fs.existsSync(cache), false);
  const file = await fetchImageUrl(`http://127.0.0.1:${port}/red.png`, { ...opts, allowPrivateNetwork: true });
  assert.deepEqual(fs.readFileSync(file), png, 'allowed when the caller opts in');
});

test('every redirect is checked: to a private address (or one inside IPv6, or not http) refused; allowed when opted in', async () => {
  const cache = path.join(dir, 'redirects');
  // 127.0.0.1 stands in for a public server here; every other special address keeps its kind
  const publicLoopback = (a: string) => (a === '127.0.0.1' ? null : specialAddressKind(a));
  const opts = { dir: cache, specialAddress: publicLoopback };
  assert.deepEqual(fs.readFileSync(await fetchImageUrl(`http://127.0.0.1:${port}/red.png`, opts)), png);
  await assert.rejects(
    fetchImageUrl(`http://127.0.0.1:${port}/to-private`, opts),
    /to-private: refused: 127\.0\.0\.2:\d+ is a loopback address/,
  );
  await assert.rejects(
    fetchImageUrl(`http://127.0.0.1:${port}/to-mapped`, opts),
    /refused: \[::ffff:a00:1\]:\d+ is a private \(IPv4-mapped 10\.0\.0\.1\) address/,
  );
  await assert.rejects(
    fetchImageUrl(`http://127.0.0.1:${port}/to-file`, { ...opts, allowPrivateNetwork: true }),
    /redirects to file:\/\/\/etc\/passwd: only http and https URLs are loaded/,
  );
  await assert.rejects(
    fetchImageUrl(`http://127.0.0.1:${port}/loop`, { ...opts, allowPrivateNetwork: true }),
    /more than 5 redirects/,
  );
  const opted = fetchImageUrl(`http://127.0.0.1:${port}/to-private`, { dir: cache, allowPrivateNetwork: true });
  if (second) assert.deepEqual(fs.readFileSync(await opted), png);
  else await assert.rejects(opted, /cannot download .*\((ECONNREFUSED|EADDRNOTAVAIL|ENETUNREACH)\)/); // it got as far as connecting
});

test('SVG is never decoded from a URL: by content type or by its bytes, even with private addresses allowed', async () => {
  const opts = { dir: path.join(dir, 'svg'), allowPrivateNetwork: true };
  await assert.rejects(
    fetchImageUrl(`http://127.0.0.1:${port}/logo.svg`, opts),
    /an SVG image: SVG is never decoded from a URL/,
  );
  await assert.rejects(
    fetchImageUrl(`http://127.0.0.1:${port}/svg-as.png`, opts),
    /says it is image\/png but its bytes are not JPEG, PNG, WebP, GIF, TIFF or AVIF/,
  );
  assert.equal(rasterFormat(png), 'png');
  assert.equal(rasterFormat(Buffer.from(SVG)), null);
  assert.equal(rasterFormat(await sharp(png).jpeg().toBuffer()), 'jpeg');
  assert.equal(rasterFormat(await sharp(png).webp().toBuffer()), 'webp');
});

test("preprocessImage (loadCaptioner's images): files only where allowed, local URLs only when opted in", async () => {
  const file = path.join(dir, 'red.png');
  fs.writeFileSync(file, png);
  assert.equal((await preprocessImage(file, 8)).length, 8 * 8 * 3, 'files are read by default');
  await assert.rejects(
    preprocessImage(file, 8, { allowFiles: false }),
    /is not an http\(s\) URL, and this captioner reads no files \(allowFiles: false\)/,
  );
  const url = `http://127.0.0.1:${port}/red.png?preprocess`;
  const restoreCache = setEnv('SAT_CACHE', path.join(dir, 'cache'));
  try {
    await assert.rejects(preprocessImage(url, 8, { allowFiles: false }), /is a loopback address/);
    assert.equal((await preprocessImage(url, 8, { allowFiles: false, allowPrivateNetwork: true })).length, 8 * 8 * 3);
  } finally {
    restoreCache();
  }
});
