/**
 * Ensembles (src/decode/ensemble.ts): an ensemble of one is the model, two identical models caption as one
 * (log-probs within float rounding), the averaged log-probabilities are what the search sees, the asynchronous
 * ensemble (ONNX backends) decodes as the synchronous one (native), and mismatched members are refused with what
 * differs, in the library, the CLI and the export bundle.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { decodeImages, decodeImagesAsync, type DecodeVocab } from '../src/decode/index.js';
import { asyncEnsembleModel, checkEnsembleMembers, ensembleModel } from '../src/decode/ensemble.js';
import { logSumExpRows } from '../src/decode/logits.js';
import type { CaptionResult } from '../src/decode/captioner-api.js';
import type { CaptionOptions } from '../src/decode/options.js';
import { readBundleFolder } from '../src/export/bundle-folder.js';
import { loadCaptioner } from '../src/models/load-captioner.js';
import { BUNDLE_FORMAT_VERSION } from '../src/export/manifest.js';
import type { DecoderModel } from '../src/model/types.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { sat } from './helpers/cli-run.js';
import { rawPixels, webCaptionerFromFolder } from './helpers/web-in-node.js';
import { AsyncTableModel, keyFeatures, TableModel, type NextTokenTable } from './helpers/fake-model.js';
import { makeTinyRun, RED_BLUE, type TinyRun } from './helpers/tiny-model.js';
import { modelConfig, peakedModel } from './helpers/model-fixture.js';

const V = 10,
  L = 4,
  C = 3,
  N = 4;
const vocab: DecodeVocab = { pad: 0, unk: 1, start: 2, end: 3, word: (id) => `w${id}` };

const tinyModel = (seed = 1) => peakedModel(modelConfig([L, C, 8, 8, 8, V]), seed);
const rng = new Rng(5);
const features = Float32Array.from({ length: N * L * C }, () => rng.next() * 2);
const OPTIONS: CaptionOptions[] = [
  {},
  { beam: 3 },
  { beam: 4, groups: 2, suppressUnk: true },
  { beam: 3, blockTrigrams: true, alternatives: true },
  { suppressUnk: true },
];

test('an ensemble of one is the model; two identical models caption as one, log-probs within float rounding', () => {
  const one = tinyModel();
  assert.equal(ensembleModel([one]), one);
  const twin = ensembleModel([tinyModel(), tinyModel()]);
  assert.equal(twin.config.units, 16, "the ensemble carries both members' hidden states");
  for (const o of OPTIONS) {
    const alone = decodeImages(one, features, N, vocab, { ...o, maxLength: 8 });
    const both = decodeImages(twin, features, N, vocab, { ...o, maxLength: 8 });
    both.forEach((c, i) => {
      assert.deepEqual(c.ids, alone[i].ids, `${JSON.stringify(o)} image ${i}`);
      assert.ok(Math.abs(c.logProb - alone[i].logProb) < 1e-4, `${c.logProb} vs ${alone[i].logProb}`);
      c.attention.forEach((a, t) => a.forEach((x, l) => assert.ok(Math.abs(x - alone[i].attention[t][l]) < 1e-6)));
      assert.deepEqual(
        c.alternatives?.map((a) => a.ids),
        alone[i].alternatives?.map((a) => a.ids),
      );
    });
  }
  one.dispose();
  twin.dispose();
});

test("the search sees the members' averaged log-probabilities and averaged attention", () => {
  const a = tinyModel(1),
    b = tinyModel(2);
  const ensemble = ensembleModel([a, b]);
  const tokens = new Int32Array(N).fill(vocab.start);
  const out = ensemble.step(ensemble.encode(features, N), tokens);
  const outA = a.step(a.encode(features, N), tokens),
    outB = b.step(b.encode(features, N), tokens);
  const lseA = logSumExpRows(outA.logits, N, V),
    lseB = logSumExpRows(outB.logits, N, V);
  for (let r = 0; r < N; r++) {
    for (let v = 0; v < V; v++) {
      const want = (outA.logits[r * V + v] - lseA[r] + outB.logits[r * V + v] - lseB[r]) / 2;
      assert.ok(Math.abs(out.logits[r * V + v] - want) < 1e-5);
    }
    for (let l = 0; l < L; l++)
      assert.ok(
        Math.abs(out.attention[r * L + l] - (outA.attention[r * L + l] + outB.attention[r * L + l]) / 2) < 1e-6,
      );
  }
  // the two members disagree, so the ensemble's greedy captions differ from at least one member's
  const caps = (m: DecoderModel) => decodeImages(m, features, N, vocab, { maxLength: 8 }).map((c) => c.ids.join(','));
  const [ca, cb, ce] = [caps(a), caps(b), caps(ensemble)];
  assert.notDeepEqual(ca, cb);
  assert.ok(ce.join() !== ca.join() || ce.join() !== cb.join());
  ensemble.dispose();
});

test('an asynchronous ensemble (the ONNX backends) decodes exactly as the synchronous one', async () => {
  const table =
    (salt: number): NextTokenTable =>
    (key, prefix) => {
      const r = new Rng((((key + salt) * 7919) ^ prefix.reduce((h, t) => Math.imul(h, 31) + t + 1, 17)) >>> 0);
      return [0, 0, 0.05 + r.next() * 0.1 * (1 + prefix.length), r.next(), r.next(), r.next(), r.next()];
    };
  const words = { pad: 0, start: 1, end: 2, unk: 3, word: (id: number) => `t${id}` };
  const keys = [2, 7, 1, 8, 2, 8];
  for (const o of [{}, { beam: 3 }, { beam: 4, groups: 2 }, { sample: true, seed: 3 }] as CaptionOptions[]) {
    const sync = decodeImages(
      ensembleModel([new TableModel(7, L, table(0)), new TableModel(7, L, table(1))]),
      keyFeatures(keys, L),
      keys.length,
      words,
      { ...o, maxLength: 6 },
    );
    const async = await decodeImagesAsync(
      asyncEnsembleModel([
        new AsyncTableModel(new TableModel(7, L, table(0))),
        new AsyncTableModel(new TableModel(7, L, table(1))),
      ]),
      keyFeatures(keys, L),
      keys.length,
      words,
      { ...o, maxLength: 6 },
    );
    assert.deepEqual(async, sync, JSON.stringify(o));
  }
});

test('members of different vocabularies or encoders are refused with what differs', () => {
  const base = {
    name: 'a.safetensors',
    words: ['<pad>', '<start>', '<end>', 'dog'],
    encoderId: 'mobilenet_v2',
    locations: 49,
    channels: 1280,
  };
  assert.doesNotThrow(() => checkEnsembleMembers([base, { ...base, name: 'b.safetensors' }]));
  assert.throws(
    () => checkEnsembleMembers([base, { ...base, name: 'b.safetensors', words: ['<pad>', '<start>', '<end>', 'cat'] }]),
    /^Error: model 2 \(b\.safetensors\) and model 1 \(a\.safetensors\) cannot form an ensemble: they have different vocabularies \(4 vs 4 words; first difference at id 3: "cat" vs "dog"\)/,
  );
  assert.throws(
    () => checkEnsembleMembers([base, { ...base, name: 'b', words: [...base.words, 'cat'] }]),
    /5 vs 4 words; the first 4 words agree/,
  );
  assert.throws(
    () =>
      checkEnsembleMembers([base, { ...base, name: 'c', encoderId: 'inception_v3', locations: 64, channels: 2048 }]),
    /model 2 \(c\) and model 1 \(a\.safetensors\) cannot form an ensemble: they use different encoders, "inception_v3" \[64 x 2048\] vs "mobilenet_v2" \[49 x 1280\]/,
  );
  assert.throws(() => checkEnsembleMembers([]), /at least one model/);
});

let dir: string;
let tiny: TinyRun, other: TinyRun;
let red: string, blue: string;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-ensemble-'));
  tiny = await makeTinyRun(path.join(dir, 'a'), RED_BLUE, { steps: 300 });
  other = await makeTinyRun(
    path.join(dir, 'b'),
    [
      { rgb: [0xe0, 0x10, 0x10], caption: 'a crimson box' },
      { rgb: [0x10, 0x30, 0xe0], caption: 'a navy ring' },
    ],
    { steps: 50 },
  );
  red = path.join(dir, 'red.png');
  blue = path.join(dir, 'blue.png');
  await sharp({ create: { width: 16, height: 16, channels: 3, background: '#e01010' } })
    .png()
    .toFile(red);
  await sharp({ create: { width: 16, height: 16, channels: 3, background: '#1030e0' } })
    .png()
    .toFile(blue);
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('loadCaptioner, sat caption, sat export and the browser entry: an ensemble of a model with itself captions as the model', async () => {
  const options = [{}, { beam: 3, alternatives: true }] as const;
  const single = await loadCaptioner(tiny.run, { encoder: tiny.encoder });
  const expected: CaptionResult[][] = [];
  for (const o of options) expected.push(await single.captionBatch([red, blue], o));
  await single.dispose();
  for (const backend of ['native', 'onnx'] as const) {
    const twin = await loadCaptioner([tiny.run, tiny.run], { backend, encoder: tiny.encoder });
    assert.match(twin.info.modelId, /^checkpoints-best-[0-9a-f]{12}\+checkpoints-best-[0-9a-f]{12}$/);
    for (const [i, o] of options.entries()) {
      const got = await twin.captionBatch([red, blue], o);
      assert.deepEqual(
        got.map((c) => c.caption),
        expected[i].map((c) => c.caption),
        `${backend} ${JSON.stringify(o)}`,
      );
      got.forEach((c, j) => assert.ok(Math.abs(c.logProb - expected[i][j].logProb) < 1e-4));
    }
    await twin.dispose();
  }
  const cli = await sat(['caption', '--model', `${tiny.run},${tiny.run}`, ...tiny.encoderFlags, red, blue]);
  assert.deepEqual(cli.trim().split('\n'), [`${red}\ta red square`, `${blue}\ta blue circle`]);

  // one bundle: one encoder, two decoders; format version 2 so that older readers refuse it
  const bundle = path.join(dir, 'ensemble-bundle');
  await sat(['export', '--model', tiny.run, '--model', tiny.run, '--out', bundle, ...tiny.encoderFlags]);
  const { manifest, files } = await readBundleFolder(bundle);
  assert.equal(manifest.formatVersion, BUNDLE_FORMAT_VERSION);
  assert.equal(manifest.ensemble?.length, 1);
  assert.deepEqual([...files.keys()].sort(), [
    'decoder-2-init.onnx',
    'decoder-2-step.onnx',
    'decoder-init.onnx',
    'decoder-step.onnx',
    'encoder.onnx',
  ]);
  const fromBundle = await loadCaptioner(bundle);
  const nodeCaptions = await fromBundle.captionBatch([red, blue], { beam: 3 });
  assert.deepEqual(
    nodeCaptions.map((c) => c.caption),
    ['a red square', 'a blue circle'],
  );
  await fromBundle.dispose();

  // the browser entry runs the ensemble bundle too (onnxruntime-web's wasm in Node, files fetched from the folder)
  const { captioner: web } = await webCaptionerFromFolder(bundle);
  const pixels = await rawPixels([red, blue]);
  const webCaptions = await web.captionBatch(pixels, { beam: 3 });
  assert.deepEqual(
    webCaptions.map((c) => c.caption),
    nodeCaptions.map((c) => c.caption),
  );
  webCaptions.forEach((c, i) => assert.ok(Math.abs(c.logProb - nodeCaptions[i].logProb) < 1e-4));
  await web.dispose();
});

test('an ensemble of models with different vocabularies is refused by the library, the CLI and sat export', async () => {
  const message =
    /model 2 \(.*b\/run\/checkpoints\/best\.safetensors\) and model 1 \(.*a\/run\/checkpoints\/best\.safetensors\) cannot form an ensemble: they have different vocabularies/;
  const refused = (e: unknown) => e instanceof UserError && message.test(e.message);
  await assert.rejects(loadCaptioner([tiny.run, other.run], { encoder: tiny.encoder }), refused);
  await assert.rejects(loadCaptioner([tiny.run, other.run], { backend: 'onnx', encoder: tiny.encoder }), refused);
  await assert.rejects(sat(['caption', '--model', tiny.run, '--model', other.run, ...tiny.encoderFlags, red]), refused);
  await assert.rejects(
    sat(['export', '--model', tiny.run, '--model', other.run, '--out', path.join(dir, 'never'), ...tiny.encoderFlags]),
    refused,
  );
  assert.equal(fs.existsSync(path.join(dir, 'never')), false);
  // a bundle folder cannot join a list: export the ensemble instead
  const bundle = path.join(dir, 'single-bundle');
  await sat(['export', '--model', tiny.run, '--out', bundle, ...tiny.encoderFlags]);
  await assert.rejects(
    loadCaptioner([bundle, tiny.run]),
    /is an exported bundle: an ensemble is made from checkpoints/,
  );
});
