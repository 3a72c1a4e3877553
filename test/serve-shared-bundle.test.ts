/**
 * `sat serve` exports a checkpoint once and shares the bundle's bytes with its model threads: the files sit in
 * SharedArrayBuffers, a model thread captions from them without exporting again, and the captions are those of
 * the Captioner API on the same model.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { buildBundle } from '../src/export/bundle.js';
import { loadCaptioner } from '../src/models/load-captioner.js';
import { SupervisedEngine } from '../src/serve/supervisor.js';
import { modelThreadLimits, shareBundle, WorkerEngine } from '../src/serve/worker-engine.js';
import { makeTinyRun, RED_BLUE, type TinyRun } from './helpers/tiny-model.js';

let dir: string;
let tiny: TinyRun;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-shared-bundle-'));
  tiny = await makeTinyRun(dir, RED_BLUE, { steps: 300 });
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a model thread warms up on a blank full batch before it is ready, and captions as without', async () => {
  const shared = shareBundle(await buildBundle(tiny.run, { encoder: tiny.encoder }));
  const data = { source: tiny.run, options: { backend: 'onnx' as const }, exported: shared };
  const warm = await WorkerEngine.start(
    { ...data, warmup: { images: 5, options: { beam: 2 } } },
    modelThreadLimits(256),
  );
  const cold = await WorkerEngine.start(data, modelThreadLimits(256));
  try {
    const report = warm.details?.warmup as { images: number; seconds: number };
    assert.equal(report.images, 5);
    assert.ok(report.seconds >= 0);
    assert.equal(cold.details?.warmup, undefined);
    const side = warm.info.inputSize;
    const rgb = [10, 200].map((v) => new Uint8Array(side * side * 3).fill(v));
    const a = await warm.captionBatch(rgb, { beam: 2 });
    const b = await cold.captionBatch(rgb, { beam: 2 });
    assert.deepEqual(
      a.captions.map((c) => c.caption),
      b.captions.map((c) => c.caption),
    );
  } finally {
    await Promise.all([warm.dispose(), cold.dispose()]);
  }
});

test('a model thread captions from a shared export without exporting again', async () => {
  const exported = await buildBundle(tiny.run, { encoder: tiny.encoder });
  const shared = shareBundle(exported);
  assert.ok([...shared.files.values()].every((bytes) => bytes.buffer instanceof SharedArrayBuffer));
  assert.deepEqual([...shared.files.keys()], [...exported.files.keys()]);
  // no encoder options: exporting the checkpoint (a user .onnx encoder) would fail, so the thread must use the bytes
  const engine = await WorkerEngine.start(
    { source: tiny.run, options: { backend: 'onnx' }, exported: shared },
    modelThreadLimits(256),
  );
  assert.equal(engine.resourceLimits?.maxOldGenerationSizeMb, 256, 'the model thread runs under its heap limit');
  assert.equal(engine.resourceLimits?.stackSizeMb, 4);
  const api = await loadCaptioner(tiny.run, { encoder: tiny.encoder });
  try {
    assert.equal(engine.info.modelId, api.info.modelId);
    const images = await Promise.all(
      ['#e01010', '#1030e0'].map((c) =>
        sharp({ create: { width: 20, height: 12, channels: 3, background: c } })
          .png()
          .toBuffer(),
      ),
    );
    const rgb = await Promise.all(images.map((b) => api.preprocess(b)));
    const { captions } = await engine.captionBatch(rgb, { beam: 3, alpha: 0, maxLength: 4, alternatives: true });
    const expected = await api.captionBatch(images, { beam: 3, alternatives: true });
    assert.deepEqual(
      captions.map((c) => c.caption),
      ['a red square', 'a blue circle'],
    );
    assert.deepEqual(
      captions.map((c) => c.alternatives.map((a) => a.caption)),
      expected.map((c) => c.alternatives.map((a) => a.caption)),
    );
  } finally {
    await engine.dispose();
    await api.dispose();
  }
});

test('a real model thread that overruns its batch is terminated and replaced by a new one', async () => {
  const shared = shareBundle(await buildBundle(tiny.run, { encoder: tiny.encoder }));
  const start = () =>
    WorkerEngine.start({ source: tiny.run, options: { backend: 'onnx' }, exported: shared }, modelThreadLimits(256));
  const first = await start();
  const events: string[] = [];
  const supervised = new SupervisedEngine(first, start, {
    batchTimeoutMs: 1,
    restartBackoffMs: { first: 10, max: 100 },
    onEvent: (m) => events.push(m),
  });
  try {
    const rgb = new Uint8Array(first.info.inputSize * first.info.inputSize * 3).fill(128);
    await assert.rejects(supervised.captionBatch([rgb, rgb, rgb, rgb], { beam: 3 }), /ran past --batch-timeout/);
    assert.match(String(await first.whenGone()), /exited|crashed/, 'the overrunning thread was ended');
    assert.equal(first.alive, false);
    const end = performance.now() + 30_000;
    while (!supervised.alive && performance.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.equal(supervised.alive, true, events.join('; '));
    assert.equal(supervised.starts, 2);
    assert.match(events.join('\n'), /the new one is ready/);
  } finally {
    await supervised.dispose();
  }
});
