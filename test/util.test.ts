import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { copyFileAtomic, writeFileAtomic, writeJsonAtomic } from '../src/util/atomic-write.js';
import { median } from '../src/util/stats.js';

test('median: the middle value, or the mean of the two middle ones; input order does not matter', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7]), 7);
  assert.ok(Number.isNaN(median([])));
  const xs = [5, 1, 4];
  median(xs);
  assert.deepEqual(xs, [5, 1, 4], 'the input is not sorted in place');
});

test('writeFileAtomic: the data is fsynced before the rename, the folder after it; a failed write leaves the old file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-atomic-'));
  const file = path.join(dir, 'x.json');
  fs.writeFileSync(file, 'old');
  const calls: string[] = [];
  const fsyncSync = fs.fsyncSync, renameSync = fs.renameSync;
  fs.fsyncSync = (fd: number) => { calls.push(`fsync ${fs.fstatSync(fd).isDirectory() ? 'folder' : 'file'}`); fsyncSync(fd); };
  fs.renameSync = (a: fs.PathLike, b: fs.PathLike) => { calls.push('rename'); renameSync(a, b); };
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
