/**
 * Runs an encoder's ONNX graph with onnxruntime-node (CPU execution provider) and returns features in the
 * decoder's layout: [n, locations, channels] row-major, whatever the graph's own output layout.
 */
import * as ort from 'onnxruntime-node';
import type { EncoderModel, EncoderSpec } from '../encoders/types.js';
import { UserError } from '../util/errors.js';
import { nchwToNhwc } from './pixels.js';

export { nchwToNhwc } from './pixels.js';

export interface RunnerOptions {
  /** onnxruntime intra-op threads (the convolution thread pool). Default 2: this project's dev machines. */
  threads?: number;
  /**
   * Let idle pool threads spin-wait for the next op instead of sleeping. onnxruntime's default; it only
   * pays on an otherwise idle machine and burns CPU that other processes need on a shared one. Default off:
   * on the busy 2-core dev machine InceptionV3 took 205 CPU ms (350 ms wall) per image at batch 8 without
   * spinning and 299 CPU ms (469 ms wall) with it.
   */
  spin?: boolean;
}

export class EncoderRunner {
  /** Largest batch the graph accepts: 1 when its input has a fixed batch dimension of 1. */
  readonly maxBatch: number;

  private constructor(readonly spec: EncoderSpec, private readonly session: ort.InferenceSession) {
    const meta = session.inputMetadata.find((m) => m.name === spec.inputName);
    const dim0 = meta && meta.isTensor ? meta.shape[0] : undefined;
    this.maxBatch = typeof dim0 === 'number' && dim0 > 0 ? dim0 : Number.MAX_SAFE_INTEGER;
  }

  static async create(model: EncoderModel, opts: RunnerOptions = {}): Promise<EncoderRunner> {
    const { spec } = model;
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(model.onnx, {
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
        intraOpNumThreads: opts.threads ?? 2,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        extra: { session: { intra_op: { allow_spinning: opts.spin ? '1' : '0' }, inter_op: { allow_spinning: opts.spin ? '1' : '0' } } },
      });
    } catch (e) {
      throw new UserError(`onnxruntime could not load the graph of encoder "${spec.id}": ${(e as Error).message.split('\n')[0]}`);
    }
    if (!session.inputNames.includes(spec.inputName)) {
      throw new UserError(`Encoder "${spec.id}": the graph has no input "${spec.inputName}" (it has ${session.inputNames.join(', ')}).`);
    }
    if (!session.outputNames.includes(spec.outputName)) {
      throw new UserError(`Encoder "${spec.id}": the graph has no output "${spec.outputName}" (it has ${session.outputNames.join(', ')}).`);
    }
    return new EncoderRunner(spec, session);
  }

  /** Shape of the graph's input for a batch of `n` images. */
  inputDims(n: number): number[] {
    const s = this.spec.inputSize;
    return this.spec.inputLayout === 'nhwc' ? [n, s, s, 3] : [n, 3, s, s];
  }

  /**
   * Run `n` images held in `input` (float32, already scaled, in spec.inputLayout; only the first
   * n * 3 * size^2 values are used). Resolves to features [n, locations, channels].
   */
  async run(input: Float32Array, n: number): Promise<Float32Array> {
    const { spec } = this;
    const s = spec.inputSize;
    const tensor = new ort.Tensor('float32', input.subarray(0, n * 3 * s * s), this.inputDims(n));
    const result = await this.session.run({ [spec.inputName]: tensor }, [spec.outputName]);
    const out = result[spec.outputName] as ort.Tensor;
    const dims = out.dims;
    const data = out.data as Float32Array;
    const perImage = spec.locations * spec.channels;
    if (out.type !== 'float32' || dims[0] !== n || data.length !== n * perImage) {
      throw new UserError(`Encoder "${spec.id}": output "${spec.outputName}" has type ${out.type} and shape [${dims.join(', ')}], ` +
        `expected float32 with ${n} x ${spec.locations} locations x ${spec.channels} channels.`);
    }
    if (spec.outputLayout === 'nhwc') {
      if (dims[dims.length - 1] !== spec.channels) throw layoutError(spec, dims);
      return data;
    }
    // NCHW [n, c, h, w] (or [n, c, locations]) -> [n, locations, c].
    if (dims[1] !== spec.channels) throw layoutError(spec, dims);
    return nchwToNhwc(data, n, spec.channels, spec.locations);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function layoutError(spec: EncoderSpec, dims: readonly number[]): UserError {
  return new UserError(`Encoder "${spec.id}": output shape [${dims.join(', ')}] does not match its declared ${spec.outputLayout.toUpperCase()} ` +
    `layout with ${spec.channels} channels. Check the encoder's output layout option.`);
}
