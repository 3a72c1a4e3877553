/**
 * The image encoder of an exported bundle (`sat export`): its encoder.onnx with the input size, scaling and
 * layouts its manifest.json records, so that a run's features come from exactly the graph the bundle captions
 * with (`sat features --run RUN --encoder BUNDLE_DIR`, the first step of fine-tuning from that bundle).
 *
 * The encoder keeps the bundle's id (e.g. "mobilenet_v2_imagenet"): `sat train --init BUNDLE` compares it with
 * the run's feature store. Only the few manifest fields an encoder needs are read here (this layer sits below
 * src/export, which owns the whole manifest); encoder.onnx is checked against the manifest's size and SHA-256.
 * An fp16 or int8 bundle stores the encoder's weights as float16 (computed in float32): its features differ from
 * the fp32 encoder's by that rounding, and are the ones the bundle itself sees when it captions.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import type { EncoderModel, EncoderSpec, InputScaling } from './types.js';

const MANIFEST = 'manifest.json';

/** Whether `dir` is a bundle folder (it holds a manifest.json). */
export const isBundleDir = (dir: string): boolean => {
  try {
    return fs.statSync(dir).isDirectory() && fs.existsSync(path.join(dir, MANIFEST));
  } catch {
    return false;
  }
};

interface EncoderManifest {
  encoder: Omit<EncoderSpec, 'scaling'> & { file: string; scaling: InputScaling };
  files: Record<string, { sha256: string; bytes: number }>;
}

function readEncoderManifest(dir: string): EncoderManifest {
  const file = path.join(dir, MANIFEST);
  const fix = 'Point --encoder at a folder written by `sat export`, or export the model again.';
  let m: Partial<EncoderManifest>;
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<EncoderManifest>;
  } catch (e) {
    throw new UserError(`${file}: cannot read it as JSON (${(e as Error).message}). ${fix}`);
  }
  const e = m.encoder;
  const ok =
    e &&
    typeof e.id === 'string' &&
    typeof e.file === 'string' &&
    typeof e.inputName === 'string' &&
    typeof e.outputName === 'string' &&
    Number.isInteger(e.inputSize) &&
    Number.isInteger(e.locations) &&
    Number.isInteger(e.channels) &&
    (e.inputLayout === 'nhwc' || e.inputLayout === 'nchw') &&
    (e.outputLayout === 'nhwc' || e.outputLayout === 'nchw') &&
    e.scaling !== undefined &&
    m.files?.[e.file];
  if (!ok)
    throw new UserError(
      `${file} has no usable "encoder" section (id, file, input size, scaling, layouts, shape). ${fix}`,
    );
  return m as EncoderManifest;
}

/** The encoder of the bundle folder `dir`, checked against its manifest. */
export function bundleEncoder(dir: string): EncoderModel {
  const { encoder: e, files } = readEncoderManifest(dir);
  const file = path.join(dir, e.file);
  if (!fs.existsSync(file))
    throw new UserError(`${file} is missing from the bundle. Copy the whole bundle folder, or export it again.`);
  const onnx = new Uint8Array(fs.readFileSync(file));
  const want = files[e.file];
  const sha = createHash('sha256').update(onnx).digest('hex');
  if (onnx.length !== want.bytes || sha !== want.sha256) {
    throw new UserError(
      `${file} does not match its manifest (${onnx.length} bytes, SHA-256 ${sha}; expected ${want.bytes} bytes, ${want.sha256}): ` +
        'the file is damaged or from another export. Copy the whole bundle folder again.',
    );
  }
  const spec: EncoderSpec = {
    id: e.id,
    inputSize: e.inputSize,
    scaling: e.scaling,
    inputLayout: e.inputLayout,
    outputLayout: e.outputLayout,
    inputName: e.inputName,
    outputName: e.outputName,
    locations: e.locations,
    channels: e.channels,
  };
  return { spec, onnx };
}
