/**
 * Weight formats of an exported bundle. They only change how weights are stored (download size); every
 * graph computes in float32. Each stored weight is turned back into float32 by a node in the graph, and the
 * loaders (bundle-backend.ts) replace those nodes by the float32 initializers they compute when a bundle is
 * loaded (expandStoredWeights in onnx-rewrite.ts): onnxruntime does not fold them itself; onnxruntime-web
 * recomputed them at every decoder step (several times slower), and onnxruntime-node's CPU provider fused
 * DequantizeLinear + MatMul into an integer matmul that also quantises the activations (logits off by 1e-2).
 * Another ONNX runtime can run the stored graphs as they are.
 *
 *   fp32  float32 initializers, as trained
 *   fp16  float16 initializers + Cast(to float32)
 *   int8  the big matrices per output channel: q = round(w / s), s = max|w| / 127 over the channel,
 *         as int8 + DequantizeLinear(q, s, 0) (weight-only quantisation); small tensors as float16 + Cast
 *
 * Biases stay float32 in every format (they are a few KB and the attention/GRU pre-activations need them exact).
 */
import { OnnxGraph } from '../encoders/onnx/graph.js';
import { encodeHalf } from '../features/fp16.js';

export const BUNDLE_DTYPES = ['fp32', 'fp16', 'int8'] as const;
export type BundleDtype = (typeof BUNDLE_DTYPES)[number];

/** Matrices with at least this many values are quantised in int8 bundles; smaller ones are stored as float16. */
export const INT8_MIN_ELEMENTS = 16384;

/**
 * Adds weight `data` (row-major, `dims`) to `g` in `dtype` and returns the name of its float32 value.
 * `channelAxis` is the output-channel axis of the matrix for int8 (1 for a [in, out] kernel, 0 for an embedding table).
 */
export function addWeight(
  g: OnnxGraph,
  prefix: string,
  data: Float32Array,
  dims: number[],
  dtype: BundleDtype,
  channelAxis = 1,
): string {
  if (dtype === 'fp32') return g.addFloat(prefix, data, dims);
  if (dtype === 'int8' && dims.length === 2 && data.length >= INT8_MIN_ELEMENTS) {
    const { q, scale } = quantizePerChannel(data, dims[0], dims[1], channelAxis);
    const channels = dims[channelAxis];
    const qName = g.addRaw(`${prefix}_int8`, 'int8', q, dims);
    const sName = g.addFloat(`${prefix}_scale`, scale, [channels]);
    const zName = g.addRaw(`${prefix}_zero`, 'int8', new Int8Array(channels), [channels]);
    return g.addNode('DequantizeLinear', [qName, sName, zName], prefix, { axis: channelAxis });
  }
  const half = g.addRaw(`${prefix}_fp16`, 'float16', encodeHalf(data), dims);
  return g.addNode('Cast', [half], prefix, { to: 1 });
}

/**
 * Symmetric int8 per channel of a [rows, cols] matrix along `axis` (1: one scale per column, 0: per row).
 * A channel of zeros gets scale 1 (any scale reproduces it exactly).
 */
export function quantizePerChannel(
  w: Float32Array,
  rows: number,
  cols: number,
  axis: number,
): { q: Int8Array; scale: Float32Array } {
  const channels = axis === 1 ? cols : rows;
  const max = new Float32Array(channels);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const c = axis === 1 ? j : i;
      const a = Math.abs(w[i * cols + j]);
      if (a > max[c]) max[c] = a;
    }
  }
  const scale = Float32Array.from(max, (m) => (m > 0 ? m / 127 : 1));
  const q = new Int8Array(w.length);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const v = Math.round(w[i * cols + j] / scale[axis === 1 ? j : i]);
      q[i * cols + j] = Math.max(-127, Math.min(127, v));
    }
  }
  return { q, scale };
}
