import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { copyFileAtomic, writeFileAtomic, writeJsonAtomic } from '../src/util/atomic-write.js';
import { median, quantile } from '../src/util/stats.js';

test('median: the middle value, or the mean of the two middle ones; input order does not matter', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7]), 7);
  assert.ok(Number.isNaN(median([])));
  const xs = [5, 1, 4];
  median(xs);
  assert.deepEqual(xs, [5, 1, 4], 'the input is not sorted in place');
  assert.equal(median([0.1, 0.2]), (0.1 + 0.2) / 2, 'the mean of the middle two, bit for bit');
});

test("quantile: linear interpolation between order statistics (numpy.quantile's default)", () => {
  const xs = [10, 1, 4, 3, 2];
  assert.equal(quantile(xs, 0), 1);
  assert.equal(quantile(xs, 1), 10);
  assert.equal(quantile(xs, 0.25), 2); // h = 1
  assert.ok(Math.abs(quantile(xs, 0.9) - 7.6) < 1e-12); // h = 3.6: 4 + 0.6 (10 - 4), as numpy.quantile gives
  assert.ok(Math.abs(quantile([1, 2, 3, 4], 0.95) - 3.85) < 1e-12);
  assert.equal(quantile([7], 0.99), 7);
  assert.equal(quantile([1, 1e308, Infinity], 0.5), 1e308, 'exact at an order statistic, even next to Infinity');
  assert.ok(Number.isNaN(quantile([], 0.5)));
  for (const q of [-0.1, 1.5, NaN]) assert.throws(() => quantile(xs, q), /q must be in \[0, 1\]/);
});

test('writeFileAtomic: the data is fsynced before the rename, the folder after it; a failed write leaves the old file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-atomic-'));
  const file = path.join(dir, 'x.json');
  fs.writeFileSync(file, 'old');
  const calls: string[] = [];
  const fsyncSync = fs.fsyncSync,
    renameSync = fs.renameSync;
  fs.fsyncSync = (fd: number) => {
    calls.push(`fsync ${fs.fstatSync(fd).isDirectory() ? 'folder' : 'file'}`);
    fsyncSync(fd);
  };
  fs.renameSync = (a: fs.PathLike, b: fs.PathLike) => {
    calls.push('rename');
    renameSync(a, b);
  };
  try {
    writeFileAtomic(file, [Buffer.from('ne'), Buffer.from('w')]);
    assert.equal(fs.readFileSync(file, 'utf8'), 'new');
    assert.deepEqual(calls, ['fsync file', 'rename', 'fsync folder']);
    calls.length = 0;
    copyFileAtomic(file, path.join(dir, 'copy.json'));
    assert.deepEqual(calls, ['fsync file', 'rename', 'fsync folder']);
  } finally {
    fs.fsyncSync = fsyncSync;
    fs.renameSync = renameSync;
  }
  writeJsonAtomic(file, { a: 1 });
  assert.equal(fs.readFileSync(file, 'utf8'), '{\n  "a": 1\n}\n');
  assert.throws(() => writeFileAtomic(path.join(dir, 'missing', 'y'), 'z'), /ENOENT/);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['copy.json', 'x.json'], 'no temporary file is left behind');
});
