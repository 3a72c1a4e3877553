/**
 * Writes that never replace good data with bad (src/util/atomic-write.ts): short writes are completed or
 * refused, a full disk or a file-size limit is a UserError naming the folder, what was written and the space it
 * needs, and the previous files (checkpoint, feature store index, bundle, prepared run) still load.
 * The end-to-end case runs `sat train --resume` under a file-size limit (prlimit, SIGXFSZ ignored) a few bytes
 * below the checkpoint's size: it used to print "Done (completed)" and leave latest and best truncated.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { loadRun, prepareRun } from '../src/dataset/prepare.js';
import { buildBundle, writeBundle } from '../src/export/bundle.js';
import { readBundleFolder } from '../src/export/bundle-folder.js';
import { encodeHalf } from '../src/features/fp16.js';
import { openFeatureStore } from '../src/features/store.js';
import { FeatureStoreWriter } from '../src/features/store-writer.js';
import { writeFileAtomic, writeFilesAtomic, writeAllSync } from '../src/util/atomic-write.js';
import { UserError } from '../src/util/errors.js';
import { makeTinyRun, RED_BLUE } from './helpers/tiny-model.js';
import { oracleRun, tinyTrainFlags } from './helpers/oracle-run.js';
import { tempDir } from './helpers/train-fixture.js';
import { bundledChild } from './helpers/child-bundle.js';

type WriteSync = typeof fs.writeSync;

/** Runs `body` with fs.writeSync replaced by `fake` (which gets the real one). */
function withWriteSync<T>(fake: (real: WriteSync, ...args: Parameters<WriteSync>) => number, body: () => T): T {
  const real = fs.writeSync;
  fs.writeSync = ((...args: Parameters<WriteSync>) => fake(real, ...args)) as WriteSync;
  try {
    return body();
  } finally {
    fs.writeSync = real;
  }
}

/** withWriteSync around an async body: the fake stays in place until `body` settles. */
async function withWriteSyncAsync<T>(
  fake: (real: WriteSync, ...args: Parameters<WriteSync>) => number,
  body: () => Promise<T>,
): Promise<T> {
  const real = fs.writeSync;
  fs.writeSync = ((...args: Parameters<WriteSync>) => fake(real, ...args)) as WriteSync;
  try {
    return await body();
  } finally {
    fs.writeSync = real;
  }
}

/** A writeSync that writes at most `most` bytes per call (a slow pipe, a signal, a nearly full disk). */
const atMost =
  (most: number) =>
  (real: WriteSync, fd: number, buf: unknown, offset?: unknown, length?: unknown, position?: unknown) => {
    const bytes = typeof buf === 'string' ? Buffer.from(buf) : (buf as Uint8Array);
    const start = typeof offset === 'number' ? offset : 0;
    const len = Math.min(most, typeof length === 'number' ? length : bytes.length - start);
    return real(fd, bytes, start, len, typeof position === 'number' ? position : null);
  };

test('short writes: every byte is written however few bytes each writeSync takes', () => {
  const dir = tempDir('sat-short-');
  const file = path.join(dir, 'data.bin');
  const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
  withWriteSync(atMost(7), () => writeFileAtomic(file, [data.subarray(0, 300), data.subarray(300)]));
  assert.deepEqual(fs.readFileSync(file), data);
  withWriteSync(atMost(3), () => writeFileAtomic(file, 'héllo wörld'));
  assert.equal(fs.readFileSync(file, 'utf8'), 'héllo wörld');
});

test('a write that stops short is refused as a full disk; the old file stays and no temporary file is left', () => {
  const dir = tempDir('sat-short-');
  const file = path.join(dir, 'latest.json');
  fs.writeFileSync(file, 'old');
  let budget = 10;
  const fake = (real: WriteSync, fd: number, buf: unknown, offset?: unknown, length?: unknown) => {
    const n = Math.min(budget, typeof length === 'number' ? length : (buf as Uint8Array).length);
    budget -= n;
    return n === 0 ? 0 : real(fd, buf as Uint8Array, (offset as number) ?? 0, n, null);
  };
  const err = withWriteSync(fake, () => {
    try {
      writeFileAtomic(file, 'x'.repeat(100), 'the "latest" checkpoint');
    } catch (e) {
      return e;
    }
    return assert.fail('the short write went unnoticed');
  });
  assert.ok(err instanceof UserError, String(err));
  assert.match(
    err.message,
    new RegExp(
      `Could not write the "latest" checkpoint in ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: the disk is full \\(ENOSPC\\)\\. It needs 100 bytes`,
    ),
  );
  assert.match(err.message, /latest\.json was left as before/);
  assert.equal(fs.readFileSync(file, 'utf8'), 'old');
  assert.deepEqual(fs.readdirSync(dir), ['latest.json']);
  const fd = fs.openSync(path.join(dir, 'x'), 'w');
  assert.throws(
    () =>
      withWriteSync(
        () => 0,
        () => writeAllSync(fd, 'abc'),
      ),
    /ENOSPC: a write made no progress with 3 bytes left/,
  );
  fs.closeSync(fd);
});

