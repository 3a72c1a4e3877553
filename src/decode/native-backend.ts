/**
 * The native backend of the Captioner API (`loadCaptioner(..., { backend: 'native' })`, src/models/load-captioner.ts):
 *
 *   checkpoint (weights + model config + encoder id) + its vocab.json
 *   -> the same encoder rebuilt and checked against the checkpoint's encoder id, run on onnxruntime-node
 *   -> features [n, L, C] decoded by the C++ addon in one batch (src/decode/index.ts)
 *
 * Several checkpoints of one vocabulary and encoder decode as an ensemble (src/decode/ensemble.ts).
 */
import fs from 'node:fs';
import { restoreModel } from '../checkpoint/checkpoint.js';
import { runPaths } from '../dataset/run.js';
import { checkpointModelId, openCheckpointSource, type CheckpointSource } from '../checkpoint/source.js';
import type { EncoderOptions } from '../encoders/registry.js';
import { attentionGrid } from '../figures/heat.js';
import { encodeImages, type OnnxImageEncoder } from '../features/onnx-encoder.js';
import { createEncoderRunner } from '../features/node-onnxruntime.js';
import { createModel } from '../model/index.js';
import type { CaptionModel } from '../model/types.js';
import { defaultMaxLength } from '../vocab/max-length.js';
import type { CaptionRuntime, CaptionerInfo } from './captioner-api.js';
import { CaptionMemory } from './consensus.js';
import { buildRunMemoryFor } from './run-memory.js';
import { ensembleModel, checkEnsembleMembers } from './ensemble.js';
import { decodeImages, decodeVocab } from './index.js';
import { UserError } from '../util/errors.js';

export interface NativeBackendOptions<Image> {
  /** Encoder flags a checkpoint cannot supply itself (see encoderOptionsFor). */
  encoder?: EncoderOptions;
  /** onnxruntime intra-op threads of the encoder. */
  threads?: number;
  /** Image -> RGB uint8 HWC, `size` square. */
  preprocess(image: Image, size: number): Promise<Uint8Array>;
}

/**
 * Opens the checkpoints of an ensemble (one target: one model) and refuses members whose vocabulary or encoder
 * differs from the first's, naming what differs (checkEnsembleMembers).
 */
export async function openEnsembleSources(
  targets: string | readonly string[],
  encoder?: EncoderOptions,
): Promise<CheckpointSource[]> {
  const list = typeof targets === 'string' ? [targets] : targets;
  if (list.length === 0) throw new UserError('no model given: pass at least one run folder, checkpoint or bundle.');
  const sources: CheckpointSource[] = [];
  for (const target of list) sources.push(await openCheckpointSource(target, encoder));
  checkEnsembleMembers(
    sources.map(({ ckpt, vocab }) => ({
      name: ckpt.file,
      words: vocab.words,
      encoderId: ckpt.meta.encoder.id,
      locations: ckpt.meta.model.locations,
      channels: ckpt.meta.model.channels,
    })),
    (m) => new UserError(m),
  );
  return sources;
}

/**
 * Loads the checkpoint at `target` (run folder, checkpoints folder or file), or several as an ensemble
 * (src/decode/ensemble.ts; the encoder is the first's); nothing stays allocated if it fails.
 */
export async function nativeCaptionBackend<Image>(
  target: string | readonly string[],
  opts: NativeBackendOptions<Image>,
): Promise<CaptionRuntime<Image>> {
  const sources = await openEnsembleSources(target, opts.encoder);
  const { vocab, encoder: encoderModel } = sources[0];
  const modelId = sources.map(({ ckpt }) => checkpointModelId(ckpt.file)).join('+');
  const models: CaptionModel[] = [];
  let encoder: OnnxImageEncoder;
  try {
    for (const { ckpt } of sources) {
      models.push(createModel(ckpt.meta.model));
      restoreModel(models[models.length - 1], ckpt, { optimizer: false });
    }
    encoder = await createEncoderRunner(encoderModel, { threads: opts.threads });
  } catch (e) {
    for (const m of models) m.dispose();
    throw e;
  }
  const decoder = ensembleModel(models);
  const { spec } = encoderModel;
  const info: CaptionerInfo = {
    modelId,
    backend: 'native',
    source: sources.map(({ ckpt }) => ckpt.file).join(' + '),
    encoderId: spec.id,
    inputSize: spec.inputSize,
    scaling: spec.scaling,
    inputLayout: spec.inputLayout,
    locations: spec.locations,
    grid: attentionGrid(spec.locations),
    vocabSize: vocab.size,
    maxLength: defaultMaxLength(vocab),
    dtype: 'fp32',
    consensus: memoryRun(sources[0]) !== null,
  };
  const decodeView = decodeVocab(vocab);
  let memory: CaptionMemory | undefined;
  return {
    info,
    vocab: decodeView,
    preprocess: (image) => opts.preprocess(image, spec.inputSize),
    encode: (rgb) => encodeImages(encoder, rgb),
    decode: async (features, n, o) => decodeImages(decoder, features, n, decodeView, o),
    memory: () => (memory ??= runCaptionMemory(sources[0])),
    dispose: async () => {
      decoder.dispose();
      await encoder.release();
    },
  };
}

/** The run folder the checkpoint was trained in, when it is still here (its memory can be built); else null. */
function memoryRun({ ckpt }: CheckpointSource): string | null {
  const run = ckpt.meta.run;
  return run !== null && fs.existsSync(runPaths(run).runJson) ? run : null;
}

/** The caption memory of the training images of the checkpoint's run (run-memory.ts). */
function runCaptionMemory(source: CheckpointSource): CaptionMemory {
  const run = memoryRun(source);
  if (run === null)
    throw new UserError(
      `consensus reranking votes with the training captions of the run ${source.ckpt.file} was trained in ` +
        `(${source.ckpt.meta.run ?? 'not recorded'}), and that run is not here: caption with a bundle exported with ` +
        '`sat export --memory RUN`, or leave consensus out.',
    );
  return new CaptionMemory(buildRunMemoryFor(run, source.ckpt.meta.encoder.id));
}
