/**
 * Any number of images: `sat caption` and Captioner.captionStream read, encode and decode images in bounded
 * batches, write each caption as it is done, and give the captions one big batch gives (sampling included);
 * and a command line as long as thousands of file names does not crash onnxruntime (its telemetry's regex
 * over /proc/self/cmdline overflowed the stack; src/features/node-onnxruntime.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import type { CaptionedImage } from '../src/decode/captioner-api.js';
import { loadCaptioner, type NodeImageInput } from '../src/models/load-captioner.js';
import { sat } from './helpers/cli-run.js';
import { makeTinyRun, RED_BLUE, SIZE, type TinyRun } from './helpers/tiny-model.js';
import { bundledChild } from './helpers/child-bundle.js';

let dir: string;
let tiny: TinyRun;
const COLOURS = [
  { hex: '#e01010', caption: 'a red square' },
  { hex: '#1030e0', caption: 'a blue circle' },
];
let files: string[];

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-caption-many-'));
  tiny = await makeTinyRun(dir, RED_BLUE, { steps: 300 });
  const red = await sharp({ create: { width: 6, height: 5, channels: 3, background: COLOURS[0].hex } })
    .png()
    .toBuffer();
  const blue = await sharp({ create: { width: 6, height: 5, channels: 3, background: COLOURS[1].hex } })
    .jpeg()
    .toBuffer();
  files = Array.from({ length: 520 }, (_, i) => {
    const file = path.join(dir, `photo-${String(i).padStart(4, '0')}.${i % 3 === 0 ? 'jpg' : 'png'}`);
    fs.writeFileSync(file, i % 3 === 0 ? blue : red);
    return file;
  });
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

const expected = (i: number) => COLOURS[i % 3 === 0 ? 1 : 0].caption;

test('a 60 KB command line: onnxruntime starts (its telemetry used to overflow the stack on it)', () => {
  const child = bundledChild('test/helpers/ort-command-line-child.ts');
  const args = Array.from({ length: 5000 }, (_, i) => `photos/IMG_${String(i).padStart(5, '0')}.jpg`);
  const env = { ...process.env };
  delete env.ORT_DISABLE_TELEMETRY;
  const r = spawnSync(process.execPath, [child, ...args], { encoding: 'utf8', env });
  assert.equal(r.signal, null, `the child died of ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /session ok \(\d+ bytes/);
});

test('sat caption: 520 image files in batches of 64, one line each, in order', async () => {
  const out = await sat(['caption', '--model', tiny.run, ...tiny.encoderFlags, ...files]);
  const lines = out.trim().split('\n');
  assert.equal(lines.length, files.length);
  lines.forEach((line, i) => assert.equal(line, `${files[i]}\t${expected(i)}`));
});

test('sat caption --images-from: a list file (more images than a command line holds) after the named ones', async () => {
  const list = path.join(dir, 'list.txt');
  fs.writeFileSync(list, ['# holiday photos', ...files.slice(1, 100), '', files[100]].join('\n') + '\n');
  const out = await sat(['caption', '--model', tiny.run, ...tiny.encoderFlags, files[0], '--images-from', list]);
  const lines = out.trim().split('\n');
  assert.equal(lines.length, 101);
  lines.forEach((line, i) => assert.equal(line, `${files[i]}\t${expected(i)}`));
  await assert.rejects(
    sat(['caption', '--model', tiny.run, ...tiny.encoderFlags, '--images-from', path.join(dir, 'none.txt')]),
    /--images-from .*none\.txt: ENOENT.*one image path or URL per line/,
  );
});

test('sat caption --json streams one caption per line and parses as one document', async () => {
  const some = files.slice(0, 70);
  const out = await sat([
    'caption',
    '--model',
    tiny.run,
    ...tiny.encoderFlags,
    '--json',
    '--batch-size',
    '16',
    ...some,
  ]);
  assert.equal(out.trim().split('\n').length, 70 + 2);
  const json = JSON.parse(out) as { captions: { image: string; caption: string }[]; decoding: { kind: string } };
  assert.equal(json.decoding.kind, 'greedy');
  assert.deepEqual(
    json.captions.map((c) => c.image),
    some,
  );
  assert.deepEqual(
    json.captions.map((c) => c.caption),
    some.map((_, i) => expected(i)),
  );
  await assert.rejects(
    sat(['caption', '--model', tiny.run, ...tiny.encoderFlags, '--batch-size', '0', files[0]]),
    /--batch-size/,
  );
});

test('captionStream pulls one batch at a time and samples what one big batch samples', async () => {
  const captioner = await loadCaptioner(tiny.run, { backend: 'native', encoder: tiny.encoder });
  try {
    let pulled = 0;
    async function* images(): AsyncGenerator<NodeImageInput> {
      for (let i = 0; i < 100; i++) {
        pulled++;
        const colour = i % 3 === 0 ? [0x10, 0x30, 0xe0] : [0xe0, 0x10, 0x10];
        yield {
          data: Uint8Array.from({ length: SIZE * SIZE * 3 }, (_, k) => colour[k % 3]),
          width: SIZE,
          height: SIZE,
        };
      }
    }
    const options = { sample: true, temperature: 3, seed: 7 };
    const streamed: CaptionedImage<NodeImageInput>[] = [];
    for await (const item of captioner.captionStream(images(), options, { batchSize: 16, pixels: true })) {
      assert.equal(item.index, streamed.length);
      assert.ok(
        pulled <= (Math.floor(item.index / 16) + 1) * 16,
        `image ${item.index} came out after ${pulled} were read`,
      );
      assert.equal(item.rgb?.length, SIZE * SIZE * 3);
      streamed.push(item);
    }
    assert.equal(streamed.length, 100);
    const whole: NodeImageInput[] = [];
    for await (const image of images()) whole.push(image);
    const batch = await captioner.captionBatch(whole, options);
    assert.deepEqual(
      streamed.map((s) => s.result.ids),
      batch.map((c) => c.ids),
    );
    assert.ok(new Set(batch.map((c) => c.caption)).size > 2, 'temperature 3 should vary the sampled captions');
    await assert.rejects(async () => {
      for await (const _ of captioner.captionStream(images(), {}, { batchSize: 0 })) void _;
    }, /batchSize must be an integer from 1/);
  } finally {
    await captioner.dispose();
  }
});
