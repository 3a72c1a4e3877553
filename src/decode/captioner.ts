/**
 * Image files -> captions with a trained checkpoint on the native addon: the native backend behind
 * `loadCaptioner` (src/export/load.ts), which `sat caption` and library users should call instead.
 *
 *   checkpoint (weights + model config + encoder id) + its vocab.json
 *   -> the same encoder rebuilt and checked against the checkpoint's encoder id
 *   -> images loaded exactly as `sat features` loads them (src/features/image.ts), run through onnxruntime
 *   -> features [n, L, C] decoded in one batch (src/decode/index.ts)
 */
import path from 'node:path';
import { restoreModel, type CheckpointMeta } from '../checkpoint/checkpoint.js';
import type { EncoderOptions } from '../encoders/registry.js';
import type { EncoderSpec } from '../encoders/types.js';
import { ImageLoadError, loadRgb, writeImageToBatch } from '../features/image.js';
import { EncoderRunner } from '../features/runner.js';
import { createModel } from '../model/index.js';
import type { CaptionModel } from '../model/types.js';
import { UserError } from '../util/errors.js';
import { defaultMaxLength, type Vocabulary } from '../vocab/vocabulary.js';
import { openCheckpointSource } from './checkpoint-source.js';
import { decodeImages, decodeVocab } from './index.js';
import type { DecodedCaption, DecodeOptions } from './types.js';

export { checkpointTarget, encoderOptionsFor } from './checkpoint-source.js';

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
    const { ckpt, vocab, encoder } = await openCheckpointSource(target, opts.encoder);
    const model = createModel(ckpt.meta.model);
    restoreModel(model, ckpt, { optimizer: false });
    const runner = await EncoderRunner.create(encoder, { threads: opts.threads });
    return new Captioner(model, vocab, ckpt.meta, ckpt.file, encoder.spec, runner);
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
