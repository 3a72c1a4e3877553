/**
 * The captioning model as the rest of the program sees it. The implementation (src/model/native-model.ts)
 * runs every kernel in the C++ addon; a CUDA implementation could sit behind the same interface later.
 *
 * Shapes: B batch, L locations, C channels (from the encoder), E embedding, U GRU units,
 * A attention units, V vocabulary, T decoder steps (caption length - 1, teacher forcing).
 */
export interface ModelConfig {
  locations: number; // L (64 for InceptionV3 mixed10, 49 for MobileNetV2)
  channels: number; // C (2048, 1280, 768 ...)
  embedDim: number; // E, tutorial: 256 (also the width of the Dense+ReLU projection of the features)
  units: number; // U, tutorial: 512 (GRU state and fc1 width)
  attentionUnits: number; // A, tutorial: 512 (Bahdanau W1, W2: -> A, V: A -> 1)
  vocabSize: number; // V, vocabulary size including <pad>=0
  dropout: number; // 0 = the tutorial (no dropout)
  attentionLambda: number; // doubly stochastic attention regulariser weight, 0 = the tutorial
  labelSmoothing?: number; // eps of training's cross-entropy target (1 - eps) onehot + eps / V; absent = 0
  gruState?: GruState; // absent = 'carry' (checkpoints made before this field existed)
  initState?: InitState; // absent = 'zeros' (checkpoints made before this field existed)
}

/**
 * How the GRU state moves between decoder steps. 'carry': a real recurrence, h_t = GRU(x_t, h_{t-1}).
 * 'reset': the TF tutorial's `self.gru(x)` with no initial state, h_t = GRU(x_t, 0); h_{t-1} is then
 * only the attention query, and the recurrent kernel is unused (kept so the checkpoint layout is the same).
 */
export type GruState = 'carry' | 'reset';
export const GRU_STATES: readonly GruState[] = ['carry', 'reset'];

/**
 * The decoder's initial state H[0]. 'zeros': the TF tutorial. 'mean': the paper (Xu et al. 2015, sec. 3.1.2),
 * H[0] = tanh(mean_l(encoded[l]) · init_state.kernel + init_state.bias), learnt with the rest. The
 * init_state.* parameters exist in both modes (one checkpoint layout) and get zero gradient with 'zeros'.
 */
export type InitState = 'zeros' | 'mean';
export const INIT_STATES: readonly InitState[] = ['zeros', 'mean'];

export const TUTORIAL_MODEL_DEFAULTS: Omit<ModelConfig, 'locations' | 'channels' | 'vocabSize'> = {
  embedDim: 256,
  units: 512,
  attentionUnits: 512,
  dropout: 0,
  attentionLambda: 0,
};

/** One padded training batch. */
export interface TrainBatch {
  size: number; // B
  steps: number; // T: tokens per row minus one
  features: Float32Array; // [B, L, C], or [images, L, C] with imageOfRow
  tokens: Int32Array; // [B, T+1], <start> first, 0-padded after <end>
  /**
   * [B] optional: row b is a caption of image imageOfRow[b] of `features`, which then holds each distinct image
   * once; the feature projection runs once per image (self-critical training samples K captions of every image).
   */
  imageOfRow?: Int32Array;
  /**
   * [B] optional per-caption weights on the cross-entropy (absent = all 1). Self-critical training passes each
   * sampled caption's reward advantage: the gradient of sum_b w_b * (-log p(caption_b)) is the policy gradient.
   */
  weights?: Float32Array;
}

export interface StepStats {
  loss: number; // mean cross-entropy over real (non-pad) target tokens (+ attention term, if any); weighted by batch.weights
  tokens: number; // real target tokens in the batch
  reward?: number; // self-critical training: mean reward (CIDEr-D) of the batch's sampled captions
}

export interface OptimizerOptions {
  learningRate: number; // Adam, Keras defaults beta1 .9, beta2 .999, eps 1e-7
  clipNorm?: number; // global-norm gradient clipping, 0/undefined = off
}

export interface NamedTensor {
  shape: number[];
  data: Float32Array; // live view of the model's storage: write to it to load weights
}

/** Per-image state carried through decoding. */
export interface DecoderState {
  size: number; // N images (or beams)
  hidden: Float32Array; // [N, U]
  encoded: Float32Array; // [N, L, E]  encoder output; [images, L, E] with imageOfRow
  projected: Float32Array; // [N, L, A]  W1 · encoded, computed once per image; [images, L, A] with imageOfRow
  /** [N]: the image (row of encoded and projected) each row reads, for backends whose rows share them. */
  imageOfRow?: Int32Array;
}

export interface StepOutput {
  logits: Float32Array; // [N, V]
  attention: Float32Array; // [N, L], sums to 1 per row
  hidden: Float32Array; // [N, U]  new state
}

/**
 * What decoding needs from a model, whatever runs it: the native addon (synchronous, DecoderModel) or an
 * ONNX runtime (asynchronous, AsyncDecoderModel). DecoderState is plain data, so selectRows is always synchronous.
 */
export interface DecoderModelBase {
  readonly config: ModelConfig;
  /** Reorder/duplicate state rows (beam search): new row i = old row rows[i]; `hidden` replaces state.hidden. */
  selectRows(state: DecoderState, rows: Int32Array, hidden?: Float32Array): DecoderState;
}

export interface DecoderModel extends DecoderModelBase {
  /** Frees the native memory; the model cannot be used after. */
  dispose(): void;
  /** Encode N images' features [N, L, C] for decoding; hidden starts at H[0] (zeros, or from the mean annotation with initState 'mean'). */
  encode(features: Float32Array, n: number): DecoderState;
  /** One decoder step for every row of `state` fed `tokens` [N]. Does not modify `state`. */
  step(state: DecoderState, tokens: Int32Array): StepOutput;
}

/** DecoderModel whose encode and step resolve later (onnxruntime's `run` is asynchronous). */
export interface AsyncDecoderModel extends DecoderModelBase {
  encode(features: Float32Array, n: number): Promise<DecoderState>;
  step(state: DecoderState, tokens: Int32Array): Promise<StepOutput>;
  /** Frees the runtime's sessions; the model cannot be used after. */
  release(): Promise<void>;
}

export interface CaptionModel extends DecoderModel {
  /** Parameters by name (stable names, also used in safetensors checkpoints). */
  parameters(): Map<string, NamedTensor>;
  /** Adam moments by parameter name, and the step counter, for checkpoints. */
  optimizerState(): { step: number; m: Map<string, NamedTensor>; v: Map<string, NamedTensor> };
  setOptimizerStep(step: number): void;
  /** Forward + backward + Adam update. `dropoutSeed` makes the dropout masks reproducible. */
  trainStep(batch: TrainBatch, opt: OptimizerOptions, dropoutSeed?: number): StepStats;
  /** Forward only (no dropout), for validation loss. */
  evalLoss(batch: TrainBatch): StepStats;
}

/**
 * Thrown by `trainStep` when the loss is not finite, before the optimizer update (so the weights stay finite).
 * The training loop turns it into its own stop-and-keep-the-checkpoint message.
 */
export class NonFiniteLossError extends Error {
  constructor(
    readonly loss: number,
    readonly optimizerStep: number,
  ) {
    super(
      `training diverged: loss is ${loss} at optimizer step ${optimizerStep}. Lower the learning rate or set clipNorm.`,
    );
    this.name = 'NonFiniteLossError';
  }
}
