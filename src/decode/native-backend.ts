/**
 * The native backend of the Captioner API (`loadCaptioner(..., { backend: 'native' })`, src/models/load-captioner.ts):
 *
 *   checkpoint (weights + model config + encoder id) + its vocab.json
 *   -> the same encoder rebuilt and checked against the checkpoint's encoder id, run on onnxruntime-node
 *   -> features [n, L, C] decoded by the C++ addon in one batch (src/decode/index.ts)
 */
import { restoreModel } from '../checkpoint/checkpoint.js';
import { checkpointModelId, openCheckpointSource } from '../checkpoint/source.js';
import type { EncoderOptions } from '../encoders/registry.js';
import { attentionGrid } from '../figures/heat.js';
import { encodeImages, type OnnxImageEncoder } from '../features/onnx-encoder.js';
import { createEncoderRunner } from '../features/node-onnxruntime.js';
import { createModel } from '../model/index.js';
import type { CaptionModel } from '../model/types.js';
import { defaultMaxLength } from '../vocab/max-length.js';
import type { CaptionBackend, CaptionerInfo } from './captioner-api.js';
import { decodeImages, decodeVocab } from './index.js';

export interface NativeBackendOptions<Image> {
  /** Encoder flags a checkpoint cannot supply itself (see encoderOptionsFor). */
  encoder?: EncoderOptions;
  /** onnxruntime intra-op threads of the encoder. */
  threads?: number;
  /** Image -> RGB uint8 HWC, `size` square. */
  preprocess(image: Image, size: number): Promise<Uint8Array>;
}

/** Loads the checkpoint at `target` (run folder, checkpoints folder or file); nothing stays allocated if it fails. */
export async function nativeCaptionBackend<Image>(target: string, opts: NativeBackendOptions<Image>): Promise<CaptionBackend<Image>> {
  const { ckpt, vocab, encoder: encoderModel } = await openCheckpointSource(target, opts.encoder);
  const modelId = checkpointModelId(ckpt.file);
  let model: CaptionModel | null = null;
  let encoder: OnnxImageEncoder;
  try {
    model = createModel(ckpt.meta.model);
    restoreModel(model, ckpt, { optimizer: false });
    encoder = await createEncoderRunner(encoderModel, { threads: opts.threads });
  } catch (e) {
    model?.dispose();
    throw e;
  }
  const decoder = model;
  const { spec } = encoderModel;
  const info: CaptionerInfo = {
    modelId, backend: 'native', source: ckpt.file, encoderId: spec.id, inputSize: spec.inputSize, scaling: spec.scaling,
    inputLayout: spec.inputLayout, locations: spec.locations, grid: attentionGrid(spec.locations), vocabSize: vocab.size,
    maxLength: defaultMaxLength(vocab), dtype: 'fp32',
  };
  const decodeView = decodeVocab(vocab);
  return {
    info, vocab: decodeView,
    preprocess: (image) => opts.preprocess(image, spec.inputSize),
    encode: (rgb) => encodeImages(encoder, rgb),
    decode: async (features, n, o) => decodeImages(decoder, features, n, decodeView, o),
    dispose: async () => {
      decoder.dispose();
      await encoder.release();
    },
  };
}
