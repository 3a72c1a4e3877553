import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { extractFeatures, selectSlice, type ImageRef } from '../src/features/extract.js';
import { indexPath, readMeta, readSkipped } from '../src/features/format.js';
import { loadRgb } from '../src/features/image.js';
import { nchwToNhwc, scalingCoefficients, writeImageToBatch } from '../src/features/pixels.js';
import { asPixelBuffer, resizeToSquareRgb } from '../src/features/resize.js';
import { openFeatureStore } from '../src/features/store.js';
import { Rng } from '../src/util/rng.js';
import { scaleEncoder, tmpDir, writeBadImages, writeSolidImage } from './helpers/features-fixture.js';
import { bundledChild } from './helpers/child-bundle.js';

const quiet = { progress: false as const, log: () => {} };

async function makeImages(dir: string, n: number, opts: { format?: 'jpeg' | 'png' } = {}): Promise<ImageRef[]> {
  const refs: ImageRef[] = [];
  for (let k = 0; k < n; k++) {
    const file = path.join(dir, `im${String(k).padStart(3, '0')}.${opts.format === 'png' ? 'png' : 'jpg'}`);
    await writeSolidImage(file, k, opts);
    refs.push({ id: path.basename(file), path: file });
  }
  return refs;
}

test('features are the encoder output of the scaled, resized pixels, in [locations, channels] order', async () => {
  const dir = tmpDir('extract');
  const images = await makeImages(dir, 5, { format: 'png' });
  const store = path.join(dir, 'store');
  const res = await extractFeatures({ ...quiet, images, model: scaleEncoder({ scale: 2 }), dir: store, batchSize: 2 });
  assert.deepEqual(
    { stored: res.stored, already: res.alreadyStored, skipped: res.skipped.length },
    { stored: 5, already: 0, skipped: 0 },
  );
  const r = openFeatureStore(store);
  assert.equal(r.locations, 16);
  assert.equal(r.channels, 3);
  for (const [k, im] of images.entries()) {
    const rgb = await loadRgb(im.path, 4);
    const f = r.read(im.id);
    for (let i = 0; i < 48; i++) assert.ok(Math.abs(f[i] - (2 * rgb[i]) / 255) < 1e-3, `${im.id}[${i}]`);
    // PNG is lossless and a solid colour stays solid through the resize.
    const colour = [(k * 37) % 256, (k * 91 + 20) % 256, (k * 53 + 200) % 256];
    for (let p = 0; p < 16; p++)
      for (let c = 0; c < 3; c++) assert.ok(Math.abs(f[p * 3 + c] - (2 * colour[c]) / 255) < 1e-3);
  }
  assert.equal(readMeta(store).complete, true);
});

test('NCHW-in/NCHW-out and mixed-layout graphs give the same features as the NHWC graph', async () => {
  const dir = tmpDir('layouts');
  // Non-uniform images so a wrong transpose cannot pass.
  const images: ImageRef[] = [];
  for (let k = 0; k < 3; k++) {
    const file = path.join(dir, `g${k}.png`);
    const raw = Buffer.from(Array.from({ length: 5 * 7 * 3 }, (_, i) => (i * 29 + k * 71) % 256));
    await sharp(raw, { raw: { width: 5, height: 7, channels: 3 } })
      .png()
      .toFile(file);
    images.push({ id: `g${k}`, path: file });
  }
  const read = async (
    layoutIn: 'nhwc' | 'nchw',
    layoutOut: 'nhwc' | 'nchw',
    scaling: 'minus_one_one' | { mean: [number, number, number]; std: [number, number, number] },
  ) => {
    const store = path.join(dir, `${layoutIn}-${layoutOut}-${typeof scaling}`);
    await extractFeatures({
      ...quiet,
      images,
      model: scaleEncoder({ size: 6, layoutIn, layoutOut, scaling }),
      dir: store,
      batchSize: 2,
    });
    const r = openFeatureStore(store);
    return images.map((im) => Array.from(r.read(im.id)));
  };
  const torchvision = {
    mean: [0.485, 0.456, 0.406] as [number, number, number],
    std: [0.229, 0.224, 0.225] as [number, number, number],
  };
  for (const scaling of ['minus_one_one' as const, torchvision]) {
    const ref = await read('nhwc', 'nhwc', scaling);
    assert.deepEqual(await read('nchw', 'nchw', scaling), ref);
    assert.deepEqual(await read('nhwc', 'nchw', scaling), ref);
    assert.deepEqual(await read('nchw', 'nhwc', scaling), ref);
  }
});