test('a temporary left by a writer killed mid-write is removed by the next write of its file; a live one stays', () => {
  const dir = tempDir('sat-orphan-');
  const file = path.join(dir, 'latest.json');
  // a process that has exited: its pid names no running process (until reused, when its temporary is kept)
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  const dead = Number(gone.stdout.toString());
  assert.ok(dead > 0);
  fs.writeFileSync(`${file}.tmp-${dead}`, 'half of a file');
  fs.writeFileSync(`${file}.tmp-${process.ppid}`, 'a live writer'); // our parent runs
  fs.writeFileSync(path.join(dir, `other.json.tmp-${dead}`), 'another file: not ours to remove');
  writeFileAtomic(file, 'new');
  assert.equal(fs.readFileSync(file, 'utf8'), 'new');
  assert.deepEqual(fs.readdirSync(dir).sort(), [
    'latest.json',
    `latest.json.tmp-${process.ppid}`,
    `other.json.tmp-${dead}`,
  ]);
});

test('a group of files is written whole before any is replaced: out of space, every old file stays', () => {
  const dir = tempDir('sat-group-');
  const files = ['a.onnx', 'b.onnx', 'manifest.json'].map((n) => path.join(dir, n));
  for (const f of files) fs.writeFileSync(f, `old ${path.basename(f)}`);
  let calls = 0;
  const efbigOnThird = (real: WriteSync, ...args: Parameters<WriteSync>) => {
    if (++calls === 3) throw Object.assign(new Error('EFBIG: file too large, write'), { code: 'EFBIG' });
    return (real as (...a: unknown[]) => number)(...args);
  };
  let replacing = false;
  assert.throws(
    () =>
      withWriteSync(efbigOnThird, () =>
        writeFilesAtomic(
          files.map((f) => ({ file: f, data: 'new' })),
          'the bundle',
          {
            beforeReplace: () => {
              replacing = true;
            },
          },
        ),
      ),
    (e: Error) =>
      e instanceof UserError &&
      /Could not write the bundle in .*: a file reached the size limit of this process \(ulimit -f\) \(EFBIG\)\. It needs 9 bytes/.test(
        e.message,
      ) &&
      /a\.onnx, b\.onnx, manifest\.json were left as before/.test(e.message) &&
      /ulimit -f unlimited/.test(e.message),
  );
  assert.equal(replacing, false);
  for (const f of files) assert.equal(fs.readFileSync(f, 'utf8'), `old ${path.basename(f)}`);
  assert.equal(fs.readdirSync(dir).length, 3, 'no temporary file is left');
});

