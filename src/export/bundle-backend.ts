/**
 * A bundle (manifest + file bytes) as a CaptionBackend on any onnxruntime: onnxruntime-node in Node
 * (src/export/load.ts), onnxruntime-web in browsers (src/web). Pure: no Node built-ins; the caller brings the
 * runtime, its session options and the image preprocessing of its platform.
 */
import type { CaptionBackend, CaptionerInfo } from '../decode/captioner-api.js';
import { decodeImagesAsync } from '../decode/index.js';
import type { DecodeVocab } from '../decode/types.js';
import { writeImageToBatch, type ImageInputOptions } from '../features/pixels.js';
import type { BundleManifest } from './manifest.js';
import { OnnxDecoderModel, OnnxImageEncoder, type OrtNamespace } from './onnx-backend.js';
import { expandStoredWeights } from './onnx-rewrite.js';

export interface Bundle {
  manifest: BundleManifest;
  /** File name -> bytes, manifest.json excluded. */
  files: Map<string, Uint8Array>;
}

export interface BundleBackendOptions<Image> {
  source: string;
  backend: CaptionerInfo['backend'];
  sessionOptions: object;
  /** Image -> RGB uint8 HWC, manifest.encoder.inputSize square. */
  preprocess(image: Image): Promise<Uint8Array>;
  /** Images per encoder run (default 16). */
  encoderBatch?: number;
}

export function manifestVocab(m: BundleManifest): DecodeVocab {
  const { words, pad, start, end, unk } = m.vocab;
  return { pad, start, end, unk, word: (id) => words[id] ?? '<unk>' };
}

export async function bundleBackend<Image>(ort: OrtNamespace, bundle: Bundle, opts: BundleBackendOptions<Image>): Promise<CaptionBackend<Image>> {
  const { manifest: m } = bundle;
  // fp16/int8 weights become float32 once, here, instead of in every run (see expandStoredWeights)
  const graph = (file: string) => (m.dtype === 'fp32' ? bundle.files.get(file)! : expandStoredWeights(bundle.files.get(file)!));
  const encoder = await OnnxImageEncoder.create(ort, m.encoder, graph(m.encoder.file), opts.sessionOptions);
  let model: OnnxDecoderModel;
  try {
    model = await OnnxDecoderModel.create(ort, m.model, { init: graph(m.decoder.init.file), step: graph(m.decoder.step.file) }, opts.sessionOptions);
  } catch (e) {
    await encoder.release();
    throw e;
  }
  const vocab = manifestVocab(m);
  const info: CaptionerInfo = {
    modelId: m.modelId, backend: opts.backend, source: opts.source, encoderId: m.encoder.id, inputSize: m.encoder.inputSize,
    scaling: m.encoder.scaling, inputLayout: m.encoder.inputLayout, locations: m.encoder.locations, grid: m.encoder.grid,
    vocabSize: m.model.vocabSize, maxLength: Math.max(1, m.vocab.maxLength - 1), dtype: m.dtype,
  };
  const scale: ImageInputOptions = { size: m.encoder.inputSize, scaling: m.encoder.scaling, layout: m.encoder.inputLayout };
  const perImage = m.encoder.locations * m.encoder.channels;
  const batch = opts.encoderBatch ?? 16;
  return {
    info, vocab,
    preprocess: opts.preprocess,
    async encode(rgb) {
      const out = new Float32Array(rgb.length * perImage);
      const input = new Float32Array(Math.min(batch, rgb.length) * 3 * scale.size * scale.size);
      for (let first = 0; first < rgb.length; first += batch) {
        const count = Math.min(batch, rgb.length - first);
        for (let i = 0; i < count; i++) writeImageToBatch(rgb[first + i], input, i, scale);
        out.set(await encoder.run(input, count), first * perImage);
      }
      return out;
    },
    decode: (features, n, o) => decodeImagesAsync(model, features, n, vocab, o),
    dispose: async () => { await Promise.all([model.release(), encoder.release()]); },
  };
}
