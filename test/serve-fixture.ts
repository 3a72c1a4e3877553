/**
 * A tiny captioner for the `sat serve` tests, made in a few hundred milliseconds: a 16x16 ONNX encoder
 * (4x4 average pool: L = 16 locations as a 4x4 grid, C = 3 channels) and a native model trained to say
 * "a red square" for a red image and "a blue circle" for a blue one, saved as `sat train` saves it.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { copyVocab, saveCheckpoint, CHECKPOINT_FORMAT } from '../src/checkpoint/checkpoint.js';
import { OnnxGraph } from '../src/encoders/onnx/graph.js';
import type { EncoderOptions } from '../src/encoders/registry.js';
import { userOnnxEncoder } from '../src/encoders/user-onnx.js';
import { createModel } from '../src/model/index.js';
import { DEFAULT_TRAIN_CONFIG } from '../src/train/config.js';
import { initialProgress } from '../src/train/loop.js';
import { Vocabulary } from '../src/vocab/vocabulary.js';

export const SIZE = 16;

export interface TinyModel {
  /** The run folder (its checkpoints/ holds best.*). */
  run: string;
  encoder: EncoderOptions;
  /** The same encoder as `sat serve` flags. */
  encoderFlags: string[];
}

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

export async function makeTinyModel(dir: string): Promise<TinyModel> {
  const onnxFile = path.join(dir, 'pool4.onnx');
  fs.writeFileSync(onnxFile, poolEncoderOnnx());
  const encoder: EncoderOptions = { encoder: onnxFile, size: SIZE, scaling: 'zero_one', layout: 'nhwc' };
  const encoderFlags = ['--encoder', onnxFile, '--encoder-size', String(SIZE), '--encoder-scaling', 'zero_one', '--encoder-layout', 'nhwc'];
  const built = await userOnnxEncoder({ file: onnxFile, size: SIZE, scaling: 'zero_one', layout: 'nhwc' });

  const captions = ['a red square', 'a blue circle'];
  const vocab = Vocabulary.build(captions);
  const config = { locations: 16, channels: 3, embedDim: 8, units: 16, attentionUnits: 8, vocabSize: vocab.size, dropout: 0, attentionLambda: 0 };
  const model = createModel(config, { seed: 3 });
  // the two images' features: their pooled colours (pixels / 255), every location the same
  const features = new Float32Array(2 * 16 * 3);
  [[0xe0, 0x10, 0x10], [0x10, 0x30, 0xe0]].forEach((rgb, i) => {
    for (let l = 0; l < 16; l++) for (let c = 0; c < 3; c++) features[(i * 16 + l) * 3 + c] = rgb[c] / 255;
  });
  const tokens = Int32Array.from(captions.flatMap((c) => vocab.encode(c)));
  for (let s = 0; s < 300; s++) model.trainStep({ size: 2, steps: 4, features, tokens }, { learningRate: 0.01 });

  const run = path.join(dir, 'run');
  const checkpoints = path.join(run, 'checkpoints');
  const vocabFile = path.join(dir, 'vocab.json');
  vocab.save(vocabFile);
  const config0 = { ...DEFAULT_TRAIN_CONFIG };
  saveCheckpoint(checkpoints, 'best', model, {
    format: CHECKPOINT_FORMAT, createdAt: new Date(0).toISOString(), config: config0, model: config,
    encoder: { id: built.spec.id, locations: 16, channels: 3 }, vocab: copyVocab(vocabFile, checkpoints), run: null,
    progress: initialProgress(config0),
  });
  model.dispose();
  return { run, encoder, encoderFlags };
}

/** A solid-colour image as PNG or JPEG bytes (any size: the server resizes). */
export function solidImage(colour: string, format: 'png' | 'jpeg' = 'png', width = 40, height = 30): Promise<Buffer> {
  const img = sharp({ create: { width, height, channels: 3, background: colour } });
  return (format === 'png' ? img.png() : img.jpeg()).toBuffer();
}

/**
 * A half red, half blue image (left red): the captioner says one of its two captions, with attention
 * that differs between words, which the page test needs to see the overlay change.
 */
export function splitImage(width = 64, height = 48): Promise<Buffer> {
  const half = Math.floor(width / 2);
  return sharp({ create: { width, height, channels: 3, background: '#1030e0' } })
    .composite([{ input: { create: { width: half, height, channels: 3, background: '#e01010' } }, left: 0, top: 0 }])
    .png().toBuffer();
}