/** A writeSync that finds the disk full once `budget` bytes have been written. */
function diskFullAfter(budget: number) {
  return (real: WriteSync, fd: number, buf: unknown, offset?: unknown, length?: unknown, position?: unknown) => {
    const want = typeof length === 'number' ? length : (buf as Uint8Array).length;
    if (budget <= 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    const n = Math.min(budget, want);
    budget -= n;
    return (real as (...a: unknown[]) => number)(fd, buf, offset, n, position);
  };
}

test('a full disk while replacing a bundle or a prepared run: refused, the previous one still loads', async () => {
  const dir = tempDir('sat-bundle-full-');
  const tiny = await makeTinyRun(dir, RED_BLUE, { steps: 20 });
  const out = path.join(dir, 'bundle');
  const bundle = await buildBundle(tiny.run, { encoder: tiny.encoder });
  writeBundle(out, bundle);
  const before = Object.fromEntries(fs.readdirSync(out).map((f) => [f, fs.readFileSync(path.join(out, f))]));
  const again = await buildBundle(tiny.run, { encoder: tiny.encoder, dtype: 'fp16' });
  assert.throws(
    () => withWriteSync(diskFullAfter(2000), () => writeBundle(out, again)),
    (e: Error) =>
      e instanceof UserError && /Could not write the bundle in .*bundle: the disk is full \(ENOSPC\)/.test(e.message),
  );
  assert.deepEqual(
    Object.fromEntries(fs.readdirSync(out).map((f) => [f, fs.readFileSync(path.join(out, f))])),
    before,
    'every file as it was',
  );
  assert.equal((await readBundleFolder(out)).manifest.dtype, 'fp32', 'the previous bundle reads and verifies');

  const runDir = path.join(dir, 'run-prepared');
  const prepare = (seed: number) =>
    prepareRun({ dataset: 'shapes', out: runDir, images: 12, imageSize: 32, seed, silent: true });
  await prepare(1);
  const first = loadRun(runDir);
  await assert.rejects(
    withWriteSyncAsync(diskFullAfter(100), () => prepare(2)),
    (e: Error) =>
      e instanceof UserError &&
      /Could not write the prepared run \(vocab\.json, images\.jsonl, run\.json\) in /.test(e.message),
  );
  const still = loadRun(runDir);
  assert.deepEqual(
    [still.info.seed, still.images.length, still.vocab.size],
    [first.info.seed, first.images.length, first.vocab.size],
  );
});

test('feature store: a failed index append is cut back to the last good record; the store reopens with it', () => {
  const dir = path.join(tempDir('sat-store-full-'), 'store');
  const spec = {
    id: 'tiny',
    inputSize: 8,
    scaling: 'zero_one' as const,
    inputLayout: 'nhwc' as const,
    outputLayout: 'nhwc' as const,
    inputName: 'x',
    outputName: 'y',
    locations: 2,
    channels: 4,
  };
  const w = FeatureStoreWriter.open(dir, { spec, requested: 4 });
  const halves = (k: number) => encodeHalf(Float32Array.from({ length: 8 }, (_, i) => k + i / 8));
  w.append('one', halves(1));
  w.commit();
  w.append('two', halves(2));
  w.append('three', halves(3));
  const index = path.join(dir, 'index.jsonl');
  const goodIndex = fs.readFileSync(index);
  // the index append writes 20 bytes and then finds the disk full
  const indexFd = (w as unknown as { indexFd: number }).indexFd;
  let indexWrites = 0;
  const fake = (real: WriteSync, fd: number, buf: unknown, offset?: unknown, length?: unknown, position?: unknown) => {
    if (fd !== indexFd) return (real as (...a: unknown[]) => number)(fd, buf, offset, length, position);
    if (indexWrites++ > 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    return real(fd, buf as Uint8Array, offset as number, 20, null);
  };
  assert.throws(
    () => withWriteSync(fake, () => w.commit()),
    (e: Error) =>
      e instanceof UserError &&
      /the disk is full \(ENOSPC\)/.test(e.message) &&
      /keeps the 1 images committed before/.test(e.message),
  );
  assert.deepEqual(fs.readFileSync(index), goodIndex, 'the torn index line was cut off');
  assert.throws(() => w.commit(), /ENOSPC/, 'a failed writer takes no more records');
  w.close();
  const store = openFeatureStore(dir);
  assert.deepEqual(store.ids(), ['one']);
  store.close();
  const again = FeatureStoreWriter.open(dir, { spec, requested: 4 });
  again.append('two', halves(2));
  again.close();
  const reopened = openFeatureStore(dir);
  assert.deepEqual(reopened.ids().sort(), ['one', 'two']);
  reopened.close();
});

test('sat train --resume under a file-size limit just below the checkpoint: exit 2, latest and best intact', async (t) => {
  if (process.platform !== 'linux' || spawnSync('prlimit', ['--version']).status !== 0) {
    t.skip('needs Linux and prlimit (util-linux)');
    return;
  }
  const run = await oracleRun('sat-disk-full-', 16);
  const flags = ['--run', run, ...tinyTrainFlags(8)];
  const sat = (args: string[], limit?: number) => {
    const cmd = [process.execPath, bundledChild('src/cli.ts'), 'train', ...args];
    // SIGXFSZ ignored, so a write past the limit fails with EFBIG (or writes short) instead of killing the process
    const shell = limit === undefined ? cmd : ['prlimit', `--fsize=${limit}`, ...cmd];
    return spawnSync('bash', ['-c', 'trap "" XFSZ; exec "$@"', 'bash', ...shell], {
      encoding: 'utf8',
      timeout: 120_000,
    });
  };
  const first = sat([...flags, '--epochs', '1']);
  assert.equal(first.status, 0, first.stderr);
  const checkpoints = path.join(run, 'checkpoints');
  const latest = path.join(checkpoints, 'latest.safetensors');
  const size = fs.statSync(latest).size;
  const before = { latest: fs.readFileSync(latest), best: fs.readFileSync(path.join(checkpoints, 'best.safetensors')) };

  for (const limit of [size - 3, Math.floor(size / 2)]) {
    const full = sat([...flags, '--epochs', '2', '--resume'], limit);
    assert.equal(full.status, 2, `exit status ${full.status}, signal ${full.signal}; stderr:\n${full.stderr}`);
    assert.doesNotMatch(full.stderr, /Done \(/);
    assert.match(
      full.stderr,
      /sat: Could not write the "latest" checkpoint in \S*checkpoints: a file reached the size limit of this process \(ulimit -f\) \(EFBIG\)\. It needs \d/,
    );
    assert.match(full.stderr, /latest\.safetensors, latest\.json were left as before/);
    assert.deepEqual(fs.readFileSync(latest), before.latest, `limit ${limit}: latest is unchanged`);
    assert.deepEqual(fs.readFileSync(path.join(checkpoints, 'best.safetensors')), before.best);
    assert.equal(loadCheckpoint(checkpoints, 'latest').meta.progress.epoch, 1);
    assert.equal(loadCheckpoint(checkpoints, 'best').meta.progress.epoch, 1);
    assert.deepEqual(
      fs.readdirSync(checkpoints).filter((f) => f.includes('.tmp-')),
      [],
      'no temporary file is left',
    );
  }
  const resumed = sat([...flags, '--epochs', '2', '--resume']);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.equal(loadCheckpoint(checkpoints, 'latest').meta.progress.epoch, 2);
});
