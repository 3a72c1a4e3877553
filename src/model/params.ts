/**
 * Parameter layout and Keras-style initialisation. All parameters live in one Float32Array arena
 * (so Adam, clipping and checkpoints are single passes); each name gets a live view into it.
 *
 * The parameter table is declared once, in native/model.h (param_shape); the addon reports it
 * (NativeBinding.parameterTable). parameterShapes below is its TypeScript reading, for code that runs without the
 * addon (checkpoints, export); test/model-parameter-table.test.ts fails when the two (or the PyTorch twin) drift,
 * and every NativeCaptionModel checks it against the addon it loads (checkAddonParameterTable).
 */
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import type { ParameterTableRow } from './binding.js';
import type { ModelConfig } from './types.js';

/**
 * Name (also the checkpoint tensor name) -> shape of every parameter, in the addon's order. C channels, E embedding,
 * U GRU units, A attention units, V vocabulary. Kernels are [in, out].
 */
export function parameterShapes(
  c: Pick<ModelConfig, 'channels' | 'embedDim' | 'units' | 'attentionUnits' | 'vocabSize'>,
) {
  const { channels: C, embedDim: E, units: U, attentionUnits: A, vocabSize: V } = c;
  return {
    'projection.kernel': [C, E], // encoded = relu(features · kernel + bias): the Dense+ReLU projection of CNN features
    'projection.bias': [E],
    'attention.W1.kernel': [E, A],
    'attention.W1.bias': [A],
    'attention.W2.kernel': [U, A],
    'attention.W2.bias': [A],
    'attention.V.kernel': [A, 1],
    'attention.V.bias': [1],
    'embedding.embeddings': [V, E],
    'gru.kernel': [2 * E, 3 * U], // rows 0..E-1 context, E..2E-1 embedding; gate blocks z, r, n
    'gru.recurrent_kernel': [U, 3 * U],
    'gru.bias': [2, 3 * U], // input bias, recurrent bias (Keras reset_after=True)
    'fc1.kernel': [U, U],
    'fc1.bias': [U],
    'fc2.kernel': [U, V],
    'fc2.bias': [V],
    'init_state.kernel': [E, U], // H[0] = tanh(mean_l(encoded) · kernel + bias) with initState 'mean'
    'init_state.bias': [U],
  } satisfies Record<string, number[]>;
}

export type ParameterName = keyof ReturnType<typeof parameterShapes>;

/** Parameter names in the order the addon takes its parameter arrays (native/model.h ParamId). */
export const PARAMETER_ORDER: readonly ParameterName[] = Object.freeze(
  Object.keys(
    parameterShapes({ channels: 1, embedDim: 1, units: 1, attentionUnits: 1, vocabSize: 1 }),
  ) as ParameterName[],
);

/** Earlier names of parameters, as checkpoints written before the rename hold them: old name -> current name. */
export const RENAMED_PARAMETERS: Readonly<Record<string, ParameterName>> = {
  'encoder.kernel': 'projection.kernel',
  'encoder.bias': 'projection.bias',
};

/**
 * Where `table` (the addon's parameter table for config's sizes) differs from parameterShapes: one line per
 * difference (name or shape at a position, or the count); empty when they agree.
 */
export function parameterTableDifferences(
  table: readonly ParameterTableRow[],
  config: Parameters<typeof parameterShapes>[0],
): string[] {
  const shapes: Record<string, number[]> = parameterShapes(config);
  const out: string[] = [];
  if (table.length !== PARAMETER_ORDER.length)
    out.push(`${table.length} parameters, TypeScript has ${PARAMETER_ORDER.length}`);
  PARAMETER_ORDER.forEach((name, i) => {
    const row = table[i];
    if (!row) return;
    if (row.name !== name) out.push(`#${i} is ${row.name}, TypeScript has ${name}`);
    else if (row.shape.join(',') !== shapes[name].join(','))
      out.push(`${name} is [${row.shape}], TypeScript has [${shapes[name]}]`);
  });
  return out;
}

/**
 * Refuses an addon whose parameter table (native/model.h) differs from parameterShapes: a build of other sources
 * than this package's, whose buffers the model would fill in the wrong layout.
 */
export function checkAddonParameterTable(table: readonly ParameterTableRow[], config: ModelConfig): void {
  const differences = parameterTableDifferences(table, config);
  if (differences.length > 0) {
    throw new UserError(
      `The native addon's parameter table differs from this package's (${differences.join('; ')}). ` +
        'The addon was built from other sources: rebuild it with `npx node-gyp rebuild` in the package directory.',
    );
  }
}

export interface Arena {
  data: Float32Array; // every parameter, back to back in PARAMETER_ORDER
  views: Float32Array[]; // one view per parameter, in PARAMETER_ORDER
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
  const n = Math.min(rows, cols),
    len = Math.max(rows, cols);
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
    for (let i = 0; i < q.length; i++) out[i] = q[i]; // row i = vector i
  } else {
    for (let i = 0; i < n; i++) for (let k = 0; k < len; k++) out[k * cols + i] = q[i * len + k];
  }
}
