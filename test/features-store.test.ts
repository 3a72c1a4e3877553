import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { EncoderSpec } from '../src/encoders/types.js';
import { encodeHalf } from '../src/features/fp16.js';
import { indexPath, partName, partsDir, readMeta, shardPath } from '../src/features/format.js';
import { mergeParts } from '../src/features/merge.js';
import { openFeatureStore } from '../src/features/store.js';
import { FeatureStoreWriter } from '../src/features/store-writer.js';
import { UserError } from '../src/util/errors.js';
import { tmpDir } from './helpers/features-fixture.js';

const spec = (id = 'toy-enc', locations = 4, channels = 3): EncoderSpec => ({
  id,
  inputSize: 2,
  scaling: 'zero_one',
  inputLayout: 'nhwc',
  outputLayout: 'nhwc',
  inputName: 'x',
  outputName: 'y',
  locations,
  channels,
});

/** Deterministic features for image `k`: values exactly representable in fp16. */
function features(k: number, n = 12): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => (k * 16 + i) / 8);
}

function writeImages(
  dir: string,
  ks: number[],
  opts: { shardMaxBytes?: number; slice?: { index: number; count: number }; id?: string } = {},
) {
  const w = FeatureStoreWriter.open(dir, {
    spec: spec(opts.id),
    shardMaxBytes: opts.shardMaxBytes,
    slice: opts.slice,
    requested: ks.length,
  });
  for (const k of ks) w.append(`img${k}`, encodeHalf(features(k)));
  w.commit();
  return w;
}

test('write, reopen and read back; records roll over into new shards at the size cap', () => {
  const dir = tmpDir('store');
  const w = writeImages(dir, [0, 1, 2, 3, 4], { shardMaxBytes: 2 * 24 }); // 24 bytes per record: 2 per shard
  w.close();
  assert.deepEqual(
    fs
      .readdirSync(dir)
      .filter((f) => f.startsWith('shard-'))
      .sort(),
    ['shard-00000.bin', 'shard-00001.bin', 'shard-00002.bin'],
  );
  const r = openFeatureStore(dir);
  assert.equal(r.locations, 4);
  assert.equal(r.channels, 3);
  assert.equal(r.encoderId, 'toy-enc');
  assert.deepEqual(r.ids().sort(), ['img0', 'img1', 'img2', 'img3', 'img4']);
  for (const k of [4, 0, 2]) assert.deepEqual(r.read(`img${k}`), features(k));
  // Into a caller buffer at an offset (the trainer packs a batch this way).
  const out = new Float32Array(30).fill(-1);
  r.read('img3', out, 18);
  assert.deepEqual(out.subarray(18), features(3));
  assert.equal(out[17], -1);
  assert.deepEqual(r.verify(), []);
  assert.throws(() => r.read('nope'), UserError);
  r.close();
});

test('a crash mid-commit (torn index line, un-indexed shard bytes) is cut back on reopen and extraction continues', () => {
  const dir = tmpDir('store-crash');
  writeImages(dir, [0, 1, 2]).close();
  const goodShardSize = fs.statSync(shardPath(dir, 0)).size;
  // What a kill -9 can leave: data of the next batch appended, its index line half written.
  fs.appendFileSync(shardPath(dir, 0), Buffer.alloc(24 * 2, 7));
  fs.appendFileSync(indexPath(dir), '{"id":"img3","shard":0,"offset":72,"crc":12');
  // A reader ignores the torn tail without touching the files.
  assert.deepEqual(openFeatureStore(dir).ids().sort(), ['img0', 'img1', 'img2']);

  const w = FeatureStoreWriter.open(dir, { spec: spec(), requested: 5 });
  assert.equal(w.count, 3);
  assert.equal(fs.statSync(shardPath(dir, 0)).size, goodShardSize);
  w.append('img3', encodeHalf(features(3)));
  w.append('img4', encodeHalf(features(4)));
  w.close();
  const r = openFeatureStore(dir);
  assert.deepEqual(r.ids().sort(), ['img0', 'img1', 'img2', 'img3', 'img4']);
  for (let k = 0; k < 5; k++) assert.deepEqual(r.read(`img${k}`), features(k));
  assert.deepEqual(r.verify(), []);
});

test('a line with a bad checksum ends the trusted index; verify() finds flipped record bytes', () => {
  const dir = tmpDir('store-bad');
  writeImages(dir, [0, 1, 2]).close();
  const lines = fs.readFileSync(indexPath(dir), 'utf8').split('\n');
  lines[1] = lines[1].replace('"img1"', '"imgX"'); // checksum no longer matches
  fs.writeFileSync(indexPath(dir), lines.join('\n'));
  assert.deepEqual(openFeatureStore(dir).ids(), ['img0']);

  const dir2 = tmpDir('store-flip');
  writeImages(dir2, [0, 1]).close();
  const fd = fs.openSync(shardPath(dir2, 0), 'r+');
  fs.writeSync(fd, Buffer.from([0xff]), 0, 1, 30); // inside img1's record
  fs.closeSync(fd);
  assert.deepEqual(openFeatureStore(dir2).verify(), ['img1']);
});

