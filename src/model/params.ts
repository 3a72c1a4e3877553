/**
 * Parameter layout and Keras-style initialisation. All parameters live in one Float32Array arena
 * (so Adam, clipping and checkpoints are single passes); each name gets a live view into it.
 */
import { Rng } from '../util/rng.js';
import { PARAMETER_ORDER, type ParameterName } from './binding.js';
import type { ModelConfig } from './types.js';

export function parameterShapes(c: ModelConfig): Record<ParameterName, number[]> {
  const { channels: C, embedDim: E, units: U, attentionUnits: A, vocabSize: V } = c;
  return {
    'projection.kernel': [C, E],
    'projection.bias': [E],
    'attention.W1.kernel': [E, A],
    'attention.W1.bias': [A],
    'attention.W2.kernel': [U, A],
    'attention.W2.bias': [A],
    'attention.V.kernel': [A, 1],
    'attention.V.bias': [1],
    'embedding.embeddings': [V, E],
    'gru.kernel': [2 * E, 3 * U],
    'gru.recurrent_kernel': [U, 3 * U],
    'gru.bias': [2, 3 * U],
    'fc1.kernel': [U, U],
    'fc1.bias': [U],
    'fc2.kernel': [U, V],
    'fc2.bias': [V],
    'init_state.kernel': [E, U],
    'init_state.bias': [U],
  };
}

export interface Arena {
  data: Float32Array;                        // every parameter, back to back in PARAMETER_ORDER
  views: Float32Array[];                     // one view per parameter, in PARAMETER_ORDER
  byName: Map<ParameterName, { shape: number[]; data: Float32Array }>;
}

export function allocateArena(c: ModelConfig): Arena {
  const shapes = parameterShapes(c);
  const sizes = PARAMETER_ORDER.map((n) => shapes[n].reduce((a, b) => a * b, 1));
  const data = new Float32Array(sizes.reduce((a, b) => a + b, 0));
  const views: Float32Array[] = [];
  const byName = new Map<ParameterName, { shape: number[]; data: Float32Array }>();
  let offset = 0;
  PARAMETER_ORDER.forEach((name, i) => {
    const view = data.subarray(offset, offset + sizes[i]);
    views.push(view);
    byName.set(name, { shape: shapes[name], data: view });
    offset += sizes[i];
  });
  return { data, views, byName };
}

/**
 * Keras defaults: glorot_uniform kernels, orthogonal GRU recurrent kernel, zero biases,
 * Embedding uniform(-0.05, 0.05).
 */
export function initialiseParameters(arena: Arena, seed: number): void {
  const rng = new Rng(seed);
  for (const [name, { shape, data }] of arena.byName) {
    if (name === 'embedding.embeddings') {
      for (let i = 0; i < data.length; i++) data[i] = (rng.next() * 2 - 1) * 0.05;
    } else if (name === 'gru.recurrent_kernel') {
      orthogonal(data, shape[0], shape[1], rng);
    } else if (name.endsWith('kernel')) {
      const limit = Math.sqrt(6 / (shape[0] + shape[1]));
      for (let i = 0; i < data.length; i++) data[i] = (rng.next() * 2 - 1) * limit;
    } else {
      data.fill(0);
    }
  }
}

/**
 * Keras Orthogonal for a [rows, cols] kernel with rows <= cols: QR of a [cols, rows] normal matrix,
 * transposed, i.e. `rows` orthonormal vectors of length `cols` (Gram-Schmidt gives QR's positive-
 * diagonal R convention directly).
 */
function orthogonal(out: Float32Array, rows: number, cols: number, rng: Rng): void {
  const n = Math.min(rows, cols), len = Math.max(rows, cols);
  const q = new Float64Array(n * len); // n vectors of length len
  for (let i = 0; i < q.length; i++) q[i] = rng.normal();
  for (let i = 0; i < n; i++) {
    const vi = q.subarray(i * len, (i + 1) * len);
    for (let j = 0; j < i; j++) {
      const vj = q.subarray(j * len, (j + 1) * len);
      let dot = 0;
      for (let k = 0; k < len; k++) dot += vi[k] * vj[k];
      for (let k = 0; k < len; k++) vi[k] -= dot * vj[k];
    }
    let norm = 0;
    for (let k = 0; k < len; k++) norm += vi[k] * vi[k];
    norm = Math.sqrt(norm);
    for (let k = 0; k < len; k++) vi[k] /= norm;
  }
  if (rows <= cols) {
    for (let i = 0; i < q.length; i++) out[i] = q[i];            // row i = vector i
  } else {
    for (let i = 0; i < n; i++) for (let k = 0; k < len; k++) out[k * cols + i] = q[i * len + k];
  }
}
