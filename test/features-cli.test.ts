import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import command from '../src/cli/features.js';
import { parseCommandArgs } from '../src/cli/command.js';
import { partsDir } from '../src/features/format.js';
import { openRunFeatures } from '../src/features/run-feature-store.js';
import { openFeatureStore } from '../src/features/store.js';
import { mirroredId } from '../src/features/types.js';
import { prepareRun } from '../src/dataset/prepare.js';
import { runPaths } from '../src/dataset/run.js';
import { UserError } from '../src/util/errors.js';
import { scaleGraph, tmpDir } from './helpers/features-fixture.js';
import { onnxEncoderFlags } from './helpers/tiny-model.js';

/** A prepared shapes run (12 small images) and a user ONNX encoder file (16x16 NHWC "pixels x 2"). */
async function setup() {
  const dir = tmpDir('cli');
  const run = path.join(dir, 'run');
  await prepareRun({ dataset: 'shapes', out: run, images: 12, imageSize: 32, silent: true });
  const onnx = path.join(dir, 'pixels.onnx');
  fs.writeFileSync(onnx, scaleGraph({ size: 16, layoutIn: 'nhwc', layoutOut: 'nhwc', scale: 2 }));
  const encoder = onnxEncoderFlags(onnx, 16);
  const images = fs
    .readFileSync(runPaths(run).images, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { id: string; path: string; split: string });
  return { run, encoder, images };
}

async function sat(args: string[]): Promise<string> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = (() => true) as typeof process.stderr.write; // progress bars
  try {
    await command.run(parseCommandArgs(command, args) as never);
  } finally {
    console.log = log;
    process.stderr.write = write;
  }
  return lines.join('\n');
}

test('sat features extracts the chosen splits, resumes for the rest and points run.json at the store', async () => {
  const { run, encoder, images } = await setup();
  const train = images.filter((im) => im.split === 'train');
  assert.ok(train.length > 0 && train.length < images.length);
  await sat(['--run', run, ...encoder, '--split', 'train', '--batch', '3']);
  let info = JSON.parse(fs.readFileSync(runPaths(run).runJson, 'utf8')).features;
  assert.equal(info.images, train.length);
  assert.equal(info.locations, 256);
  assert.equal(info.channels, 3);

  const out = await sat(['--run', run, ...encoder, '--verify']);
  assert.match(out, new RegExp(`${images.length - train.length} images extracted.*${train.length} already there`));
  assert.match(out, /all checksums match/);
  info = JSON.parse(fs.readFileSync(runPaths(run).runJson, 'utf8')).features;
  assert.equal(info.images, images.length);
  assert.equal(info.dir, runPaths(run).features(info.encoderId));
  const store = openRunFeatures(run);
  assert.deepEqual(store.ids().sort(), images.map((im) => im.id).sort());
  assert.equal(store.read(images[0].id).length, 256 * 3);
});

test('--shard i/n slices then --merge gives the same store as one extraction; a broken image is skipped, not fatal', async () => {
  const { run, encoder, images } = await setup();
  fs.writeFileSync(images[5].path, 'not a png');
  await sat(['--run', run, ...encoder, '--shard', '1/3']);
  await assert.rejects(sat(['--run', run, ...encoder, '--merge']), /parts 0\/3, 2\/3 are missing/);
  await assert.rejects(sat(['--run', run, ...encoder]), /not merged yet/);
  await sat(['--run', run, ...encoder, '--shard', '0/3']);
  await sat(['--run', run, ...encoder, '--shard', '2/3']);
  const out = await sat(['--run', run, ...encoder, '--merge']);
  assert.match(out, /merged 3 parts/);
  const storeDir = JSON.parse(fs.readFileSync(runPaths(run).runJson, 'utf8')).features.dir as string;
  assert.equal(fs.existsSync(partsDir(storeDir)), false);
  const merged = openFeatureStore(storeDir);
  assert.equal(merged.size, images.length - 1);
  assert.deepEqual(
    merged.skipped().map((s) => s.id),
    [images[5].id],
  );
  assert.match(merged.skipped()[0].reason, /not an image/);

  const whole = path.join(path.dirname(run), 'whole');
  fs.cpSync(run, whole, { recursive: true });
  fs.rmSync(path.join(whole, 'features'), { recursive: true });
  await sat(['--run', whole, ...encoder]);
  const single = openRunFeatures(whole);
  for (const id of single.ids()) assert.deepEqual(merged.read(id), single.read(id));
});

test("--mirror adds a mirrored view of every train image: its features are the image's, mirrored left to right", async () => {
  const { run, encoder, images } = await setup();
  const train = images.filter((im) => im.split === 'train');
  await sat(['--run', run, ...encoder, '--mirror']);
  const store = openRunFeatures(run);
  assert.deepEqual(store.ids().sort(), [...images.map((im) => im.id), ...train.map((im) => mirroredId(im.id))].sort());
  for (const im of train) {
    // the encoder is "pixels x 2" on 16 x 16 NHWC: location y * 16 + x holds pixel (y, x)
    const own = store.read(im.id),
      mirrored = store.read(mirroredId(im.id));
    for (let y = 0; y < 16; y++)
      for (let x = 0; x < 16; x++)
        for (let c = 0; c < 3; c++)
          assert.equal(mirrored[(y * 16 + x) * 3 + c], own[(y * 16 + 15 - x) * 3 + c], `${im.id} (${y}, ${x}, ${c})`);
  }
  assert.ok(train.some((im) => !store.read(im.id).every((v, i) => v === store.read(mirroredId(im.id))[i])));
  await assert.rejects(sat(['--run', run, ...encoder, '--mirror', '--split', 'dev']), /leaves out train: add it/);
});

test('bad flags are refused with the flag named', async () => {
  const { run, encoder } = await setup();
  await assert.rejects(
    sat(['--run', run, ...encoder, '--shard', '3/3']),
    (e: Error) => e instanceof UserError && /--shard must be i\/n/.test(e.message),
  );
  await assert.rejects(sat(['--run', run, ...encoder, '--shard', '0/2', '--merge']), /do not go together/);
  await assert.rejects(sat(['--run', run, ...encoder, '--split', 'val']), /unknown split "val"/);
  await assert.rejects(sat(['--run', path.join(run, 'nope')]), /not a prepared run/);
});
