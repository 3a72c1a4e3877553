/**
 * CaptionModel on the C++ addon (oneDNN or CBLAS matmuls). This class owns the parameter, gradient and Adam-moment
 * arenas and validates every input; the addon only computes. See native/train.cc for the kernels.
 */
import { UserError } from '../util/errors.js';
import { GRU_STATES, INIT_STATES, NonFiniteLossError } from './types.js';
import { loadBinding, type NativeBinding, type NativeWorkspace, type Precision } from './binding.js';
import {
  allocateArena,
  checkAddonParameterTable,
  initialiseParameters,
  PARAMETER_ORDER,
  type Arena,
} from './params.js';
import { selectSharedRows } from './state.js';
import type {
  CaptionModel,
  DecoderState,
  ModelConfig,
  NamedTensor,
  OptimizerOptions,
  StepOutput,
  StepStats,
  TrainBatch,
} from './types.js';

const ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 }; // Keras defaults

export function validateConfig(c: ModelConfig): void {
  for (const key of ['locations', 'channels', 'embedDim', 'units', 'attentionUnits', 'vocabSize'] as const) {
    const v = c[key];
    if (!Number.isInteger(v) || v < 1)
      throw new UserError(`model config: ${key} must be a positive integer, got ${v}.`);
  }
  if (c.vocabSize < 2)
    throw new UserError(`model config: vocabSize must be at least 2 (<pad> and one word), got ${c.vocabSize}.`);
  if (!(c.dropout >= 0 && c.dropout < 1))
    throw new UserError(`model config: dropout must be in [0, 1), got ${c.dropout}.`);
  if (c.labelSmoothing !== undefined && !(c.labelSmoothing >= 0 && c.labelSmoothing < 1))
    throw new UserError(`model config: labelSmoothing must be in [0, 1), got ${c.labelSmoothing}.`);
  if (!(c.attentionLambda >= 0))
    throw new UserError(`model config: attentionLambda must be >= 0, got ${c.attentionLambda}.`);
  if (c.gruState !== undefined && !GRU_STATES.includes(c.gruState)) {
    throw new UserError(
      `model config: gruState must be one of ${GRU_STATES.join(', ')}, got ${JSON.stringify(c.gruState)}.`,
    );
  }
  if (c.initState !== undefined && !INIT_STATES.includes(c.initState)) {
    throw new UserError(
      `model config: initState must be one of ${INIT_STATES.join(', ')}, got ${JSON.stringify(c.initState)}.`,
    );
  }
}

export class NativeCaptionModel implements CaptionModel {
  readonly config: ModelConfig;
  private readonly native: NativeBinding;
  private readonly params: Arena;
  private readonly grads: Arena;
  private readonly m: Arena;
  private readonly v: Arena;
  private step_ = 0;
  private workspace: NativeWorkspace | null;

  /** Precision of training steps ('bf16': bf16 matmul operands, f32 accumulation); evalLoss and decoding are fp32. */
  readonly precision: Precision;

  constructor(config: ModelConfig, seed = 42, precision: Precision = 'fp32') {
    validateConfig(config);
    if (precision !== 'fp32' && precision !== 'bf16')
      throw new UserError(`precision must be fp32 or bf16, got ${JSON.stringify(precision)}.`);
    this.precision = precision;
    this.config = { ...config };
    this.native = loadBinding();
    checkAddonParameterTable(this.native.parameterTable(this.dims(1, 0)), config);
    this.params = allocateArena(config);
    this.grads = allocateArena(config);
    this.m = allocateArena(config);
    this.v = allocateArena(config);
    initialiseParameters(this.params, seed);
    this.workspace = this.native.createWorkspace();
  }

  parameters(): Map<string, NamedTensor> {
    return toNamed(this.params);
  }

  /** Gradients of the last trainStep (before clipping), by parameter name. */
  gradients(): Map<string, NamedTensor> {
    return toNamed(this.grads);
  }

  optimizerState() {
    return { step: this.step_, m: toNamed(this.m), v: toNamed(this.v) };
  }

  setOptimizerStep(step: number): void {
    if (!Number.isInteger(step) || step < 0)
      throw new UserError(`optimizer step must be a non-negative integer, got ${step}.`);
    this.step_ = step;
  }

