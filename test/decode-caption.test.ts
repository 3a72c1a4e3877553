/**
 * `sat caption` end to end on a checkpoint made here: a tiny ONNX encoder (16x16 image -> 4x4 average
 * pool, so L = 16 locations x C = 3 channels), a tiny native model trained for a few hundred Adam steps
 * to tell a red image ("a red square") from a blue one ("a blue circle"), saved as `sat train` saves it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { copyVocab, saveCheckpoint, CHECKPOINT_FORMAT } from '../src/checkpoint/checkpoint.js';
import { Captioner, encoderOptionsFor } from '../src/decode/captioner.js';
import { OnnxGraph } from '../src/encoders/onnx/graph.js';
import { userOnnxEncoder } from '../src/encoders/user-onnx.js';
import { createModel } from '../src/model/index.js';
import { DEFAULT_TRAIN_CONFIG } from '../src/train/config.js';
import { initialProgress } from '../src/train/loop.js';
import { UserError } from '../src/util/errors.js';
import { Vocabulary } from '../src/vocab/vocabulary.js';
import { sat } from './cli-run.js';

const SIZE = 16;
let dir: string;
let encoderFlags: string[];
let red: string, blue: string;

/** NHWC [n, 16, 16, 3] -> average pool 4x4 -> NHWC [n, 4, 4, 3]. */
function poolEncoderOnnx(): Uint8Array {
  const g = new OnnxGraph('pool4');
  const x = g.addInput('image', ['n', SIZE, SIZE, 3]);
  const nchw = g.addNode('Transpose', [x], 'nchw', { perm: [0, 3, 1, 2] });
  const pooled = g.addNode('AveragePool', [nchw], 'pooled', { kernel_shape: [4, 4], strides: [4, 4] });
  g.addNode('Transpose', [pooled], ['features'], { perm: [0, 2, 3, 1] });
  g.addOutput('features', ['n', 4, 4, 3]);
  return g.toModel();
}

