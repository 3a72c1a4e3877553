/**
 * A trained checkpoint made in seconds for the export and Captioner tests: a tiny ONNX encoder (16x16 image ->
 * 4x4 average pool, L = 16 locations x C = 3 channels, NHWC) and a tiny native model trained for a few hundred
 * Adam steps to caption three solid colours, saved as `sat train` saves it (run/checkpoints/best.*).
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { copyVocab, saveCheckpoint, CHECKPOINT_FORMAT } from '../src/checkpoint/checkpoint.js';
import type { EncoderOptions } from '../src/encoders/registry.js';
import { OnnxGraph } from '../src/encoders/onnx/graph.js';
import { userOnnxEncoder } from '../src/encoders/user-onnx.js';
import { createModel } from '../src/model/index.js';
import type { GruState, InitState } from '../src/model/types.js';
import { DEFAULT_TRAIN_CONFIG } from '../src/train/config.js';
import { initialProgress } from '../src/train/loop.js';
import { Vocabulary } from '../src/vocab/vocabulary.js';

export const SIZE = 16;
export const COLOURS = { red: [0xe0, 0x10, 0x10], blue: [0x10, 0x30, 0xe0], green: [0x20, 0xc0, 0x30] } as const;
export const CAPTIONS = { red: 'a red square', blue: 'a blue circle on the left', green: 'two green dots' } as const;

/** NHWC [n, 16, 16, 3] -> average pool 4x4 -> NHWC [n, 4, 4, 3]. */
export function poolEncoderOnnx(): Uint8Array {
  const g = new OnnxGraph('pool4');
  const x = g.addInput('image', ['n', SIZE, SIZE, 3]);
  const nchw = g.addNode('Transpose', [x], 'nchw', { perm: [0, 3, 1, 2] });
  const pooled = g.addNode('AveragePool', [nchw], 'pooled', { kernel_shape: [4, 4], strides: [4, 4] });
  g.addNode('Transpose', [pooled], ['features'], { perm: [0, 2, 3, 1] });
  g.addOutput('features', ['n', 4, 4, 3]);
  return g.toModel();
}

export interface CaptionFixture {
  run: string;
  encoder: EncoderOptions;
  /** PNG files of the three colours (20x12, resized to 16x16 by the pipeline). */
  images: Record<keyof typeof COLOURS, string>;
}

export async function makeCaptionRun(dir: string, opts: { gruState?: GruState; initState?: InitState; steps?: number } = {}): Promise<CaptionFixture> {
  fs.mkdirSync(dir, { recursive: true });
  const onnxFile = path.join(dir, 'pool4.onnx');
  fs.writeFileSync(onnxFile, poolEncoderOnnx());
  const encoder: EncoderOptions = { encoder: onnxFile, size: SIZE, scaling: 'zero_one', layout: 'nhwc' };
  const spec = (await userOnnxEncoder({ file: onnxFile, size: SIZE, scaling: 'zero_one', layout: 'nhwc' })).spec;
  const names = Object.keys(COLOURS) as (keyof typeof COLOURS)[];
  const images = {} as Record<keyof typeof COLOURS, string>;
  for (const name of names) {
    const [r, g, b] = COLOURS[name];
    images[name] = path.join(dir, `${name}.png`);
    await sharp({ create: { width: 20, height: 12, channels: 3, background: { r, g, b } } }).png().toFile(images[name]);
  }
  const captions = names.map((n) => CAPTIONS[n]);
  const vocab = Vocabulary.build(captions);
  const config = {
    locations: 16, channels: 3, embedDim: 8, units: 16, attentionUnits: 8, vocabSize: vocab.size, dropout: 0, attentionLambda: 0,
    gruState: opts.gruState ?? 'carry', initState: opts.initState ?? 'zeros',
  };
  const model = createModel(config, { seed: 3 });
  const features = new Float32Array(names.length * 16 * 3);
  names.forEach((name, i) => {
    for (let l = 0; l < 16; l++) for (let c = 0; c < 3; c++) features[(i * 16 + l) * 3 + c] = COLOURS[name][c] / 255;
  });
  const encoded = captions.map((c) => vocab.encode(c));
  const T = Math.max(...encoded.map((e) => e.length)) - 1;
  const tokens = Int32Array.from(encoded.flatMap((e) => [...e, ...new Array(T + 1 - e.length).fill(0)]));
  for (let s = 0; s < (opts.steps ?? 400); s++) model.trainStep({ size: names.length, steps: T, features, tokens }, { learningRate: 0.01 });

  const run = path.join(dir, 'run');
  const checkpoints = path.join(run, 'checkpoints');
  const vocabFile = path.join(dir, 'vocab.json');
  vocab.save(vocabFile);
  const train = { ...DEFAULT_TRAIN_CONFIG };
  saveCheckpoint(checkpoints, 'best', model, {
    format: CHECKPOINT_FORMAT, createdAt: new Date(0).toISOString(), config: train, model: config,
    encoder: { id: spec.id, locations: 16, channels: 3 }, vocab: copyVocab(vocabFile, checkpoints), run: null,
    progress: initialProgress(train),
  });
  model.dispose();
  return { run, encoder, images };
}