  trainStep(batch: TrainBatch, opt: OptimizerOptions, dropoutSeed = 0): StepStats {
    if (!(opt.learningRate > 0)) throw new UserError(`learningRate must be > 0, got ${opt.learningRate}.`);
    if (opt.clipNorm !== undefined && !(opt.clipNorm >= 0))
      throw new UserError(`clipNorm must be >= 0, got ${opt.clipNorm}.`);
    const r = this.run(batch, true, dropoutSeed);
    let scale = 1;
    if (opt.clipNorm) {
      const norm = Math.sqrt(this.native.sumSquares(this.grads.data));
      if (norm > opt.clipNorm) scale = opt.clipNorm / norm;
    }
    this.step_ += 1;
    this.native.adamUpdate(
      this.params.data,
      this.grads.data,
      this.m.data,
      this.v.data,
      opt.learningRate,
      ADAM.beta1,
      ADAM.beta2,
      ADAM.epsilon,
      this.step_,
      scale,
    );
    return r;
  }

  evalLoss(batch: TrainBatch): StepStats {
    return this.run(batch, false, 0);
  }

  encode(features: Float32Array, n: number): DecoderState {
    const { locations: L, channels: C, embedDim: E, attentionUnits: A, units: U } = this.config;
    if (!Number.isInteger(n) || n < 1) throw new UserError(`encode: n must be a positive integer, got ${n}.`);
    expectLength('encode: features', features, n * L * C, `[N=${n}, L=${L}, C=${C}]`);
    const encoded = new Float32Array(n * L * E);
    const projected = new Float32Array(n * L * A);
    const hidden = new Float32Array(n * U);
    this.native.encode(this.params.views, this.dims(n, 0), features, encoded, projected, hidden, this.meanInit);
    return { size: n, hidden, encoded, projected };
  }

  step(state: DecoderState, tokens: Int32Array): StepOutput {
    const { locations: L, units: U, vocabSize: V } = this.config;
    const n = state.size;
    this.checkState(state);
    expectLength('step: tokens', tokens, n, `[N=${n}]`);
    checkTokens('step: tokens', tokens, V);
    const out = {
      logits: new Float32Array(n * V),
      attention: new Float32Array(n * L),
      hidden: new Float32Array(n * U),
    };
    this.native.decodeStep(
      this.ws(),
      this.params.views,
      this.dims(n, 0),
      state.encoded,
      state.projected,
      state.hidden,
      tokens,
      out.logits,
      out.attention,
      out.hidden,
      this.resetState,
      state.imageOfRow,
      state.imageOfRow ? this.imagesOf(state) : undefined,
    );
    return out;
  }

  selectRows(state: DecoderState, rows: Int32Array, hidden?: Float32Array): DecoderState {
    this.checkState(state);
    if (hidden)
      expectLength(
        'selectRows: hidden',
        hidden,
        state.size * this.config.units,
        `[N=${state.size}, U=${this.config.units}]`,
      );
    return selectSharedRows(this.config, state, rows, hidden);
  }

  dispose(): void {
    if (this.workspace) this.native.releaseWorkspace(this.workspace);
    this.workspace = null;
  }

  // ------------------------------------------------------------------ internals

  private run(batch: TrainBatch, train: boolean, dropoutSeed: number): StepStats {
    const { locations: L, channels: C, vocabSize: V } = this.config;
    const { size: B, steps: T } = batch;
    if (!Number.isInteger(B) || B < 1) throw new UserError(`batch.size must be a positive integer, got ${B}.`);
    if (!Number.isInteger(T) || T < 1) throw new UserError(`batch.steps must be a positive integer, got ${T}.`);
    let images = B;
    if (batch.imageOfRow) {
      expectLength('batch.imageOfRow', batch.imageOfRow, B, `[B=${B}]`);
      images = batch.features.length / (L * C);
      if (!Number.isInteger(images) || images < 1) {
        throw new UserError(
          `batch.features holds ${batch.features.length} floats: with imageOfRow it must be [images, L=${L}, C=${C}].`,
        );
      }
      const bad = batch.imageOfRow.findIndex((i) => !(i >= 0 && i < images));
      if (bad >= 0)
        throw new UserError(
          `batch.imageOfRow[${bad}] = ${batch.imageOfRow[bad]} is outside the ${images} images of batch.features.`,
        );
    } else {
      expectLength('batch.features', batch.features, B * L * C, `[B=${B}, L=${L}, C=${C}]`);
    }
    expectLength('batch.tokens', batch.tokens, B * (T + 1), `[B=${B}, T+1=${T + 1}]`);
    checkTokens('batch.tokens', batch.tokens, V);
    if (!Number.isInteger(dropoutSeed) || dropoutSeed < 0)
      throw new UserError(`dropoutSeed must be a non-negative integer, got ${dropoutSeed}.`);
    if (batch.weights) {
      expectLength('batch.weights', batch.weights, B, `[B=${B}]`);
      const bad = batch.weights.findIndex((w) => !Number.isFinite(w));
      if (bad >= 0)
        throw new UserError(`batch.weights[${bad}] is ${batch.weights[bad]}: caption weights must be finite numbers.`);
    }
    const r = this.native.trainStep(
      this.ws(),
      this.params.views,
      train ? this.grads.views : null,
      this.dims(B, T),
      batch.features,
      batch.tokens,
      train ? this.config.dropout : 0,
      this.config.attentionLambda,
      dropoutSeed >>> 0,
      this.resetState,
      this.meanInit,
      batch.weights ?? null,
      batch.imageOfRow ?? null,
      images,
      train ? this.precision : 'fp32',
      // cross-entropy training only: validation losses and self-critical (weighted) steps keep the plain target
      train && !batch.weights ? (this.config.labelSmoothing ?? 0) : 0,
    );
    if (r.tokens === 0)
      throw new UserError('batch has no real target tokens (every target is <pad>=0): check the tokenised captions.');
    if (!Number.isFinite(r.loss)) throw new NonFiniteLossError(r.loss, this.step_);
    return { loss: r.loss, tokens: r.tokens };
  }