test('input scaling and batch layout helpers', () => {
  const { mul, add } = scalingCoefficients({ mean: [0.5, 0.5, 0.5], std: [0.25, 0.5, 1] });
  assert.ok(Math.abs(255 * mul[0] + add[0] - 2) < 1e-6);
  assert.ok(Math.abs(0 * mul[1] + add[1] + 1) < 1e-6);
  const rgb = Uint8Array.from([0, 255, 51, 102, 153, 204, 255, 0, 0, 1, 2, 3]); // 2x2 image
  const nchw = new Float32Array(2 * 12);
  writeImageToBatch(rgb, nchw, 1, { size: 2, scaling: 'zero_one', layout: 'nchw' });
  assert.deepEqual(
    Array.from(nchw.subarray(12, 16)).map((v) => Math.round(v * 255)),
    [0, 102, 255, 1],
  ); // red plane
  assert.deepEqual(Array.from(nchwToNhwc(Float32Array.from([1, 2, 3, 4, 5, 6]), 1, 2, 3)), [1, 4, 2, 5, 3, 6]);
});

test("the browser resize (TypeScript) is sharp's when shrinking, within a fraction of a level; pixels are checked once", async () => {
  const rng = new Rng(5);
  for (const [W, H, S] of [
    [640, 424, 224],
    [97, 131, 64],
  ]) {
    // a photo-like image: smooth gradients, edges of 16 px blocks and noise
    const data = Uint8Array.from({ length: W * H * 3 }, (_, i) => {
      const p = Math.floor(i / 3),
        x = p % W,
        y = Math.floor(p / W),
        c = i % 3;
      const v =
        128 +
        100 * Math.sin((x * (c + 1)) / 37 + y / 23) +
        (((x >> 4) + (y >> 4)) % 2 ? 20 : -20) +
        (rng.next() - 0.5) * 30;
      return Math.max(0, Math.min(255, Math.round(v)));
    });
    const ours = resizeToSquareRgb({ data, width: W, height: H, channels: 3 }, S);
    const ref = await sharp(data, { raw: { width: W, height: H, channels: 3 } })
      .resize(S, S, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer();
    let sum = 0,
      max = 0;
    ours.forEach((v, i) => {
      sum += Math.abs(v - ref[i]);
      max = Math.max(max, Math.abs(v - ref[i]));
    });
    assert.ok(
      sum / ours.length < 0.5 && max <= 4,
      `${W}x${H} -> ${S}: mean |difference| ${sum / ours.length}, max ${max}`,
    );
  }
  assert.deepEqual(asPixelBuffer({ data: new Uint8Array(24), width: 2, height: 3 }), {
    data: new Uint8Array(24),
    width: 2,
    height: 3,
    channels: 4,
  });
  for (const bad of [
    null,
    'x',
    { data: [1, 2, 3], width: 1, height: 1 },
    { data: new Uint8Array(5), width: 1, height: 1 },
    { data: new Uint8Array(6), width: 2, height: 1, channels: 4 },
  ]) {
    assert.equal(asPixelBuffer(bad), null, JSON.stringify(bad));
  }
});

test('bad files are skipped with a message naming them, listed in skipped.json, and retried on the next run', async () => {
  const dir = tmpDir('bad');
  const good = await makeImages(dir, 3);
  const bad = await writeBadImages(dir);
  const images: ImageRef[] = [
    good[0],
    { id: 'truncated', path: bad.truncated },
    { id: 'corrupt', path: bad.corrupt },
    good[1],
    { id: 'text', path: bad.notImage },
    { id: 'missing', path: bad.missing },
    { id: 'bomb', path: bad.bomb },
    good[2],
  ];
  const store = path.join(dir, 'store');
  const lines: string[] = [];
  const res = await extractFeatures({
    images,
    model: scaleEncoder(),
    dir: store,
    batchSize: 3,
    progress: false,
    log: (l) => lines.push(l),
  });
  assert.equal(res.stored, 3);
  const reasons = Object.fromEntries(res.skipped.map((s) => [s.id, s.reason]));
  assert.deepEqual(Object.keys(reasons).sort(), ['bomb', 'corrupt', 'missing', 'text', 'truncated']);
  assert.match(reasons.truncated, /truncated\.jpg: truncated or corrupt/);
  assert.match(reasons.corrupt, /corrupt\.jpg: truncated or corrupt/);
  assert.match(reasons.text, /captions\.jpg: not an image/);
  assert.match(reasons.missing, /does-not-exist\.jpg: file not found/);
  assert.match(reasons.bomb, /bomb\.png: too many pixels/);
  assert.equal(lines.length, 5);
  for (const id of Object.keys(reasons))
    assert.ok(lines.some((l) => l.includes(path.basename(images.find((i) => i.id === id)!.path))));
  assert.deepEqual(
    readSkipped(store)
      .map((s) => s.id)
      .sort(),
    Object.keys(reasons).sort(),
  );
  assert.deepEqual(openFeatureStore(store).ids().sort(), good.map((g) => g.id).sort());

  // The user fixes one file and reruns: only the skipped images are tried again.
  await writeSolidImage(bad.missing, 9);
  const again = await extractFeatures({ ...quiet, images, model: scaleEncoder(), dir: store, batchSize: 3 });
  assert.deepEqual(
    { stored: again.stored, already: again.alreadyStored, skipped: again.skipped.length },
    { stored: 1, already: 3, skipped: 4 },
  );
  assert.equal(readSkipped(store).length, 4);
  assert.ok(openFeatureStore(store).has('missing'));

  // A generous pixel bound lets the (header-only) bomb through to the decoder, which then fails on its data.
  const loose = await extractFeatures({
    ...quiet,
    images: [images[6]],
    model: scaleEncoder(),
    dir: path.join(dir, 'loose'),
    maxPixels: 3e9,
  });
  assert.doesNotMatch(loose.skipped[0].reason, /too many pixels/);
});

test('slices are deterministic, disjoint and cover the list', () => {
  const items = Array.from({ length: 10 }, (_, i) => ({ id: `id${(i * 7) % 10}` }));
  const parts = [0, 1, 2].map((i) => selectSlice(items, i, 3).map((x) => x.id));
  assert.deepEqual(parts.flat().sort(), items.map((x) => x.id).sort());
  assert.deepEqual(
    selectSlice([...items].reverse(), 1, 3).map((x) => x.id),
    parts[1],
  );
});

test('kill -9 mid-extraction, rerun: it resumes and every entry is intact', async () => {
  const dir = tmpDir('kill');
  const images = await makeImages(dir, 60);
  const store = path.join(dir, 'store');
  const list = path.join(dir, 'images.json');
  fs.writeFileSync(list, JSON.stringify(images));
  // The child extracts one image per batch and pauses after each commit so the kill lands mid-way.
  const child = spawn(process.execPath, [bundledChild('test/helpers/features-kill-child.ts'), list, store], {
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  while (!fs.existsSync(indexPath(store)) || fs.readFileSync(indexPath(store), 'utf8').split('\n').length < 12) {
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGKILL');
  await exited;
  const before = openFeatureStore(store).size;
  assert.ok(before >= 11 && before < 60, `killed after ${before} images`);

  const res = await extractFeatures({ ...quiet, images, model: scaleEncoder(), dir: store, batchSize: 4 });
  assert.equal(res.alreadyStored, before);
  assert.equal(res.stored, 60 - before);
  const r = openFeatureStore(store);
  assert.equal(r.size, 60);
  assert.deepEqual(r.verify(), []);
  const fresh = path.join(dir, 'fresh');
  await extractFeatures({ ...quiet, images, model: scaleEncoder(), dir: fresh, batchSize: 7 });
  const f = openFeatureStore(fresh);
  for (const im of images) assert.deepEqual(r.read(im.id), f.read(im.id));
});
