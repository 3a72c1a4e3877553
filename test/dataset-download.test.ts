/**
 * Downloads against a local HTTP server on 127.0.0.1 serving zips generated here: full dataset download
 * and extraction, an interrupted download resumed with a Range request, a corrupted download caught by
 * sha256 and by the zip CRC, and the offline message. Also the zip reader on stored/deflated/ZIP64 files.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { downloadDataset, downloadFile } from '../src/dataset/download.js';
import { readFlickr8k } from '../src/dataset/flickr8k.js';
import { extractZip, listZip } from '../src/dataset/zip.js';
import { prepareRun } from '../src/dataset/prepare.js';
import { UserError } from '../src/util/errors.js';
import { makeZip } from './helpers/zip-fixture.js';
import { setEnv } from './helpers/scoped-env.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-dl-'));
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

// What the server serves, and how: path -> body; `cut` paths drop the connection after half the body
// on their first request; `log` records each request's Range header.
const files = new Map<string, Buffer>();
const cutOnce = new Set<string>();
const log: { url: string; range?: string }[] = [];
let server: http.Server;
let base = '';

before(async () => {
  server = http.createServer((req, res) => {
    const url = req.url ?? '';
    log.push({ url, range: req.headers.range });
    if (url.startsWith('/redirect/')) {
      res.writeHead(302, { location: url.slice('/redirect'.length) });
      return res.end();
    }
    const body = files.get(url);
    if (!body) {
      res.writeHead(404);
      return res.end();
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    if (start >= body.length && m) {
      res.writeHead(416, { 'content-range': `bytes */${body.length}` });
      return res.end();
    }
    const headers: http.OutgoingHttpHeaders = { 'content-length': body.length - start, 'accept-ranges': 'bytes' };
    if (m) headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
    res.writeHead(m ? 206 : 200, headers);
    if (cutOnce.has(url)) {
      cutOnce.delete(url);
      // Send half, then kill the socket: the client sees a body shorter than content-length.
      res.write(body.subarray(start, start + Math.floor((body.length - start) / 2)), () => res.socket?.destroy());
      return;
    }
    res.end(body.subarray(start));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('zip reader', () => {
  const entries = [
    { name: 'dir/', data: '' },
    { name: 'dir/a.txt', data: 'hello hello hello hello' },
    { name: 'dir/b.bin', data: crypto.randomBytes(5000), store: true },
    { name: 'empty.txt', data: '', store: true },
    { name: '__MACOSX/dir/._a.txt', data: 'junk' },
  ];
  for (const zip64 of [false, true]) {
    it(`lists and extracts stored and deflated entries${zip64 ? ' (ZIP64 records)' : ''}`, async () => {
      const file = path.join(tmp, `t${zip64 ? 64 : 32}.zip`);
      fs.writeFileSync(file, makeZip(entries, { zip64 }));
      const listed = listZip(file);
      assert.deepEqual(
        listed.map((e) => e.name),
        entries.map((e) => e.name),
      );
      assert.deepEqual(
        listed.map((e) => e.method),
        [0, 8, 0, 0, 8],
      );
      const out = path.join(tmp, `x${zip64 ? 64 : 32}`);
      assert.equal(await extractZip(file, out, { silent: true }), 3); // directories and __MACOSX skipped
      assert.equal(fs.readFileSync(path.join(out, 'dir/a.txt'), 'utf8'), 'hello hello hello hello');
      assert.deepEqual(fs.readFileSync(path.join(out, 'dir/b.bin')), entries[2].data);
      assert.equal(fs.statSync(path.join(out, 'empty.txt')).size, 0);
      assert.equal(fs.existsSync(path.join(out, '__MACOSX')), false);
    });
  }

  it('rejects a corrupted entry by its CRC and leaves no partial file', async () => {
    const data = Buffer.from('x'.repeat(100));
    const zip = makeZip([{ name: 'a.txt', data, store: true }]);
    zip[30 + 'a.txt'.length + 50] ^= 0xff; // flip one byte of the stored data
    const file = path.join(tmp, 'bad.zip');
    fs.writeFileSync(file, zip);
    const out = path.join(tmp, 'bad');
    await assert.rejects(extractZip(file, out, { silent: true }), /CRC/);
    assert.deepEqual(fs.readdirSync(out), []);
  });

  it('refuses entries that would escape the destination', async () => {
    const file = path.join(tmp, 'slip.zip');
    fs.writeFileSync(file, makeZip([{ name: '../evil.txt', data: 'x' }]));
    await assert.rejects(extractZip(file, path.join(tmp, 'slip'), { silent: true }), /outside/);
  });

  it('says a truncated file is not a zip', () => {
    const file = path.join(tmp, 'trunc.zip');
    fs.writeFileSync(file, makeZip([{ name: 'a.txt', data: 'abc' }]).subarray(0, 20));
    assert.throws(() => listZip(file), /not a zip file/);
  });
});

describe('downloadFile', () => {
  const body = crypto.randomBytes(300_000);

  it('resumes an interrupted download with a Range request and verifies the sha256', async () => {
    files.set('/big.bin', body);
    cutOnce.add('/big.bin');
    const dest = path.join(tmp, 'dl', 'big.bin');
    // No automatic retry: the first call must fail and leave a partial .part behind.
    await assert.rejects(
      downloadFile(`${base}/big.bin`, dest, { retries: 0, silent: true }),
      (e: unknown) =>
        e instanceof UserError && /interrupted/.test(e.message) && /run the same command again/.test(e.message),
    );
    const partSize = fs.statSync(dest + '.part').size;
    assert.ok(partSize > 0 && partSize < body.length, `partial size ${partSize}`);
    log.length = 0;
    const res = await downloadFile(`${base}/big.bin`, dest, { retries: 0, sha256: sha(body), silent: true });
    assert.deepEqual(log, [{ url: '/big.bin', range: `bytes=${partSize}-` }]);
    assert.equal(res.sha256, sha(body));
    assert.equal(res.bytes, body.length);
    assert.deepEqual(fs.readFileSync(dest), body);
    assert.equal(fs.existsSync(dest + '.part'), false);
  });

  it('accepts a .part that is already complete (HTTP 416) and restarts an oversized one', async () => {
    files.set('/done.bin', body);
    const dest = path.join(tmp, 'dl', 'done.bin');
    fs.writeFileSync(dest + '.part', body);
    assert.equal((await downloadFile(`${base}/done.bin`, dest, { retries: 0, silent: true })).sha256, sha(body));
    fs.rmSync(dest);
    fs.writeFileSync(dest + '.part', Buffer.concat([body, Buffer.from('extra')]));
    assert.equal((await downloadFile(`${base}/done.bin`, dest, { retries: 1, silent: true })).bytes, body.length);
    assert.deepEqual(fs.readFileSync(dest), body);
  });

  it('retries automatically and follows redirects', async () => {
    files.set('/retry.bin', body);
    cutOnce.add('/retry.bin');
    const dest = path.join(tmp, 'dl', 'retry.bin');
    const res = await downloadFile(`${base}/redirect/retry.bin`, dest, { retries: 2, silent: true });
    assert.equal(res.sha256, sha(body));
  });

  it('detects a corrupted download by its sha256 and deletes it', async () => {
    const bad = Buffer.from(body);
    bad[1234] ^= 0x01;
    files.set('/corrupt.bin', bad);
    const dest = path.join(tmp, 'dl', 'corrupt.bin');
    await assert.rejects(
      downloadFile(`${base}/corrupt.bin`, dest, { sha256: sha(body), silent: true }),
      /corrupt: sha256/,
    );
    assert.equal(fs.existsSync(dest), false);
    assert.equal(fs.existsSync(dest + '.part'), false);
  });

  it('names the URL and the manual route when the server cannot be reached', async () => {
    // A port that was just free: connection refused, as when offline.
    const probe = http.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const url = `http://127.0.0.1:${port}/x.zip`;
    await assert.rejects(
      downloadFile(url, path.join(tmp, 'dl', 'x.zip'), { silent: true }),
      (e: unknown) => e instanceof UserError && e.message.includes(url) && /--root/.test(e.message),
    );
  });

  it('reports an HTTP error status', async () => {
    await assert.rejects(
      downloadFile(`${base}/missing.zip`, path.join(tmp, 'dl', 'm.zip'), { silent: true }),
      /HTTP 404/,
    );
  });
});

