/**
 * `sat export`: a trained checkpoint -> a self-contained bundle folder (see manifest.ts for the layout) that
 * onnxruntime-node, onnxruntime-web or any ONNX runtime can caption with. Built in memory first, so the ONNX
 * backend can also caption straight from a checkpoint without writing anything.
 */
import fs from 'node:fs';
import path from 'node:path';
import { restoreModel } from '../checkpoint/checkpoint.js';
import { checkpointModelId, checkpointSha256, type CheckpointSource } from '../checkpoint/source.js';
import { openEnsembleSources } from '../decode/native-backend.js';
import type { EncoderOptions } from '../encoders/registry.js';
import { attentionGrid } from '../figures/heat.js';
import { createModel } from '../model/index.js';
import { writeFilesAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import { PACKAGE_NAME, PACKAGE_VERSION } from '../util/version.js';
import { decoderInitGraph, decoderStepGraph, parametersByName, type DecoderParameters } from './graphs.js';
import {
  BUNDLE_FILES,
  BUNDLE_FORMAT,
  BUNDLE_FORMAT_VERSION,
  decoderIo,
  MANIFEST_FILE,
  sha256Hex,
  SINGLE_MODEL_FORMAT_VERSION,
  type BundleManifest,
} from './manifest.js';
import type { Bundle } from './bundle-backend.js';
import { halfPrecisionInitializers } from './onnx-rewrite.js';
import { BUNDLE_DTYPES, type BundleDtype } from './weights.js';
import { memoryBundleFiles, type BundleMemory } from './memory-files.js';
import type { CaptionMemoryData } from '../decode/consensus.js';
import { buildRunMemoryFor } from '../decode/run-memory.js';
import { runPaths } from '../dataset/run.js';

export interface ExportOptions {
  dtype?: BundleDtype;
  /**
   * A run folder: its training images' pooled features (from the run's store of the model's encoder) and captions
   * go into the bundle as a caption memory, for consensus reranking (src/decode/run-memory.ts).
   */
  memoryRun?: string;
  /** Encoder flags for what the checkpoint cannot say itself (a weights folder, a user .onnx and its flags). */
  encoder?: EncoderOptions;
}

export type { Bundle } from './bundle-backend.js';

/** One decoder's two graphs and the facts the manifest keeps about its checkpoint. */
async function exportDecoder({ ckpt }: CheckpointSource, dtype: BundleDtype) {
  const { meta } = ckpt;
  const model = createModel(meta.model);
  let params: DecoderParameters;
  try {
    restoreModel(model, ckpt, { optimizer: false });
    params = parametersByName(model.parameters());
  } finally {
    model.dispose();
  }
  const config = { ...meta.model, dropout: 0 };
  const sha256 = checkpointSha256(ckpt.file);
  return {
    config,
    init: decoderInitGraph(config, params, dtype),
    step: decoderStepGraph(config, params, dtype),
    modelId: checkpointModelId(ckpt.file, sha256),
    source: {
      checkpoint: path.basename(ckpt.file),
      sha256,
      epoch: meta.progress.epoch,
      best: meta.progress.best,
      run: meta.run === null ? null : path.basename(meta.run),
    },
  };
}

/** The caption memory of the training images of `run`, from its store of `encoderId` features. */
function runMemory(run: string, encoderId: string): CaptionMemoryData {
  if (!fs.existsSync(runPaths(run).runJson))
    throw new UserError(`--memory ${run} is not a prepared run (no run.json): pass the run the model was trained on.`);
  return buildRunMemoryFor(run, encoderId);
}

/**
 * Exports the checkpoint at `target` (run folder, checkpoints folder or .safetensors file) in memory; several
 * targets make an ensemble bundle: one encoder (the first checkpoint's), one decoder pair per checkpoint.
 */
export async function buildBundle(target: string | readonly string[], opts: ExportOptions = {}): Promise<Bundle> {
  const dtype = opts.dtype ?? 'fp32';
  if (!BUNDLE_DTYPES.includes(dtype))
    throw new UserError(`--dtype ${dtype} is not known; use one of ${BUNDLE_DTYPES.join(', ')}.`);
  const sources = await openEnsembleSources(target, opts.encoder);
  const { vocab, encoder } = sources[0];
  const decoders = [];
  for (const source of sources) decoders.push(await exportDecoder(source, dtype));
  const files = new Map<string, Uint8Array>([
    // fp32: byte for byte the graph `sat features` runs; fp16/int8: the same graph with float16 weights
    [BUNDLE_FILES.encoder, dtype === 'fp32' ? encoder.onnx : halfPrecisionInitializers(encoder.onnx)],
  ]);
  const io = decoders.map((d, i) => {
    const member = decoderIo(i + 1);
    files.set(member.init.file, d.init);
    files.set(member.step.file, d.step);
    return member;
  });
  const [first] = decoders;
  const { spec } = encoder;
  let memory: BundleMemory | undefined;
  if (opts.memoryRun !== undefined) {
    const built = memoryBundleFiles(runMemory(opts.memoryRun, spec.id), {
      run: path.basename(path.resolve(opts.memoryRun)),
      split: 'train',
    });
    memory = built.entry;
    for (const [name, bytes] of built.files) files.set(name, bytes);
  }
  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    formatVersion: decoders.length > 1 ? BUNDLE_FORMAT_VERSION : SINGLE_MODEL_FORMAT_VERSION,
    writtenBy: { package: PACKAGE_NAME, version: PACKAGE_VERSION },
    createdAt: new Date().toISOString(),
    modelId: decoders.map((d) => d.modelId).join('+'),
    dtype,
    source: first.source,
    model: first.config,
    encoder: {
      id: spec.id,
      file: BUNDLE_FILES.encoder,
      inputName: spec.inputName,
      outputName: spec.outputName,
      inputSize: spec.inputSize,
      scaling: spec.scaling,
      inputLayout: spec.inputLayout,
      outputLayout: spec.outputLayout,
      locations: spec.locations,
      channels: spec.channels,
      grid: attentionGrid(spec.locations),
    },
    decoder: io[0],
    vocab: {
      words: vocab.words.slice(),
      pad: vocab.padId,
      start: vocab.startId,
      end: vocab.endId,
      unk: vocab.unkId,
      maxLength: vocab.maxLength,
    },
    ...(decoders.length > 1
      ? {
          ensemble: decoders
            .slice(1)
            .map((d, i) => ({ modelId: d.modelId, source: d.source, model: d.config, decoder: io[i + 1] })),
        }
      : {}),
    ...(memory ? { memory } : {}),
    files: Object.fromEntries(
      await Promise.all(
        [...files].map(async ([name, bytes]) => [name, { sha256: await sha256Hex(bytes), bytes: bytes.length }]),
      ),
    ),
  };
  return { manifest, files };
}

/**
 * Writes a bundle into `dir` (created; files there of the same names are replaced, the manifest last). Every
 * file is first written beside its target and checked (src/util/atomic-write.ts), so a full disk leaves the
 * previous bundle whole; then the old manifest is removed and the files renamed into place, the manifest last,
 * so a crash during the renames leaves either the whole new bundle or a folder without a manifest, which every
 * reader refuses.
 */
export function writeBundle(dir: string, bundle: Bundle): string[] {
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory())
    throw new UserError(`--out ${dir} is a file; pass a folder for the bundle.`);
  fs.mkdirSync(dir, { recursive: true });
  const files = [...bundle.files].map(([name, data]) => ({ file: path.join(dir, name), data }));
  files.push({
    file: path.join(dir, MANIFEST_FILE),
    data: Buffer.from(JSON.stringify(bundle.manifest, null, 2) + '\n'),
  });
  writeFilesAtomic(files, 'the bundle', {
    beforeReplace: () => fs.rmSync(path.join(dir, MANIFEST_FILE), { force: true }), // a half-replaced bundle has no manifest
  });
  return files.map((f) => f.file);
}
