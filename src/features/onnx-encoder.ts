/**
 * An image encoder's ONNX graph on an onnxruntime given as its namespace (onnxruntime-node for `sat features`,
 * the native captioner and bundles in Node; onnxruntime-web in browsers). Pure: no Node built-ins.
 *
 *   RGB uint8 HWC images (spec.inputSize square) -> float32 batch (spec.scaling, spec.inputLayout)
 *   -> the graph -> features [n, locations, channels] row-major, whatever the graph's own output layout
 */
import {
  createSession,
  expectNames,
  guardSessions,
  OnnxGraphError,
  type OrtNamespace,
  type OrtSessionLike,
} from '../encoders/onnx/runtime.js';
import type { EncoderSpec } from '../encoders/types.js';
import { nchwToNhwc, writeImageToBatch } from './pixels.js';

/** Images per encoder run unless the caller says otherwise. */
export const DEFAULT_ENCODER_BATCH = 16;

export class OnnxImageEncoder {
  /** Largest batch the graph accepts: its input's fixed batch dimension, else unbounded. */
  readonly maxBatch: number;

  private constructor(
    readonly spec: EncoderSpec,
    private readonly ort: OrtNamespace,
    private readonly session: OrtSessionLike,
  ) {
    const dim0 = session.inputMetadata?.find((m) => m.name === spec.inputName)?.shape?.[0];
    this.maxBatch = typeof dim0 === 'number' && dim0 > 0 ? dim0 : Number.MAX_SAFE_INTEGER;
  }

  /** A session for the encoder graph `bytes`, checked to have the spec's input and output (else released and refused). */
  static create(
    ort: OrtNamespace,
    spec: EncoderSpec,
    bytes: Uint8Array,
    options: object = {},
  ): Promise<OnnxImageEncoder> {
    const what = `the graph of encoder "${spec.id}"`;
    return guardSessions(async (keep) => {
      const session = keep(await createSession(ort, bytes, what, options));
      expectNames(
        session,
        what,
        [spec.inputName],
        [spec.outputName],
        'pass the input and output names of the graph (--encoder-output), or export the bundle again.',
      );
      return new OnnxImageEncoder(spec, ort, session);
    });
  }

  /** Shape of the graph's input for a batch of `n` images. */
  inputDims(n: number): number[] {
    const s = this.spec.inputSize;
    return this.spec.inputLayout === 'nhwc' ? [n, s, s, 3] : [n, 3, s, s];
  }

  /**
   * Runs `n` images held in `input` (float32, already scaled, in spec.inputLayout; only the first
   * n * 3 * size^2 values are used). Resolves to features [n, locations, channels].
   */
  async run(input: Float32Array, n: number): Promise<Float32Array> {
    const { spec } = this;
    const s = spec.inputSize;
    const tensor = new this.ort.Tensor('float32', input.subarray(0, n * 3 * s * s), this.inputDims(n));
    const result = await this.session.run({ [spec.inputName]: tensor }, [spec.outputName]);
    const out = result[spec.outputName];
    const dims = out?.dims ?? [];
    const data = out?.data;
    if (!(data instanceof Float32Array) || dims[0] !== n || data.length !== n * spec.locations * spec.channels) {
      throw new OnnxGraphError(
        `Encoder "${spec.id}": output "${spec.outputName}" has type ${out?.type} and shape [${dims.join(', ')}], ` +
          `expected float32 with ${n} x ${spec.locations} locations x ${spec.channels} channels.`,
      );
    }
    // NHWC [n, h, w, c] is already [n, locations, c]; NCHW [n, c, h, w] (or [n, c, locations]) is transposed.
    const channelAxis = spec.outputLayout === 'nhwc' ? dims.length - 1 : 1;
    if (dims[channelAxis] !== spec.channels) {
      throw new OnnxGraphError(
        `Encoder "${spec.id}": output shape [${dims.join(', ')}] does not match its declared ${spec.outputLayout.toUpperCase()} ` +
          `layout with ${spec.channels} channels. Check the encoder's output layout option.`,
      );
    }
    return spec.outputLayout === 'nhwc' ? data : nchwToNhwc(data, n, spec.channels, spec.locations);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Features [n, L, C] of RGB uint8 HWC images (spec.inputSize square each): scaled into float32 batches of at
 * most `batch` images (and the graph's maxBatch), run one batch after another.
 */
export async function encodeImages(
  encoder: OnnxImageEncoder,
  images: readonly Uint8Array[],
  batch = DEFAULT_ENCODER_BATCH,
): Promise<Float32Array> {
  const { inputSize: size, scaling, inputLayout: layout, locations: L, channels: C } = encoder.spec;
  const perRun = Math.max(1, Math.min(batch, encoder.maxBatch, images.length));
  const out = new Float32Array(images.length * L * C);
  const input = new Float32Array(perRun * 3 * size * size);
  for (let first = 0; first < images.length; first += perRun) {
    const count = Math.min(perRun, images.length - first);
    for (let i = 0; i < count; i++) writeImageToBatch(images[first + i], input, i, { size, scaling, layout });
    out.set(await encoder.run(input, count), first * L * C);
  }
  return out;
}
