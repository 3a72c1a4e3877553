/**
 * A bundle (manifest + file bytes) as a CaptionRuntime on any onnxruntime: onnxruntime-node in Node
 * (src/models/load-captioner.ts), onnxruntime-web in browsers (src/web). Pure: no Node built-ins; the caller brings the
 * runtime, its session options and the image preprocessing of its platform.
 */
import type { CaptionRuntime, CaptionerInfo } from '../decode/captioner-api.js';
import { asyncEnsembleModel } from '../decode/ensemble.js';
import { decodeImagesAsync } from '../decode/index.js';
import type { DecodeVocab } from '../decode/types.js';
import type { OrtNamespace } from '../encoders/onnx/runtime.js';
import { encodeImages, OnnxImageEncoder } from '../features/onnx-encoder.js';
import { OnnxDecoderModel } from '../model/onnx-model.js';
import { defaultMaxLength } from '../vocab/max-length.js';
import type { BundleManifest } from './manifest.js';
import { readBundleMemory, type BundleMemory } from './memory-files.js';
import type { CaptionMemory } from '../decode/consensus.js';
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
  /** Reads a file of the manifest that `bundle.files` left out (the browser fetches the caption memory on first use). */
  loadFile?: (name: string) => Promise<Uint8Array>;
}

export function manifestVocab(m: BundleManifest): DecodeVocab {
  const { words, pad, start, end, unk } = m.vocab;
  return { pad, start, end, unk, word: (id) => words[id] ?? '<unk>' };
}

/**
 * Sessions for the bundle's graphs (an ensemble bundle's decoders run as one model, src/decode/ensemble.ts); if any
 * is refused, those already made are released first.
 */
export async function bundleBackend<Image>(
  ort: OrtNamespace,
  bundle: Bundle,
  opts: BundleBackendOptions<Image>,
): Promise<CaptionRuntime<Image>> {
  const { manifest: m } = bundle;
  const graph = (file: string) => {
    const stored = bundle.files.get(file)!;
    // onnxruntime takes model bytes in an ArrayBuffer only: bytes shared between threads are copied here
    const bytes = stored.buffer instanceof ArrayBuffer ? stored : stored.slice();
    // fp16/int8 weights become float32 once, here, instead of in every run (see expandStoredWeights)
    return m.dtype === 'fp32' ? bytes : expandStoredWeights(bytes);
  };
  const encoder = await OnnxImageEncoder.create(ort, m.encoder, graph(m.encoder.file), opts.sessionOptions);
  const members = [{ model: m.model, decoder: m.decoder }, ...(m.ensemble ?? [])];
  const decoders: OnnxDecoderModel[] = [];
  try {
    for (const { model, decoder } of members) {
      decoders.push(
        await OnnxDecoderModel.create(
          ort,
          model,
          { init: graph(decoder.init.file), step: graph(decoder.step.file) },
          opts.sessionOptions,
        ),
      );
    }
  } catch (e) {
    // the load's own error is the one to report
    await Promise.allSettled([encoder.release(), ...decoders.map((d) => d.release())]);
    throw e;
  }
  const model = asyncEnsembleModel(decoders);
  const vocab = manifestVocab(m);
  const info: CaptionerInfo = {
    modelId: m.modelId,
    backend: opts.backend,
    source: opts.source,
    encoderId: m.encoder.id,
    inputSize: m.encoder.inputSize,
    scaling: m.encoder.scaling,
    inputLayout: m.encoder.inputLayout,
    locations: m.encoder.locations,
    grid: m.encoder.grid,
    vocabSize: m.model.vocabSize,
    maxLength: defaultMaxLength(m.vocab),
    dtype: m.dtype,
    consensus: m.memory !== undefined,
  };
  let memory: Promise<CaptionMemory> | undefined;
  const memoryEntry = m.memory;
  const loadMemory = async (entry: BundleMemory): Promise<CaptionMemory> => {
    const files = new Map(bundle.files);
    for (const name of [entry.vectors, entry.captions]) {
      if (files.has(name)) continue;
      if (!opts.loadFile) throw new Error(`the bundle's ${name} is not loaded; load the bundle with all its files.`);
      files.set(name, await opts.loadFile(name));
    }
    return readBundleMemory(entry, files);
  };
  return {
    info,
    vocab,
    preprocess: opts.preprocess,
    encode: (rgb) => encodeImages(encoder, rgb, opts.encoderBatch),
    decode: (features, n, o) => decodeImagesAsync(model, features, n, vocab, o),
    ...(memoryEntry
      ? {
          memory: () =>
            (memory ??= loadMemory(memoryEntry).catch((e: unknown) => {
              memory = undefined; // a failed fetch may be retried
              throw e;
            })),
        }
      : {}),
    dispose: async () => {
      const results = await Promise.allSettled([model.release(), encoder.release()]);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
  };
}
