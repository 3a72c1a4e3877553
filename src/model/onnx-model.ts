/**
 * The captioning model as the exported decoder graphs (decoder-init.onnx, decoder-step.onnx; see
 * src/export/graphs.ts) on an onnxruntime given as its namespace (src/encoders/onnx/runtime.ts): onnxruntime-node
 * in Node, onnxruntime-web in browsers. No Node built-ins here.
 *
 * OnnxDecoderModel is one more AsyncDecoderModel: src/decode's searches drive it exactly as they drive the
 * native model. Its DecoderState is plain arrays (fed to every step), so selectRows is the shared JS gather.
 */
import {
  createSession,
  expectNames,
  floatOutput,
  guardSessions,
  releaseAll,
  type OrtNamespace,
  type OrtSessionLike,
} from '../encoders/onnx/runtime.js';
import { DECODER_INIT_IO, DECODER_STEP_IO } from './onnx-io.js';
import { selectStateRows } from './state.js';
import type { AsyncDecoderModel, DecoderState, ModelConfig, StepOutput } from './types.js';

const NOT_OURS = 'it was not written by `sat export`, or by another version. Export the bundle again.';

export class OnnxDecoderModel implements AsyncDecoderModel {
  private constructor(
    readonly config: ModelConfig,
    private readonly ort: OrtNamespace,
    private readonly init: OrtSessionLike,
    private readonly stepSession: OrtSessionLike,
  ) {}

  /**
   * Sessions for decoder-init.onnx and decoder-step.onnx (bytes), with onnxruntime session options. If either
   * graph is refused, the session already made is released before the error is passed on.
   */
  static create(
    ort: OrtNamespace,
    config: ModelConfig,
    graphs: { init: Uint8Array; step: Uint8Array },
    options: object = {},
  ): Promise<OnnxDecoderModel> {
    return guardSessions(async (keep) => {
      const init = keep(await createSession(ort, graphs.init, 'decoder-init.onnx', options));
      const step = keep(await createSession(ort, graphs.step, 'decoder-step.onnx', options));
      expectNames(
        init,
        'decoder-init.onnx',
        Object.values(DECODER_INIT_IO.inputs),
        Object.values(DECODER_INIT_IO.outputs),
        NOT_OURS,
      );
      expectNames(
        step,
        'decoder-step.onnx',
        Object.values(DECODER_STEP_IO.inputs),
        Object.values(DECODER_STEP_IO.outputs),
        NOT_OURS,
      );
      return new OnnxDecoderModel(config, ort, init, step);
    });
  }

  async encode(features: Float32Array, n: number): Promise<DecoderState> {
    const { locations: L, channels: C, embedDim: E, attentionUnits: A, units: U } = this.config;
    if (features.length !== n * L * C)
      throw new Error(`encode: features hold ${features.length} floats, expected ${n} x ${L} x ${C}`);
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

  /** Releases both sessions (both are released even if one fails; the first failure is thrown). */
  release(): Promise<void> {
    return releaseAll([this.init, this.stepSession]);
  }
}
