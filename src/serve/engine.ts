/**
 * What the HTTP service needs from a captioning model, and nothing more: its description and a way to
 * caption a batch of already-decoded images with one set of decoding options. The server, the batcher
 * and the model worker only see this interface; src/serve/captioner-adapter.ts implements it over the
 * Captioner API (src/decode/captioner-api.ts).
 *
 * Shapes: N images, S = inputSize, L = attention locations (grid h x w).
 */
import type { CaptionResult } from '../decode/captioner-api.js';

export type EngineBackend = 'native' | 'onnx';

/** The faster backend end to end on the Flickr8k MobileNetV2 model, measured with `sat bench serve --backend native|onnx`. */
export const DEFAULT_ENGINE_BACKEND: EngineBackend = 'onnx';

export interface EngineInfo {
  /** Stable name of the loaded model: "<folder>-<checkpoint>-<first 12 hex of the checkpoint's SHA-256>", as `sat export` names it. */
  id: string;
  /** 'native' (the C++ decoder) or 'onnx' (onnxruntime-node running the exported graphs). */
  backend: EngineBackend;
  /** Where the model was loaded from: checkpoint file, or the --model folder. */
  source: string;
  encoder: { id: string; inputSize: number; locations: number };
  /** [h, w] of the attention grid (7 x 7 for MobileNetV2, 8 x 8 for InceptionV3; [1, L] when L is not a square). */
  grid: [number, number];
  vocabSize: number;
  /** Longest caption the vocabulary was built for: the default and the upper bound of max_length. */
  maxLength: number;
  /** Weight format: 'fp32' for a checkpoint, the bundle's for a bundle. */
  dtype: string;
  /** What the model's files say about it (created at, decoder sizes, training epochs ...), for GET /v1/model. */
  details: Record<string, unknown>;
}

/** One set of decoding options; requests that share one are decoded together. */
export interface DecodeSettings {
  beam: number;       // beam width k >= 1 (1 = greedy)
  alpha: number;      // length normalisation: rank finished captions by logProb / length^alpha
  maxLength: number;  // most tokens generated, <end> included
}

export interface BatchResult {
  /** As the Captioner API gives them: words with their attention [h * w], the beam's alternatives (none for greedy). */
  captions: CaptionResult[];
  /** Milliseconds the whole batch spent in the model (encoder batch + decoder batch). */
  modelMs: number;
}

export interface CaptionEngine {
  readonly info: EngineInfo;
  /** False once the engine can take no more batches (its model thread crashed or exited); absent: always alive. */
  readonly alive?: boolean;
  /** Caption N images, each RGB uint8 [S, S, 3] as the encoder takes it, with one set of options. */
  captionBatch(images: Uint8Array[], settings: DecodeSettings): Promise<BatchResult>;
  dispose(): Promise<void>;
}
