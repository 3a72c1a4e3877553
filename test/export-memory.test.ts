/**
 * A caption memory end to end: `sat export --memory RUN` stores a prepared run's training images (pooled features
 * of the model's encoder, captions) in the bundle; onnxruntime-node, the browser entry and `sat caption` rerank by
 * consensus with it and agree; a bundle without one refuses consensus and says how to get it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { readBundleFolder } from '../src/export/bundle-folder.js';
import { prepareRun } from '../src/dataset/prepare.js';
import { runPaths } from '../src/dataset/run.js';
import { loadCaptioner } from '../src/models/load-captioner.js';
import { sat } from './helpers/cli-run.js';
import { rawPixels, webCaptionerFromFolder } from './helpers/web-in-node.js';
import { makeTinyRun, RED_BLUE, type TinyRun } from './helpers/tiny-model.js';

let dir: string, shapes: string, bundle: string, plain: string;
let tiny: TinyRun;
let red: string, blue: string;
const CONSENSUS = { beam: 2, consensus: 3, consensusSamples: 4, alternatives: true } as const;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-memory-'));
  tiny = await makeTinyRun(path.join(dir, 'tiny'), RED_BLUE, { steps: 300 });
  shapes = path.join(dir, 'shapes');
  await prepareRun({ dataset: 'shapes', out: shapes, images: 24, imageSize: 32, seed: 4, silent: true });
  await sat(['features', '--run', shapes, ...tiny.encoderFlags]);
  bundle = path.join(dir, 'bundle');
  plain = path.join(dir, 'plain');
  await sat(['export', '--model', tiny.run, '--memory', shapes, '--out', bundle, ...tiny.encoderFlags]);
  await sat(['export', '--model', tiny.run, '--out', plain, ...tiny.encoderFlags]);
  red = path.join(dir, 'red.png');
  blue = path.join(dir, 'blue.png');
  for (const [file, background] of [
    [red, '#e01010'],
    [blue, '#1030e0'],
  ])
    await sharp({ create: { width: 16, height: 16, channels: 3, background } })
      .png()
      .toFile(file);
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

test("sat export --memory stores the run's training images; Node, the browser and the CLI rerank alike", async () => {
  const train = fs
    .readFileSync(runPaths(shapes).images, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { split: string; captions: string[] })
    .filter((im) => im.split === 'train' && im.captions.length > 0);
  const { manifest, files } = await readBundleFolder(bundle);
  assert.deepEqual(
    { ...manifest.memory, source: undefined },
    {
      vectors: 'memory-vectors.bin',
      captions: 'memory-captions.json',
      images: train.length,
      channels: 3,
      encoderId: manifest.encoder.id,
      dtype: 'int8',
      source: undefined,
    },
  );
  assert.deepEqual(manifest.memory!.source, { run: 'shapes', split: 'train' });
  assert.equal(files.get('memory-vectors.bin')!.byteLength, train.length * (4 + 3));

  const node = await loadCaptioner(bundle);
  assert.equal(node.info.consensus, true);
  const reranked = await node.captionBatch([red, blue], CONSENSUS);
  for (const r of reranked) {
    assert.equal(r.caption, r.alternatives[0].caption, 'the caption is the best-ranked candidate');
    assert.equal(r.words.length, r.caption.split(' ').length);
    r.words.forEach((w) => assert.ok(Math.abs(w.attention.reduce((a, b) => a + b, 0) - 1) < 1e-4));
    assert.ok(r.alternatives.every((a, i, all) => i === 0 || all[i - 1].score >= a.score));
  }
  await node.dispose();

  const { captioner: web, fetched } = await webCaptionerFromFolder(bundle);
  const pixels = await rawPixels([red, blue]);
  await web.caption(pixels[0], { beam: 2 });
  assert.ok(!fetched.some((name) => name.startsWith('memory-')), 'the memory is fetched only for consensus');
  const inBrowser = await web.captionBatch(pixels, CONSENSUS);
  assert.deepEqual(
    fetched.filter((name) => name.startsWith('memory-')).sort(),
    ['memory-captions.json', 'memory-vectors.bin'],
    'fetched once, on first use',
  );
  await web.captionBatch(pixels, CONSENSUS);
  assert.equal(fetched.filter((name) => name.startsWith('memory-')).length, 2);
  assert.deepEqual(
    inBrowser.map((r) => r.alternatives.map((a) => a.caption)),
    reranked.map((r) => r.alternatives.map((a) => a.caption)),
  );
  await web.dispose();

  const cli = await sat([
    'caption',
    '--model',
    bundle,
    '--beam',
    '2',
    '--consensus',
    '3',
    '--consensus-samples',
    '4',
    red,
    blue,
  ]);
  assert.deepEqual(
    cli.trim().split('\n'),
    reranked.map((r, i) => `${[red, blue][i]}\t${r.caption}`),
  );
});

test("a bundle without a memory refuses consensus; --memory needs a prepared run with the encoder's features", async () => {
  const captioner = await loadCaptioner(plain);
  assert.equal(captioner.info.consensus, false);
  await assert.rejects(
    captioner.caption(red, { beam: 2, consensus: 3 }),
    /needs a caption memory, and .* has none: export the model with `sat export --memory RUN`/,
  );
  assert.equal((await captioner.caption(red, { beam: 2 })).caption, 'a red square');
  await captioner.dispose();
  await assert.rejects(
    sat([
      'export',
      '--model',
      tiny.run,
      '--memory',
      path.join(dir, 'nowhere'),
      '--out',
      path.join(dir, 'x'),
      ...tiny.encoderFlags,
    ]),
    /--memory .*nowhere is not a prepared run/,
  );
  await assert.rejects(
    sat(['export', '--model', bundle, '--memory', shapes, '--site', path.join(dir, 'site')]),
    /--dtype, --card, --memory and the encoder flags do not apply/,
  );
  assert.equal(fs.existsSync(path.join(dir, 'x')), false);
});
