/**
 * The zip reader against archives written by real tools (test/fixtures/zip, made by scripts/zip-fixtures.ts with
 * Info-ZIP and Python: extra fields longer in the local header than in the directory, data descriptors, ZIP64
 * records, comments, stored and deflated entries) and against hand-made archives broken one way each: every
 * refusal is a ParseError that names the archive, and nothing is written past an entry's declared size.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { bufferSource, crc32, extractZip, listZip, readZipDirectory } from '../src/dataset/zip.js';
import { ParseError } from '../src/util/parse-error.js';
import { makeZip } from './helpers/zip-fixture.js';

const FIXTURES = new URL('./fixtures/zip/', import.meta.url).pathname;
const expected: Record<string, Record<string, string>> = JSON.parse(
  fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8'),
);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-zip-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** Every file under `dir` (relative, '/'-separated) with its SHA-256. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const full = path.join(e.parentPath, e.name);
    out[path.relative(dir, full).split(path.sep).join('/')] = sha(fs.readFileSync(full));
  }
  return out;
}

const write = (name: string, bytes: Buffer) => {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, bytes);
  return f;
};
const parseError = (pattern: RegExp) => (e: unknown) => e instanceof ParseError && pattern.test(e.message);
/** Offset of the central directory entry of the k-th file (of an archive without ZIP64 records or comment). */
const centralAt = (zip: Buffer, k: number) => {
  let eocd = zip.length - 22;
  while (zip.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  let p = zip.readUInt32LE(eocd + 16);
  for (let i = 0; i < k; i++) p += 46 + zip.readUInt16LE(p + 28) + zip.readUInt16LE(p + 30) + zip.readUInt16LE(p + 32);
  return p;
};

describe('zip archives written by real tools', () => {
  for (const [archive, files] of Object.entries(expected)) {
    it(`extracts ${archive} byte for byte`, async () => {
      const out = path.join(tmp, archive);
      assert.equal(await extractZip(path.join(FIXTURES, archive), out, { silent: true }), Object.keys(files).length);
      assert.deepEqual(tree(out), files);
    });
  }

  it("takes the data offset from the local header, whose extra field differs from the directory's", () => {
    for (const archive of ['infozip.zip', 'python-zip64.zip']) {
      const bytes = fs.readFileSync(path.join(FIXTURES, archive));
      const entries = readZipDirectory(bufferSource(bytes), archive);
      let differing = 0;
      for (const [k, e] of entries.entries()) {
        const localExtra = bytes.readUInt16LE(e.localOffset + 28);
        assert.equal(e.dataOffset, e.localOffset + 30 + bytes.readUInt16LE(e.localOffset + 26) + localExtra);
        if (localExtra !== bytes.readUInt16LE(centralAt(bytes, k) + 30)) differing++;
      }
      // Info-ZIP's extended-timestamp field is longer in the local header; Python's force_zip64 field is local only.
      assert.equal(
        differing,
        entries.length,
        `${archive}: every entry's local extra field differs from the directory's`,
      );
    }
  });

  it('checks data descriptors against the central directory', async () => {
    const bytes = fs.readFileSync(path.join(FIXTURES, 'infozip-fd.zip'));
    const entries = readZipDirectory(bufferSource(bytes), 'fd.zip');
    assert.ok(entries.every((e) => e.hasDataDescriptor));
    const first = entries.find((e) => e.size > 0)!;
    const bad = Buffer.from(bytes);
    bad[first.dataOffset + first.compressedSize + 4] ^= 0xff; // the descriptor's CRC (after its signature)
    assert.throws(
      () => listZip(write('fd-bad.zip', bad)),
      parseError(/fd-bad\.zip: the data descriptor of "captions.txt" .* does not match/),
    );
  });

  it('reads the archive comment and ZIP64 end records of real archives', () => {
    const z64 = fs.readFileSync(path.join(FIXTURES, 'infozip-zip64.zip'));
    assert.equal(
      z64.readUInt32LE(z64.length - 22 + 16),
      0xffffffff,
      'the fixture has its directory offset in the ZIP64 record',
    );
    assert.deepEqual(
      listZip(path.join(FIXTURES, 'infozip-zip64.zip'))
        .map((e) => e.name)
        .sort(),
      Object.keys(expected['infozip-zip64.zip']),
    );
    const commented = fs.readFileSync(path.join(FIXTURES, 'infozip.zip'));
    assert.match(commented.subarray(commented.length - 23).toString(), /fixture archive comment/);
  });
});

describe('zip reader refusals', () => {
  it('never inflates past the declared size, and leaves no partial file', async () => {
    const data = Buffer.alloc(100_000, 'a');
    const zip = makeZip([{ name: 'big.txt', data }]);
    const c = centralAt(zip, 0);
    zip.writeUInt32LE(1000, c + 24); // the directory now claims 1000 bytes
    zip.writeUInt32LE(crc32(data.subarray(0, 1000)), c + 16);
    const out = path.join(tmp, 'past');
    await assert.rejects(
      extractZip(write('past.zip', zip), out, { silent: true }),
      parseError(/past\.zip: cannot extract "big.txt" \("big.txt" inflates past its declared size of 1000 bytes\)/),
    );
    assert.deepEqual(fs.readdirSync(out), []);
  });

  it('refuses a data stream shorter than declared', async () => {
    const zip = makeZip([{ name: 'a.txt', data: 'hello hello hello' }]);
    const c = centralAt(zip, 0);
    zip.writeUInt32LE(18, c + 24);
    await assert.rejects(
      extractZip(write('short.zip', zip), path.join(tmp, 'short'), { silent: true }),
      parseError(/17 bytes instead of the declared 18/),
    );
  });

  it('checks the central directory size against the file before reading it', () => {
    const zip = makeZip([{ name: 'a.txt', data: 'abc' }]);
    zip.writeUInt32LE(0x7fff0000, zip.length - 22 + 12);
    assert.throws(
      () => listZip(write('cd.zip', zip)),
      parseError(/cd\.zip: the central directory \(2147418112 bytes at \d+\) runs past its end record/),
    );
    const many = makeZip([{ name: 'a.txt', data: 'abc' }]);
    many.writeUInt16LE(5000, many.length - 22 + 10);
    many.writeUInt16LE(5000, many.length - 22 + 8);
    assert.throws(() => listZip(write('many.zip', many)), parseError(/5000 entries cannot fit/));
  });

  it('caps the total uncompressed size and the number of entries', () => {
    const file = write(
      'cap.zip',
      makeZip([
        { name: 'a.bin', data: Buffer.alloc(5000) },
        { name: 'b.bin', data: Buffer.alloc(5000) },
      ]),
    );
    assert.equal(listZip(file, { maxTotalBytes: 10_000 }).length, 2);
    assert.throws(
      () => listZip(file, { maxTotalBytes: 9_999 }),
      parseError(/add up to more than 9999 bytes uncompressed/),
    );
    assert.throws(() => listZip(file, { maxEntries: 1 }), parseError(/2 entries, more than the limit of 1/));
  });

  it('refuses overlapping entries (the overlapped-file zip bomb)', () => {
    const a = Buffer.from('first entry'),
      b = Buffer.from('second');
    const zip = makeZip([
      { name: 'a', data: a, store: true },
      { name: 'b', data: b, store: true },
    ]);
    // Stretch a over b's local header and data, with a CRC that matches the stretched bytes.
    const stretched = zip.subarray(31, 31 + a.length + 31 + b.length);
    const c = centralAt(zip, 0);
    zip.writeUInt32LE(stretched.length, c + 20);
    zip.writeUInt32LE(stretched.length, c + 24);
    zip.writeUInt32LE(crc32(stretched), c + 16);
    assert.throws(() => listZip(write('overlap.zip', zip)), parseError(/entries "a" and "b" overlap/));
  });

  it('refuses entries whose local header disagrees with the directory', () => {
    const named = makeZip([{ name: 'a.txt', data: 'abc' }]);
    named[30] = 'b'.charCodeAt(0);
    assert.throws(() => listZip(write('name.zip', named)), parseError(/"a.txt": its local header names it "b.txt"/));
    const method = makeZip([{ name: 'a.txt', data: 'abc' }]);
    method.writeUInt16LE(0, 8);
    assert.throws(
      () => listZip(write('method.zip', method)),
      parseError(/local header says compression method 0, the central directory 8/),
    );
    const gone = makeZip([{ name: 'a.txt', data: 'abc' }]);
    gone.writeUInt32LE(0, 0);
    assert.throws(() => listZip(write('gone.zip', gone)), parseError(/no local header for "a.txt" at byte 0/));
  });

  it('refuses sizes the method cannot produce, data running into the directory, duplicates and encryption', () => {
    const stored = makeZip([{ name: 'a', data: 'abc', store: true }]);
    stored.writeUInt32LE(4, centralAt(stored, 0) + 24);
    assert.throws(
      () => listZip(write('stored.zip', stored)),
      parseError(/stored entry "a" declares 4 bytes but holds 3/),
    );
    const bomb = makeZip([{ name: 'a', data: 'abc' }]);
    bomb.writeUInt32LE(0xfffffff0, centralAt(bomb, 0) + 24);
    assert.throws(() => listZip(write('ratio.zip', bomb)), parseError(/more than deflate can produce/));
    const long = makeZip([{ name: 'a', data: 'abc', store: true }]);
    long.writeUInt32LE(40, centralAt(long, 0) + 20);
    long.writeUInt32LE(40, centralAt(long, 0) + 24);
    assert.throws(
      () => listZip(write('long.zip', long)),
      parseError(/the data of "a" \(40 bytes at 31\) runs into the central directory/),
    );
    assert.throws(
      () =>
        listZip(
          write(
            'dup.zip',
            makeZip([
              { name: 'a', data: 'x' },
              { name: 'a', data: 'y' },
            ]),
          ),
        ),
      parseError(/entry "a" appears twice/),
    );
    const locked = makeZip([{ name: 'a', data: 'abc' }]);
    locked.writeUInt16LE(locked.readUInt16LE(centralAt(locked, 0) + 8) | 1, centralAt(locked, 0) + 8);
    assert.throws(() => listZip(write('locked.zip', locked)), parseError(/entry "a" is encrypted/));
  });

  it('refuses split archives and bad ZIP64 records, and truncated deflate data', async () => {
    const split = makeZip([{ name: 'a', data: 'abc' }]);
    split.writeUInt16LE(1, split.length - 22 + 4);
    assert.throws(() => listZip(write('split.zip', split)), parseError(/one part of a split/));
    const z64 = makeZip([{ name: 'a', data: 'abc' }], { zip64: true });
    z64.writeBigUInt64LE(BigInt(z64.length), z64.length - 22 - 20 + 8); // the locator points past the file
    assert.throws(
      () => listZip(write('z64.zip', z64)),
      parseError(/ZIP64 end record offset \d+ is not before its locator/),
    );
    const cut = makeZip([{ name: 'a.txt', data: crypto.randomBytes(2000).toString('hex') }]);
    const c = centralAt(cut, 0);
    const half = Math.floor(cut.readUInt32LE(c + 20) / 2);
    cut.writeUInt32LE(half, c + 20);
    const out = path.join(tmp, 'cut');
    await assert.rejects(
      extractZip(write('cut.zip', cut), out, { silent: true }),
      parseError(/cut\.zip: cannot extract "a.txt" \(unexpected end of file\)/),
    );
    assert.deepEqual(fs.readdirSync(out), []);
  });

  it('refuses a file with no end record as not a zip', () => {
    assert.throws(
      () => readZipDirectory(bufferSource(Buffer.from(zlib.deflateRawSync('not a zip'))), 'x.zip'),
      parseError(/x\.zip is not a zip file/),
    );
  });
});
