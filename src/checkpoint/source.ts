/**
 * A trained checkpoint as a captioning source: the checkpoint file, its vocabulary, and its image encoder
 * rebuilt with the options it was trained with (checked against the checkpoint's encoder id and shape),
 * and the model id that names it everywhere (`sat export` manifests, the native backend, `sat serve`).
 * Shared by the native captioner and `sat export`.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  checkpointVocabPath,
  loadCheckpoint,
  loadCheckpointVocab,
  type CheckpointMeta,
  type LoadedCheckpoint,
} from './checkpoint.js';
import { resolveEncoder, type EncoderOptions } from '../encoders/registry.js';
import type { EncoderModel } from '../encoders/types.js';
import { UserError } from '../util/errors.js';
import type { Vocabulary } from '../vocab/vocabulary.js';

/**
 * The encoder options that rebuild the features a checkpoint was trained on: options the checkpoint
 * records (meta.encoder.options, when the trainer wrote them), else what its encoder id says
 * ("inception_v3_nsfwjs-mixed10" -> InceptionV3 nsfwjs cut at mixed10; "inception_v3_nsfwjs-mixed2-96" -> cut at
 * mixed2 with a 96 x 96 input). `given` (command-line flags) fills in what neither knows, such as a weights
 * folder or a user .onnx file.
 */
export function encoderOptionsFor(meta: Pick<CheckpointMeta, 'encoder'>, given: EncoderOptions = {}): EncoderOptions {
  const recorded = (meta.encoder as { options?: EncoderOptions }).options;
  const fromId = ((): EncoderOptions => {
    const id = meta.encoder.id;
    const inception = /^(inception_v3_(?:nsfwjs|imagenet))-(mixed\d+)(?:-(\d+))?$/.exec(id);
    if (inception)
      return { encoder: inception[1], layer: inception[2], ...(inception[3] ? { size: Number(inception[3]) } : {}) };
    if (id === 'mobilenet_v2_imagenet') return { encoder: 'mobilenet_v2' };
    return {};
  })();
  const merged: EncoderOptions = { ...fromId, ...recorded };
  for (const [key, value] of Object.entries(given) as [keyof EncoderOptions, never][])
    if (value !== undefined) merged[key] = value;
  if (!merged.encoder) {
    throw new UserError(
      `the checkpoint was trained on features of encoder "${meta.encoder.id}", which sat cannot rebuild by itself: ` +
        'pass the same --encoder FILE.onnx (with --encoder-output, --encoder-size, --encoder-scaling, --encoder-layout) used for `sat features`.',
    );
  }
  return merged;
}

export interface CheckpointSource {
  ckpt: LoadedCheckpoint;
  vocab: Vocabulary;
  vocabFile: string;
  encoder: EncoderModel;
}

/** Loads a checkpoint (run folder, checkpoints folder or file), its vocabulary and its encoder (see encoderOptionsFor). */
export async function openCheckpointSource(target: string, given?: EncoderOptions): Promise<CheckpointSource> {
  const ckpt = loadCheckpoint(target);
  const vocabFile = checkpointVocabPath(ckpt);
  const vocab = loadCheckpointVocab(ckpt);
  const { meta } = ckpt;
  const encoder = await resolveEncoder(encoderOptionsFor(meta, given));
  const { spec } = encoder;
  if (spec.id !== meta.encoder.id || spec.locations !== meta.model.locations || spec.channels !== meta.model.channels) {
    throw new UserError(
      `encoder "${spec.id}" (${spec.locations} x ${spec.channels}) does not match the checkpoint, trained on ` +
        `"${meta.encoder.id}" (${meta.model.locations} x ${meta.model.channels}). Pass the encoder flags used for \`sat features\`.`,
    );
  }
  return { ckpt, vocab, vocabFile, encoder };
}

/** SHA-256 (hex) of a checkpoint file. */
export function checkpointSha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/**
 * The stable id of a checkpoint's model: "<folder>-<name>-<first 12 hex digits of its SHA-256>", e.g.
 * "checkpoints-best-3f2a9c01d4e5". A bundle exported from the checkpoint carries the same id.
 */
export function checkpointModelId(file: string, sha256 = checkpointSha256(file)): string {
  return `${path.basename(path.dirname(path.resolve(file)))}-${path.basename(file, '.safetensors')}-${sha256.slice(0, 12)}`;
}