  /** The TF tutorial's GRU (state restarted from zeros every step); absent gruState = carry. */
  private get resetState(): boolean {
    return this.config.gruState === 'reset';
  }

  /** The paper's initial state from the mean annotation vector; absent initState = zeros. */
  private get meanInit(): boolean {
    return this.config.initState === 'mean';
  }

  private dims(b: number, t: number): Int32Array {
    const c = this.config;
    return Int32Array.of(b, t, c.locations, c.channels, c.embedDim, c.units, c.attentionUnits, c.vocabSize);
  }

  private ws(): NativeWorkspace {
    if (!this.workspace) throw new Error('this model was disposed');
    return this.workspace;
  }

  private checkState(s: DecoderState): void {
    const { locations: L, embedDim: E, attentionUnits: A, units: U } = this.config;
    const n = s.size;
    if (!Number.isInteger(n) || n < 1) throw new UserError(`decoder state size must be a positive integer, got ${n}.`);
    expectLength('state.hidden', s.hidden, n * U, `[N=${n}, U=${U}]`);
    if (s.imageOfRow) {
      expectLength('state.imageOfRow', s.imageOfRow, n, `[N=${n}]`);
      const images = this.imagesOf(s);
      expectLength('state.projected', s.projected, images * L * A, `[images=${images}, L=${L}, A=${A}]`);
      return; // the addon checks each row's image against `images`
    }
    expectLength('state.encoded', s.encoded, n * L * E, `[N=${n}, L=${L}, E=${E}]`);
    expectLength('state.projected', s.projected, n * L * A, `[N=${n}, L=${L}, A=${A}]`);
  }

  /** The images a state with imageOfRow holds: encoded is [images, L, E]. */
  private imagesOf(s: DecoderState): number {
    const { locations: L, embedDim: E } = this.config;
    const images = s.encoded.length / (L * E);
    if (!Number.isInteger(images) || images < 1)
      throw new UserError(
        `state.encoded holds ${s.encoded.length} values, not a whole number of [L=${L}, E=${E}] images.`,
      );
    return images;
  }
}

function toNamed(a: Arena): Map<string, NamedTensor> {
  const out = new Map<string, NamedTensor>();
  for (const name of PARAMETER_ORDER) {
    const t = a.byName.get(name)!;
    out.set(name, { shape: [...t.shape], data: t.data });
  }
  return out;
}

function expectLength(what: string, a: ArrayLike<number>, n: number, shape: string): void {
  const type = what.includes('tokens') || what.includes('imageOfRow') ? Int32Array : Float32Array;
  if (!(a instanceof type)) throw new UserError(`${what} must be a ${type.name} ${shape}.`);
  if (a.length !== n) {
    throw new UserError(`${what} has ${a.length} elements but ${shape} needs ${n}.`);
  }
}

function checkTokens(what: string, tokens: Int32Array, vocab: number): void {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t < 0 || t >= vocab)
      throw new UserError(
        `${what}[${i}] = ${t} is outside the vocabulary [0, ${vocab}): the model was built for vocabSize ${vocab}.`,
      );
  }
}
