/**
 * A bundle folder with a valid manifest.json and small stand-in graph files (the manifest checks do not read the
 * ONNX inside), for the manifest and bundle-folder tests and the fuzz seeds.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  BUNDLE_FILES,
  BUNDLE_FORMAT,
  BUNDLE_FORMAT_VERSION,
  decoderIo,
  type BundleManifest,
} from '../../src/export/manifest.js';

export const sha256 = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');

/** The three bundle files: a few distinct bytes each. */
export const bundleFiles = (): Record<string, Buffer> =>
  Object.fromEntries(Object.values(BUNDLE_FILES).map((name, i) => [name, Buffer.from(`${name} ${i}`.repeat(i + 1))]));

export function manifestFor(files: Record<string, Uint8Array>): BundleManifest {
  const words = ['<pad>', '<start>', '<end>', '<unk>', 'a', 'dog'];
  return {
    format: BUNDLE_FORMAT,
    formatVersion: BUNDLE_FORMAT_VERSION,
    writtenBy: { package: 'show-attend-tell', version: '0.1.0' },
    createdAt: '2024-01-01T00:00:00.000Z',
    modelId: 'latest-0123456789ab',
    dtype: 'fp32',
    source: { checkpoint: 'latest.safetensors', sha256: '0'.repeat(64), epoch: 1, best: null, run: null },
    model: {
      locations: 4,
      channels: 8,
      embedDim: 6,
      units: 10,
      attentionUnits: 5,
      vocabSize: words.length,
      dropout: 0,
      attentionLambda: 0,
    },
    encoder: {
      id: 'pool',
      file: BUNDLE_FILES.encoder,
      inputName: 'image',
      outputName: 'features',
      inputSize: 16,
      scaling: 'zero_one',
      inputLayout: 'nhwc',
      outputLayout: 'nhwc',
      locations: 4,
      channels: 8,
      grid: [2, 2],
    },
    decoder: decoderIo(),
    vocab: { words, pad: 0, start: 1, end: 2, unk: 3, maxLength: 12 },
    files: Object.fromEntries(Object.entries(files).map(([name, b]) => [name, { sha256: sha256(b), bytes: b.length }])),
  };
}

/** Writes a bundle folder at `dir` (the manifest may be changed by `edit`); returns the manifest's bytes. */
export function writeBundleFolder(dir: string, edit: (m: BundleManifest) => unknown = (m) => m): Buffer {
  const files = bundleFiles();
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, b] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), b);
  const bytes = Buffer.from(JSON.stringify(edit(manifestFor(files)), null, 2) + '\n');
  fs.writeFileSync(path.join(dir, 'manifest.json'), bytes);
  return bytes;
}
