/**
 * The captioning model and the image encoder on onnxruntime, given the runtime's namespace: `onnxruntime-node`
 * in Node, `onnxruntime-web` in browsers (or in Node, single-threaded wasm). No Node built-ins here.
 *
 * OnnxDecoderModel is one more AsyncDecoderModel: src/decode's searches drive it exactly as they drive the
 * native model. Its DecoderState is plain arrays (fed to every step), so selectRows is the shared JS gather.
 */
import { nchwToNhwc } from '../features/pixels.js';
import { selectStateRows } from '../model/state.js';
import type { AsyncDecoderModel, DecoderState, ModelConfig, StepOutput } from '../model/types.js';
import { DECODER_INIT_IO, DECODER_STEP_IO } from './io-names.js';

/** What we use of an onnxruntime tensor. */
export interface OrtTensorLike {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: unknown;
}

export interface OrtSessionLike {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, OrtTensorLike>, fetches?: readonly string[]): Promise<Record<string, OrtTensorLike>>;
  release(): Promise<void>;
}

/** What we use of `import * as ort from 'onnxruntime-node' | 'onnxruntime-web'`. */
export interface OrtNamespace {
  InferenceSession: { create(model: Uint8Array, options?: object): Promise<OrtSessionLike> };
  Tensor: new (type: 'float32' | 'int32', data: Float32Array | Int32Array, dims: readonly number[]) => OrtTensorLike;
}

/** Creates a session, naming the graph when onnxruntime refuses it. */
export async function createSession(ort: OrtNamespace, bytes: Uint8Array, what: string, options: object): Promise<OrtSessionLike> {
  try {
    return await ort.InferenceSession.create(bytes, options);
  } catch (e) {
    throw new Error(`onnxruntime could not load ${what}: ${String((e as Error).message ?? e).split('\n')[0]}`);
  }
}

function expectNames(session: OrtSessionLike, what: string, inputs: string[], outputs: string[]): void {
  const missing = [...inputs.filter((n) => !session.inputNames.includes(n)), ...outputs.filter((n) => !session.outputNames.includes(n))];
  if (missing.length > 0) {
    throw new Error(`${what} has no tensor ${missing.join(', ')} (inputs ${session.inputNames.join(', ')}; outputs ${session.outputNames.join(', ')}): ` +
      'it was not written by `sat export`, or by another version. Export the bundle again.');
  }
}

function floatOutput(out: Record<string, OrtTensorLike>, name: string, length: number, what: string): Float32Array {
  const t = out[name];
  const data = t?.data;
  if (!(data instanceof Float32Array) || data.length !== length) {
    throw new Error(`${what}: output "${name}" has ${t ? `type ${t.type} and shape [${t.dims.join(', ')}]` : 'no value'}, expected ${length} float32 values.`);
  }
  return data;
}

export class OnnxDecoderModel implements AsyncDecoderModel {
  private constructor(readonly config: ModelConfig, private readonly ort: OrtNamespace,
                      private readonly init: OrtSessionLike, private readonly stepSession: OrtSessionLike) {}

  /** Sessions for decoder-init.onnx and decoder-step.onnx (bytes), with onnxruntime session options. */
  static async create(ort: OrtNamespace, config: ModelConfig, graphs: { init: Uint8Array; step: Uint8Array }, options: object = {}): Promise<OnnxDecoderModel> {
    const init = await createSession(ort, graphs.init, 'decoder-init.onnx', options);
    const step = await createSession(ort, graphs.step, 'decoder-step.onnx', options);
    expectNames(init, 'decoder-init.onnx', Object.values(DECODER_INIT_IO.inputs), Object.values(DECODER_INIT_IO.outputs));
    expectNames(step, 'decoder-step.onnx', Object.values(DECODER_STEP_IO.inputs), Object.values(DECODER_STEP_IO.outputs));
    return new OnnxDecoderModel(config, ort, init, step);
  }