test('reopening with another encoder or slice is refused with the folder named', () => {
  const dir = tmpDir('store-compat');
  writeImages(dir, [0]).close();
  assert.throws(
    () => FeatureStoreWriter.open(dir, { spec: spec('other', 4, 3), requested: 1 }),
    (e: Error) => e instanceof UserError && e.message.includes(dir) && e.message.includes('toy-enc'),
  );
  assert.throws(
    () => FeatureStoreWriter.open(dir, { spec: spec(), slice: { index: 0, count: 2 }, requested: 1 }),
    /slice all, not 0\/2/,
  );
  assert.throws(() => openFeatureStore(tmpDir('empty')), /No feature store/);
});

function writePart(store: string, index: number, count: number, ks: number[], complete = true) {
  const dir = path.join(partsDir(store), partName(index, count));
  const w = writeImages(dir, ks, { slice: { index, count }, shardMaxBytes: 48 });
  if (complete) w.markComplete(true);
  w.close();
}

test('merge joins complete parts and refuses bad part sets', () => {
  const store = tmpDir('merge');
  writePart(store, 0, 3, [0, 3, 6]);
  writePart(store, 1, 3, [1, 4]);
  assert.throws(() => mergeParts(store), /parts 2\/3 are missing/);
  writePart(store, 2, 3, [2, 5], false);
  assert.throws(() => mergeParts(store), /has not finished.*--shard 2\/3/);
  const finish = FeatureStoreWriter.open(path.join(partsDir(store), partName(2, 3)), {
    spec: spec(),
    slice: { index: 2, count: 3 },
    requested: 2,
  });
  finish.markComplete(true); // what a rerun of the unfinished slice does once nothing is left to extract
  finish.close();
  const res = mergeParts(store);
  assert.deepEqual(res, { parts: 3, images: 7, skipped: 0 });
  assert.equal(fs.existsSync(partsDir(store)), false);
  const r = openFeatureStore(store);
  assert.equal(r.size, 7);
  for (let k = 0; k < 7; k++) assert.deepEqual(r.read(`img${k}`), features(k));
  assert.deepEqual(r.verify(), []);
  assert.equal(readMeta(store).complete, true);
  assert.equal(readMeta(store).slice, null);

  const dup = tmpDir('merge-dup');
  writePart(dup, 0, 2, [0, 1]);
  writePart(dup, 1, 2, [1, 2]);
  assert.throws(() => mergeParts(dup), /"img1" is in both/);

  const mixed = tmpDir('merge-mixed');
  writePart(mixed, 0, 2, [0]);
  const other = path.join(partsDir(mixed), partName(1, 2));
  const w = FeatureStoreWriter.open(other, { spec: spec('other-enc'), slice: { index: 1, count: 2 }, requested: 1 });
  w.markComplete(true);
  w.close();
  assert.throws(() => mergeParts(mixed), /same encoder/);
});

test('a merge interrupted after its index was committed finishes on rerun instead of failing on duplicates', () => {
  const store = tmpDir('merge-resume');
  writePart(store, 0, 2, [0, 2]);
  writePart(store, 1, 2, [1]);
  const backup = tmpDir('merge-backup');
  fs.cpSync(partsDir(store), backup, { recursive: true });
  mergeParts(store);
  fs.cpSync(backup, partsDir(store), { recursive: true }); // as if the clean-up never ran
  assert.deepEqual(mergeParts(store), { parts: 2, images: 3, skipped: 0 });
  const r = openFeatureStore(store);
  for (let k = 0; k < 3; k++) assert.deepEqual(r.read(`img${k}`), features(k));
});

test("one writer per store: a live owner is refused by pid, a dead owner's lock is taken over", () => {
  const dir = tmpDir('store-lock');
  writeImages(dir, [0]).close();
  const lock = path.join(dir, 'writer.lock');
  assert.equal(fs.existsSync(lock), false);
  // A lock held by a live process (our parent, the test runner) on this host.
  fs.writeFileSync(lock, JSON.stringify({ pid: process.ppid, host: os.hostname() }));
  assert.throws(
    () => FeatureStoreWriter.open(dir, { spec: spec(), requested: 1 }),
    new RegExp(`another \`sat features\` \\(pid ${process.ppid}\\)`),
  );
  assert.throws(() => mergeParts(dir), /being written/);
  // The same lock after its process died (kill -9 leaves it behind).
  const dead = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid!;
  fs.writeFileSync(lock, JSON.stringify({ pid: dead, host: os.hostname() }));
  const w = FeatureStoreWriter.open(dir, { spec: spec(), requested: 2 });
  w.append('img1', encodeHalf(features(1)));
  w.close();
  assert.equal(fs.existsSync(lock), false);
  assert.equal(openFeatureStore(dir).size, 2);
});
