/**
 * The tiny trained model every captioning test starts from, made in well under a second: a 16x16 ONNX encoder
 * (4x4 average pool: L = 16 locations as a 4x4 grid, C = 3 channels, NHWC) and a native model trained for a
 * few hundred Adam steps to caption solid colours, saved as `sat train` saves it (DIR/run/checkpoints/best.*).
 */
import fs from 'node:fs';
import path from 'node:path';
import { copyVocab, saveCheckpoint, CHECKPOINT_FORMAT } from '../../src/checkpoint/checkpoint.js';
import { OnnxGraph } from '../../src/encoders/onnx/graph.js';
import type { EncoderOptions } from '../../src/encoders/registry.js';
import { userOnnxEncoder } from '../../src/encoders/user-onnx.js';
import { createModel } from '../../src/model/index.js';
import type { GruState, InitState, ModelConfig } from '../../src/model/types.js';
import { DEFAULT_TRAIN_CONFIG } from '../../src/train/config.js';
import { initialProgress } from '../../src/train/loop.js';
import { Vocabulary } from '../../src/vocab/vocabulary.js';

export const SIZE = 16;

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

/** The flags of a user .onnx encoder taking `size` x `size` NHWC images scaled to 0..1 (as the pool encoder). */
export function onnxEncoderFlags(file: string, size = SIZE): string[] {
  return [
    '--encoder',
    file,
    '--encoder-size',
    String(size),
    '--encoder-scaling',
    'zero_one',
    '--encoder-layout',
    'nhwc',
  ];
}

/** One training example: a solid colour (its pooled features are rgb / 255 at every location) and its caption. */
export interface ColourCaption {
  rgb: readonly [number, number, number];
  caption: string;
}

export interface TinyRunOptions {
  gruState?: GruState;
  initState?: InitState;
  /** Adam steps (default 400). */
  steps?: number;
}

export interface TinyRun {
  /** The run folder (its checkpoints/ holds best.*). */
  run: string;
  encoder: EncoderOptions;
  /** The same encoder as command-line flags. */
  encoderFlags: string[];
}

/** Trains the tiny model on `examples` and saves it under `dir` (pool4.onnx, vocab.json, run/checkpoints/best.*). */
export async function makeTinyRun(
  dir: string,
  examples: readonly ColourCaption[],
  opts: TinyRunOptions = {},
): Promise<TinyRun> {
  fs.mkdirSync(dir, { recursive: true });
  const onnxFile = path.join(dir, 'pool4.onnx');
  fs.writeFileSync(onnxFile, poolEncoderOnnx());
  const encoder: EncoderOptions = { encoder: onnxFile, size: SIZE, scaling: 'zero_one', layout: 'nhwc' };
  const encoderFlags = onnxEncoderFlags(onnxFile);
  const { spec } = await userOnnxEncoder({ file: onnxFile, size: SIZE, scaling: 'zero_one', layout: 'nhwc' });

  const captions = examples.map((e) => e.caption);
  const vocab = Vocabulary.build(captions);
  const config: ModelConfig = {
    locations: 16,
    channels: 3,
    embedDim: 8,
    units: 16,
    attentionUnits: 8,
    vocabSize: vocab.size,
    dropout: 0,
    attentionLambda: 0,
    ...(opts.gruState ? { gruState: opts.gruState } : {}),
    ...(opts.initState ? { initState: opts.initState } : {}),
  };
  const model = createModel(config, { seed: 3 });
  const features = new Float32Array(examples.length * 16 * 3);
  examples.forEach(({ rgb }, i) => {
    for (let l = 0; l < 16; l++) for (let c = 0; c < 3; c++) features[(i * 16 + l) * 3 + c] = rgb[c] / 255;
  });
  const encoded = captions.map((c) => vocab.encode(c));
  const T = Math.max(...encoded.map((e) => e.length)) - 1;
  const tokens = Int32Array.from(encoded.flatMap((e) => [...e, ...new Array(T + 1 - e.length).fill(0)]));
  for (let s = 0; s < (opts.steps ?? 400); s++)
    model.trainStep({ size: examples.length, steps: T, features, tokens }, { learningRate: 0.01 });

  const run = path.join(dir, 'run');
  const checkpoints = path.join(run, 'checkpoints');
  const vocabFile = path.join(dir, 'vocab.json');
  vocab.save(vocabFile);
  const train = { ...DEFAULT_TRAIN_CONFIG };
  saveCheckpoint(checkpoints, 'best', model, {
    format: CHECKPOINT_FORMAT,
    createdAt: new Date(0).toISOString(),
    config: train,
    model: config,
    encoder: { id: spec.id, locations: 16, channels: 3 },
    vocab: copyVocab(vocabFile, checkpoints),
    run: null,
    progress: initialProgress(train),
  });
  model.dispose();
  return { run, encoder, encoderFlags };
}

/** "a red square" for red, "a blue circle" for blue: the two-colour model of the caption and serve tests. */
export const RED_BLUE: readonly ColourCaption[] = [
  { rgb: [0xe0, 0x10, 0x10], caption: 'a red square' },
  { rgb: [0x10, 0x30, 0xe0], caption: 'a blue circle' },
];