  async encode(features: Float32Array, n: number): Promise<DecoderState> {
    const { locations: L, channels: C, embedDim: E, attentionUnits: A, units: U } = this.config;
    if (features.length !== n * L * C) throw new Error(`encode: features hold ${features.length} floats, expected ${n} x ${L} x ${C}`);
    const io = DECODER_INIT_IO;
    const out = await this.init.run({ [io.inputs.features]: new this.ort.Tensor('float32', features, [n, L, C]) });
    return {
      size: n,
      encoded: floatOutput(out, io.outputs.encoded, n * L * E, 'decoder-init.onnx'),
      projected: floatOutput(out, io.outputs.projected, n * L * A, 'decoder-init.onnx'),
      hidden: floatOutput(out, io.outputs.hidden, n * U, 'decoder-init.onnx'),
    };
  }

  async step(state: DecoderState, tokens: Int32Array): Promise<StepOutput> {
    const { locations: L, embedDim: E, attentionUnits: A, units: U, vocabSize: V } = this.config;
    const n = state.size;
    if (tokens.length !== n) throw new Error(`step: ${tokens.length} tokens for ${n} rows`);
    const io = DECODER_STEP_IO;
    const T = this.ort.Tensor;
    const out = await this.stepSession.run({
      [io.inputs.token]: new T('int32', tokens, [n]),
      [io.inputs.hidden]: new T('float32', state.hidden, [n, U]),
      [io.inputs.encoded]: new T('float32', state.encoded, [n, L, E]),
      [io.inputs.projected]: new T('float32', state.projected, [n, L, A]),
    });
    return {
      logits: floatOutput(out, io.outputs.logits, n * V, 'decoder-step.onnx'),
      attention: floatOutput(out, io.outputs.attention, n * L, 'decoder-step.onnx'),
      hidden: floatOutput(out, io.outputs.hidden, n * U, 'decoder-step.onnx'),
    };
  }

  selectRows(state: DecoderState, rows: Int32Array, hidden?: Float32Array): DecoderState {
    return selectStateRows(this.config, state, rows, hidden);
  }

  /** Starts releasing both sessions; `release()` waits for it. */
  dispose(): void {
    void this.release();
  }

  async release(): Promise<void> {
    await Promise.all([this.init.release(), this.stepSession.release()]);
  }
}

/** The encoder graph's facts that running it needs (from the manifest or the EncoderSpec). */
export interface ImageEncoderSpec {
  inputName: string;
  outputName: string;
  inputSize: number;
  inputLayout: 'nhwc' | 'nchw';
  outputLayout: 'nhwc' | 'nchw';
  locations: number;
  channels: number;
}

/** encoder.onnx on onnxruntime: scaled image batches -> features [n, L, C]. */
export class OnnxImageEncoder {
  private constructor(readonly spec: ImageEncoderSpec, private readonly ort: OrtNamespace, private readonly session: OrtSessionLike) {}

  static async create(ort: OrtNamespace, spec: ImageEncoderSpec, bytes: Uint8Array, options: object = {}): Promise<OnnxImageEncoder> {
    const session = await createSession(ort, bytes, 'encoder.onnx', options);
    expectNames(session, 'encoder.onnx', [spec.inputName], [spec.outputName]);
    return new OnnxImageEncoder(spec, ort, session);
  }

  /** `n` images in `input` (float32, scaled, in spec.inputLayout) -> features [n, L, C]. */
  async run(input: Float32Array, n: number): Promise<Float32Array> {
    const { inputSize: s, inputLayout, outputLayout, locations: L, channels: C } = this.spec;
    const dims = inputLayout === 'nhwc' ? [n, s, s, 3] : [n, 3, s, s];
    const out = await this.session.run({ [this.spec.inputName]: new this.ort.Tensor('float32', input.subarray(0, n * 3 * s * s), dims) });
    const data = floatOutput(out, this.spec.outputName, n * L * C, 'encoder.onnx');
    return outputLayout === 'nhwc' ? data : nchwToNhwc(data, n, C, L);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
