/**
 * What the HTTP service needs from a captioning model, and nothing more: its description and a way to
 * caption a batch of already-decoded images with one set of decoding options. The server, the batcher
 * and the model worker only see this interface; src/serve/captioner-adapter.ts implements it.
 *
 * Shapes: N images, S = inputSize, L = attention locations (grid x grid).
 */

export interface EngineInfo {
  /** Stable name of the loaded model: "<folder>/<checkpoint>@<first 12 hex of the weights' sha256>". */
  id: string;
  /** 'native' (C++ core) or 'onnx' (an exported decoder graph). */
  backend: 'native' | 'onnx';
  encoder: { id: string; inputSize: number; locations: number; channels: number };
  /** Side of the square attention grid (7 for MobileNetV2, 8 for InceptionV3), null when L is not a square. */
  attentionGrid: number | null;
  vocabSize: number;
  /** Longest caption the vocabulary was built for: the default and the upper bound of max_length. */
  maxLength: number;
  /** What the model file says about itself (createdAt, decoder sizes, training epochs ...), for GET /v1/model. */
  details: Record<string, unknown>;
}

/** One set of decoding options; requests that share one are decoded together. */
export interface DecodeSettings {
  beam: number;       // beam width k >= 1 (1 = greedy)
  alpha: number;      // length normalisation: rank finished captions by logProb / length^alpha
  maxLength: number;  // most tokens generated, <end> included
}

export interface CaptionWord {
  word: string;
  /** [L] the attention the decoder used when it emitted this word. */
  attention: Float32Array;
}

export interface CaptionAlternative {
  caption: string;
  logProb: number;
  /** logProb / length^alpha: what the beam ranked by. */
  score: number;
  finished: boolean;
}

export interface EngineCaption {
  caption: string;
  words: CaptionWord[];
  logProb: number;
  /** Whether the caption reached <end> before maxLength. */
  finished: boolean;
  /** The beam's finished hypotheses, best first (the caption itself first); one entry for greedy decoding. */
  alternatives: CaptionAlternative[];
}

export interface BatchResult {
  captions: EngineCaption[];
  /** Milliseconds the whole batch spent in the encoder and in the decoder. */
  encodeMs: number;
  decodeMs: number;
}

export interface CaptionEngine {
  readonly info: EngineInfo;
  /** Caption N images, each RGB uint8 [S, S, 3] as the encoder takes it, with one set of options. */
  captionBatch(images: Uint8Array[], settings: DecodeSettings): Promise<BatchResult>;
  dispose(): Promise<void>;
}
