/**
 * Bundle manifests are checked before a file is read: names stay inside the folder, only regular files of the
 * listed size are read, numbers are bounded, and the manifest itself can be pinned by its SHA-256.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { readBundleFolder, readManifest } from '../src/export/bundle-folder.js';
import {
  BundleError,
  isBundleFileName,
  parseManifest,
  verifyManifestSha256,
  type BundleManifest,
} from '../src/export/manifest.js';
import { UserError } from '../src/util/errors.js';
import { bundleFiles, manifestFor, sha256, writeBundleFolder } from './helpers/manifest-fixture.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-manifest-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const folder = (edit?: (m: BundleManifest) => unknown) => {
  const d = path.join(tmp, `b${n++}`);
  writeBundleFolder(d, edit);
  return d;
};
const userError = (pattern: RegExp) => (e: unknown) => e instanceof UserError && pattern.test(e.message);
const bundleError = (pattern: RegExp) => (e: unknown) => e instanceof BundleError && pattern.test(e.message);

test('a valid bundle folder reads, with or without its pinned manifest SHA-256', async () => {
  const dir = path.join(tmp, 'good');
  const bytes = writeBundleFolder(dir);
  assert.equal((await readBundleFolder(dir)).files.size, 3);
  assert.equal(readManifest(dir, { manifestSha256: sha256(bytes).toUpperCase() }).modelId, 'latest-0123456789ab');
  assert.throws(
    () => readManifest(dir, { manifestSha256: '0'.repeat(64) }),
    userError(/manifest\.json has SHA-256 [0-9a-f]{64}, not the pinned 0{64}/),
  );
  await verifyManifestSha256(bytes, sha256(bytes), 'https://x/b');
  await assert.rejects(
    verifyManifestSha256(bytes, 'f'.repeat(64), 'https://x/b'),
    bundleError(/https:\/\/x\/b\/manifest\.json has SHA-256 .* not the pinned f{64}/),
  );
  await assert.rejects(verifyManifestSha256(bytes, 'abc', 'https://x/b'), bundleError(/must be 64 hex digits/));
});

test('file names must be plain names inside the bundle folder', async () => {
  for (const name of [
    '../../dev/zero',
    '/etc/passwd',
    'sub/x.onnx',
    '..',
    '.hidden',
    'C:x',
    'a\\b',
    '',
    'manifest.json',
    'x%2f..',
  ]) {
    assert.equal(isBundleFileName(name) && name !== 'manifest.json', false, name);
    const files = { ...bundleFiles(), [name]: Buffer.from('x') };
    assert.throws(
      () => parseManifest(manifestFor(files), 'b'),
      bundleError(/lists a file named .*: bundle files are plain names inside the bundle folder/),
      name,
    );
  }
  const escaping = folder((m) => ({ ...m, encoder: { ...m.encoder, file: '../../dev/zero' } }));
  assert.throws(() => readManifest(escaping), userError(/lists a file named "\.\.\/\.\.\/dev\/zero"/));
});

test('only regular files of the listed size are read: no symbolic links, FIFOs or devices', async () => {
  const linked = folder();
  fs.rmSync(path.join(linked, 'encoder.onnx'));
  fs.symlinkSync('/dev/zero', path.join(linked, 'encoder.onnx'));
  await assert.rejects(readBundleFolder(linked), userError(/encoder\.onnx is a symbolic link/));
  const fifo = folder();
  fs.rmSync(path.join(fifo, 'decoder-init.onnx'));
  execFileSync('mkfifo', [path.join(fifo, 'decoder-init.onnx')]);
  await assert.rejects(readBundleFolder(fifo), userError(/decoder-init\.onnx is not a regular file/));
  const linkedManifest = folder();
  fs.renameSync(path.join(linkedManifest, 'manifest.json'), path.join(tmp, 'elsewhere.json'));
  fs.symlinkSync(path.join(tmp, 'elsewhere.json'), path.join(linkedManifest, 'manifest.json'));
  assert.throws(() => readManifest(linkedManifest), userError(/manifest\.json is a symbolic link/));
  const grown = folder();
  fs.appendFileSync(path.join(grown, 'decoder-step.onnx'), Buffer.alloc(1000));
  await assert.rejects(
    readBundleFolder(grown),
    userError(/decoder-step\.onnx does not match its manifest \(\d+ bytes instead of \d+\)/),
  );
  const big = folder();
  fs.appendFileSync(path.join(big, 'manifest.json'), ' '.repeat(2000));
  assert.throws(
    () => readManifest(big, { maxManifestBytes: 1000 }),
    userError(/manifest\.json is \d+ bytes, more than the limit of 1000/),
  );
});

test('numbers are bounded integers, hashes are hex, and the grid matches the locations', () => {
  const base = manifestFor(bundleFiles());
  const refused = (edit: (m: BundleManifest) => void, pattern: RegExp) => {
    const m = structuredClone(base);
    edit(m);
    assert.throws(() => parseManifest(m, 'b'), bundleError(pattern));
  };
  refused((m) => {
    m.encoder.inputSize = 1e9;
  }, /encoder\.inputSize 1000000000 \(an integer from 1 to 4096\)/);
  refused((m) => {
    m.encoder.inputSize = 0;
  }, /encoder\.inputSize 0/);
  refused((m) => {
    m.encoder.inputSize = 16.5;
  }, /encoder\.inputSize 16\.5/);
  refused((m) => {
    m.vocab.maxLength = 1e7;
  }, /vocab\.maxLength 10000000 \(an integer from 1 to 1024\)/);
  refused((m) => {
    m.vocab.maxLength = -1;
  }, /vocab\.maxLength -1/);
  refused((m) => {
    m.model.units = 2 ** 40;
  }, /model\.units 1099511627776/);
  refused((m) => {
    m.vocab.end = 6;
  }, /vocab\.end 6 \(an integer from 0 to 5\)/);
  refused((m) => {
    m.encoder.grid = [3, 3];
  }, /the attention grid \[3,3\] does not have 4 locations/);
  refused((m) => {
    m.encoder.inputLayout = 'hwcn' as 'nhwc';
  }, /encoder layouts "hwcn"/);
  refused((m) => {
    m.files['encoder.onnx'].sha256 = 'xyz';
  }, /the entry of encoder\.onnx needs "sha256" \(64 lowercase hex digits\)/);
  refused((m) => {
    m.files['encoder.onnx'].bytes = -5;
  }, /the entry of encoder\.onnx needs .* "bytes"/);
  refused((m) => {
    delete (m.files as Record<string, unknown>)['decoder-step.onnx'];
  }, /lists no SHA-256 and size for decoder-step\.onnx/);
  assert.throws(
    () => parseManifest(base, 'b', { maxInputSize: 8 }),
    bundleError(/encoder\.inputSize 16 \(an integer from 1 to 8\)/),
  );
  assert.throws(() => parseManifest([base], 'b'), bundleError(/not a show-attend-tell bundle manifest/));
  assert.throws(() => parseManifest(null, 'b'), bundleError(/not a show-attend-tell bundle manifest/));
  assert.equal(parseManifest(base, 'b').encoder.inputSize, 16);
});

test('values shown in messages are never converted by their own toString (found by fuzz/run.ts, target manifest)', () => {
  const base = manifestFor(bundleFiles());
  const hostile = { toString: { not: 'a function' } };
  const m = { ...base, formatVersion: hostile, writtenBy: { package: hostile, version: '1' } };
  assert.throws(
    () => parseManifest(m, 'b'),
    bundleError(
      /b\/manifest\.json is bundle format version \{"toString":\{"not":"a function"\}\}, written by \{"toString"/,
    ),
  );
});
