/**
 * Image files -> captions with a trained checkpoint: the library behind `sat caption` (and `sat demo`).
 *
 *   checkpoint (weights + model config + encoder id) + its vocab.json
 *   -> the same encoder rebuilt and checked against the checkpoint's encoder id
 *   -> images loaded exactly as `sat features` loads them (src/features/image.ts), run through onnxruntime
 *   -> features [n, L, C] decoded in one batch (src/decode/index.ts)
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadCheckpoint, loadCheckpointVocab, restoreModel, type CheckpointMeta } from '../checkpoint/checkpoint.js';
import { resolveEncoder, type EncoderOptions } from '../encoders/registry.js';
import type { EncoderSpec } from '../encoders/types.js';
import { ImageLoadError, loadRgb, writeImageToBatch } from '../features/image.js';
import { EncoderRunner } from '../features/runner.js';
import { createModel } from '../model/index.js';
import type { CaptionModel } from '../model/types.js';
import { runPaths } from '../dataset/run.js';
import { UserError } from '../util/errors.js';
import { defaultMaxLength, Vocabulary } from '../vocab/vocabulary.js';
import { decodeImages, decodeVocab } from './index.js';
import type { DecodedCaption, DecodeOptions } from './types.js';

/**
 * The encoder options that rebuild the features a checkpoint was trained on: options the checkpoint
 * records (meta.encoder.options, when the trainer wrote them), else what its encoder id says
 * ("inception_v3_nsfwjs-mixed10" -> InceptionV3 nsfwjs cut at mixed10). `given` (command-line flags)
 * fills in what neither knows, such as a weights folder or a user .onnx file.
 */
export function encoderOptionsFor(meta: Pick<CheckpointMeta, 'encoder'>, given: EncoderOptions = {}): EncoderOptions {
  const recorded = (meta.encoder as { options?: EncoderOptions }).options;
  const fromId = ((): EncoderOptions => {
    const id = meta.encoder.id;
    const inception = /^(inception_v3_(?:nsfwjs|imagenet))-(mixed\d+)$/.exec(id);
    if (inception) return { encoder: inception[1], layer: inception[2] };
    if (id === 'mobilenet_v2_imagenet') return { encoder: 'mobilenet_v2' };
    return {};
  })();
  const merged: EncoderOptions = { ...fromId, ...recorded };
  for (const [key, value] of Object.entries(given) as [keyof EncoderOptions, never][]) if (value !== undefined) merged[key] = value;
  if (!merged.encoder) {
    throw new UserError(`the checkpoint was trained on features of encoder "${meta.encoder.id}", which sat cannot rebuild by itself: ` +
      'pass the same --encoder FILE.onnx (with --encoder-output, --encoder-size, --encoder-scaling, --encoder-layout) used for `sat features`.');
  }
  return merged;
}

/** Resolve RUN_OR_CHECKPOINT_DIR (a run folder, its checkpoints folder, or a .safetensors/.json file). */
export function checkpointTarget(target: string): string {
  if (!fs.existsSync(target)) throw new UserError(`--model ${target}: no such file or folder. Pass a run folder or its checkpoints folder.`);
  const checkpoints = runPaths(target).checkpoints;
  if (fs.statSync(target).isDirectory() && fs.existsSync(checkpoints) && fs.statSync(checkpoints).isDirectory()) return checkpoints;
  return target;
}

export interface CaptionedImage extends DecodedCaption {
  file: string;
  /** The image as the encoder saw it: RGB uint8 HWC, inputSize x inputSize (for attention figures). */
  rgb: Uint8Array;
}

export class Captioner {
  private constructor(
    readonly model: CaptionModel,
    readonly vocab: Vocabulary,
    readonly meta: CheckpointMeta,
    readonly checkpointFile: string,
    readonly spec: EncoderSpec,
    private readonly runner: EncoderRunner,
  ) {}

  /** Load a checkpoint, its vocabulary and its encoder (see encoderOptionsFor for `encoder`). */
  static async load(target: string, opts: { encoder?: EncoderOptions; threads?: number } = {}): Promise<Captioner> {
    const ckpt = loadCheckpoint(checkpointTarget(target));
    const vocab = loadCheckpointVocab(ckpt);
    const { meta } = ckpt;
    const encoder = await resolveEncoder(encoderOptionsFor(meta, opts.encoder));
    const { spec } = encoder;
    if (spec.id !== meta.encoder.id || spec.locations !== meta.model.locations || spec.channels !== meta.model.channels) {
      throw new UserError(`encoder "${spec.id}" (${spec.locations} x ${spec.channels}) does not match the checkpoint, trained on ` +
        `"${meta.encoder.id}" (${meta.model.locations} x ${meta.model.channels}). Pass the encoder flags used for \`sat features\`.`);
    }
    const model = createModel(meta.model);
    restoreModel(model, ckpt, { optimizer: false });
    const runner = await EncoderRunner.create(encoder, { threads: opts.threads });
    return new Captioner(model, vocab, meta, ckpt.file, spec, runner);
  }

  /** Default maxLength: the vocabulary's longest sequence minus <start> (tokens generated, <end> included). */
  get defaultMaxLength(): number {
    return defaultMaxLength(this.vocab);
  }

  /** Load images as the encoder's input: RGB uint8 [size, size, 3] each, with a UserError for a bad file. */
  async loadImages(files: string[]): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    for (const file of files) {
      try {
        out.push(await loadRgb(file, this.spec.inputSize));
      } catch (e) {
        if (e instanceof ImageLoadError) throw new UserError(e.message);
        throw e;
      }
    }
    return out;
  }

  /** Encoder features [n, L, C] of the given images (RGB from loadImages). */
  async features(images: Uint8Array[]): Promise<Float32Array> {
    const { inputSize: size, scaling, inputLayout: layout, locations: L, channels: C } = this.spec;
    const batch = Math.max(1, Math.min(16, this.runner.maxBatch));
    const out = new Float32Array(images.length * L * C);
    const input = new Float32Array(batch * 3 * size * size);
    for (let first = 0; first < images.length; first += batch) {
      const count = Math.min(batch, images.length - first);
      for (let i = 0; i < count; i++) writeImageToBatch(images[first + i], input, i, { size, scaling, layout });
      out.set(await this.runner.run(input, count), first * L * C);
    }
    return out;
  }

  /** Caption image files: load, encode, decode in one batch. */
  async caption(files: string[], opts: Omit<DecodeOptions, 'maxLength'> & { maxLength?: number }): Promise<CaptionedImage[]> {
    const images = await this.loadImages(files);
    const features = await this.features(images);
    const decoded = decodeImages(this.model, features, files.length, decodeVocab(this.vocab), { ...opts, maxLength: opts.maxLength ?? this.defaultMaxLength });
    return decoded.map((d, i) => ({ ...d, file: path.resolve(files[i]), rgb: images[i] }));
  }

  async dispose(): Promise<void> {
    this.model.dispose();
    await this.runner.release();
  }
}