describe('downloadDataset', () => {
  it('downloads, extracts and records Flickr8k in the official layout, then skips it on a rerun', async () => {
    const jpg = Buffer.from([0xff, 0xd8, 0xff, 0xd9]);
    const names = ['1_a.jpg', '2_b.jpg', '3_c.jpg'];
    files.set(
      '/f8k/Flickr8k_Dataset.zip',
      makeZip([
        { name: 'Flicker8k_Dataset/', data: '' },
        ...names.map((n) => ({ name: `Flicker8k_Dataset/${n}`, data: jpg, store: true })),
        { name: '__MACOSX/Flicker8k_Dataset/._1_a.jpg', data: 'junk' },
      ]),
    );
    const token =
      names.flatMap((n, i) => [0, 1].map((k) => `${n}#${k}\tcaption ${k} of image ${i} .`)).join('\n') + '\n';
    // The text zip has no top folder: its files must land in ROOT/Flickr8k_text/.
    files.set(
      '/f8k/Flickr8k_text.zip',
      makeZip([
        { name: 'Flickr8k.token.txt', data: token },
        { name: 'Flickr_8k.trainImages.txt', data: '1_a.jpg\n2_b.jpg\n' },
        { name: 'Flickr_8k.devImages.txt', data: '3_c.jpg\n' },
      ]),
    );
    cutOnce.add('/f8k/Flickr8k_Dataset.zip');
    const root = path.join(tmp, 'f8k');
    await downloadDataset('flickr8k', root, { baseUrl: `${base}/f8k/`, silent: true });
    const ds = readFlickr8k({ root });
    assert.deepEqual(
      ds.images.map((im) => [im.id, im.split, im.captions.length]),
      [
        ['1_a.jpg', 'train', 2],
        ['2_b.jpg', 'train', 2],
        ['3_c.jpg', 'dev', 2],
      ],
    );
    const manifest = JSON.parse(fs.readFileSync(path.join(root, 'downloads.json'), 'utf8'));
    assert.equal(Object.keys(manifest).length, 2);
    for (const entry of Object.values(manifest) as { sha256: string; extracted: boolean }[]) {
      assert.match(entry.sha256, /^[0-9a-f]{64}$/);
      assert.equal(entry.extracted, true);
    }
    assert.equal(fs.existsSync(path.join(root, 'downloads', 'Flickr8k_Dataset.zip')), false); // archives removed

    log.length = 0;
    const run = await prepareRun({
      dataset: 'flickr8k',
      root,
      out: path.join(tmp, 'f8k-run'),
      download: true,
      downloadBaseUrl: `${base}/f8k`,
      silent: true,
    });
    assert.equal(log.length, 0, 'already extracted archives are not fetched again');
    assert.deepEqual(run.info.counts.train, { images: 2, captions: 4 });
  });

  it("uses the SAT_COCO_BASE_URL override and the tutorial's archive paths", async () => {
    files.set(
      '/coco/annotations/annotations_trainval2014.zip',
      makeZip([{ name: 'annotations/captions_train2014.json', data: '{"images":[],"annotations":[]}' }]),
    );
    files.set(
      '/coco/zips/train2014.zip',
      makeZip([{ name: 'train2014/COCO_train2014_000000000009.jpg', data: 'jpg', store: true }]),
    );
    const restoreBase = setEnv('SAT_COCO_BASE_URL', `${base}/coco`);
    try {
      const root = path.join(tmp, 'coco');
      await downloadDataset('coco', root, { silent: true });
      assert.ok(fs.existsSync(path.join(root, 'annotations', 'captions_train2014.json')));
      assert.ok(fs.existsSync(path.join(root, 'train2014', 'COCO_train2014_000000000009.jpg')));
    } finally {
      restoreBase();
    }
  });
});