async function solid(file: string, colour: string): Promise<string> {
  await sharp({ create: { width: 20, height: 12, channels: 3, background: colour } }).png().toFile(file);
  return file;
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-caption-'));
  const onnxFile = path.join(dir, 'pool4.onnx');
  fs.writeFileSync(onnxFile, poolEncoderOnnx());
  encoderFlags = ['--encoder', onnxFile, '--encoder-size', String(SIZE), '--encoder-scaling', 'zero_one', '--encoder-layout', 'nhwc'];
  const encoder = await userOnnxEncoder({ file: onnxFile, size: SIZE, scaling: 'zero_one', layout: 'nhwc' });
  assert.equal(encoder.spec.locations, 16);
  red = await solid(path.join(dir, 'red.png'), '#e01010');
  blue = await solid(path.join(dir, 'blue.jpg'), '#1030e0');

  const captions = ['a red square', 'a blue circle'];
  const vocab = Vocabulary.build(captions);
  const config = { locations: 16, channels: 3, embedDim: 8, units: 16, attentionUnits: 8, vocabSize: vocab.size, dropout: 0, attentionLambda: 0 };
  const model = createModel(config, { seed: 3 });
  // features of the two images: their pooled colours, every location the same (pixels / 255)
  const features = new Float32Array(2 * 16 * 3);
  [[0xe0, 0x10, 0x10], [0x10, 0x30, 0xe0]].forEach((rgb, i) => {
    for (let l = 0; l < 16; l++) for (let c = 0; c < 3; c++) features[(i * 16 + l) * 3 + c] = rgb[c] / 255;
  });
  const tokens = Int32Array.from(captions.flatMap((c) => vocab.encode(c)));
  for (let s = 0; s < 300; s++) model.trainStep({ size: 2, steps: 4, features, tokens }, { learningRate: 0.01 });

  const checkpoints = path.join(dir, 'run', 'checkpoints');
  const vocabFile = path.join(dir, 'vocab.json');
  vocab.save(vocabFile);
  const config0 = { ...DEFAULT_TRAIN_CONFIG };
  saveCheckpoint(checkpoints, 'best', model, {
    format: CHECKPOINT_FORMAT, createdAt: new Date(0).toISOString(), config: config0, model: config,
    encoder: { id: encoder.spec.id, locations: 16, channels: 3 }, vocab: copyVocab(vocabFile, checkpoints), run: null,
    progress: initialProgress(config0),
  });
  model.dispose();
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('the library: a trained checkpoint captions its two images, batched and alone alike', async () => {
  const captioner = await Captioner.load(path.join(dir, 'run'), { encoder: { encoder: encoderFlags[1], size: SIZE, scaling: 'zero_one', layout: 'nhwc' } });
  try {
    for (const strategy of [{ kind: 'greedy' }, { kind: 'beam', beam: 3 }] as const) {
      const both = await captioner.caption([red, blue], { strategy });
      assert.deepEqual(both.map((c) => c.words.join(' ')), ['a red square', 'a blue circle'], JSON.stringify(strategy));
      assert.ok(both.every((c) => c.finished && c.attention.length === 3 && c.attention.every((a) => a.length === 16)));
      const sum = both[0].attention[0].reduce((s, a) => s + a, 0);
      assert.ok(Math.abs(sum - 1) < 1e-4, `attention sums to ${sum}`);
      const alone = await captioner.caption([blue], { strategy });
      assert.deepEqual(alone[0].ids, both[1].ids);
    }
  } finally {
    await captioner.dispose();
  }
});

const cli = (args: string[]) => sat(['caption', ...args]);

test('the CLI: plain captions, --json with per-word attention, --attention figures', async () => {
  const plain = await cli(['--model', path.join(dir, 'run'), ...encoderFlags, '--beam', '2', red, blue]);
  assert.deepEqual(plain.trim().split('\n'), [`${red}\ta red square`, `${blue}\ta blue circle`]);

  const figures = path.join(dir, 'figures');
  const json = await cli(['--model', path.join(dir, 'run', 'checkpoints'), ...encoderFlags, '--json', '--attention', figures, red, blue]);
  const out = JSON.parse(json);
  assert.equal(out.locations, 16);
  assert.deepEqual(out.decoding, { kind: 'greedy', maxLength: 4 });
  assert.deepEqual(out.captions.map((c: { caption: string }) => c.caption), ['a red square', 'a blue circle']);
  assert.deepEqual(out.captions[0].grid, [4, 4]);
  assert.equal(out.captions[0].attention.length, 3);
  assert.equal(out.captions[0].attention[0].length, 16);
  for (const name of ['red.attention.png', 'blue.attention.png']) {
    const meta = await sharp(path.join(figures, name)).metadata();
    assert.equal(meta.format, 'png');
    assert.equal(meta.width, 3 * (SIZE + 8) + 8); // three word panels in one row
  }
});

test('the CLI: clear errors for a missing image, a folder without a checkpoint, conflicting flags', async () => {
  const fails = async (args: string[], message: RegExp) => {
    await assert.rejects(cli(args), (e) => e instanceof UserError && message.test(e.message));
  };
  await fails(['--model', path.join(dir, 'run'), path.join(dir, 'nope.jpg')], /image .*nope\.jpg does not exist/);
  await fails(['--model', dir, red], /no best\.safetensors or latest\.safetensors/);
  await fails(['--model', path.join(dir, 'run'), '--beam', '3', '--sample', red], /--beam and --sample exclude each other/);
  await fails(['--model', path.join(dir, 'run'), '--attention', path.join(dir, 'x.png'), red, blue], /need a folder/);
  // a user .onnx encoder cannot be rebuilt from its id alone: the error says which flags to pass
  await fails(['--model', path.join(dir, 'run'), red], /pass the same --encoder FILE\.onnx/);
});

test('encoder options come from the checkpoint\'s encoder id, flags fill the gaps', () => {
  const meta = (id: string) => ({ encoder: { id, locations: 64, channels: 2048 } });
  assert.deepEqual(encoderOptionsFor(meta('inception_v3_nsfwjs-mixed10')), { encoder: 'inception_v3_nsfwjs', layer: 'mixed10' });
  assert.deepEqual(encoderOptionsFor(meta('inception_v3_imagenet-mixed7'), { weights: 'w.h5' }), { encoder: 'inception_v3_imagenet', layer: 'mixed7', weights: 'w.h5' });
  assert.deepEqual(encoderOptionsFor(meta('inception_v3_nsfwjs-mixed2-96')), { encoder: 'inception_v3_nsfwjs', layer: 'mixed2', size: 96 });
  assert.deepEqual(encoderOptionsFor(meta('mobilenet_v2_imagenet'), { weights: 'dir' }), { encoder: 'mobilenet_v2', weights: 'dir' });
  assert.throws(() => encoderOptionsFor(meta('resnet-out-1234abcd')), /pass the same --encoder FILE\.onnx/);
});
