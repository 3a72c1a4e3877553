/**
 * The inverse of src/export/graphs.ts: a bundle's decoder graphs -> the model's parameters by checkpoint name
 * (PARAMETER_ORDER), in float32. fp16 and int8 weights are dequantised first (expandStoredWeights), so an int8
 * bundle gives back its int8 values times their scales; fp32 bundles give back the trained values exactly.
 *
 * Parameters a bundle does not hold (because its graphs never read them) are left out: init_state.* with
 * initState 'zeros', gru.recurrent_kernel with gruState 'reset' (its recurrent biases are there as gh_bias_*).
 */
import type { ParameterName } from '../model/params.js';
import type { Bundle } from './bundle-backend.js';
import { expandStoredWeights, floatInitializers } from './onnx-rewrite.js';

export interface ParameterTensor {
  shape: number[];
  data: Float32Array;
}

/** Graph initializer -> parameter, for parameters stored whole in one initializer. */
const INIT_GRAPH: Partial<Record<string, ParameterName>> = {
  projection_kernel: 'projection.kernel',
  projection_bias: 'projection.bias',
  w1_kernel: 'attention.W1.kernel',
  w1_bias: 'attention.W1.bias',
  init_kernel: 'init_state.kernel',
  init_bias: 'init_state.bias',
};
const STEP_GRAPH: Partial<Record<string, ParameterName>> = {
  w2_kernel: 'attention.W2.kernel',
  w2_bias: 'attention.W2.bias',
  v_kernel: 'attention.V.kernel',
  v_bias: 'attention.V.bias',
  embedding: 'embedding.embeddings',
  gru_kernel: 'gru.kernel',
  gru_recurrent: 'gru.recurrent_kernel',
  fc1_kernel: 'fc1.kernel',
  fc1_bias: 'fc1.bias',
  fc2_kernel: 'fc2.kernel',
  fc2_bias: 'fc2.bias',
};

/** The decoder parameters a bundle holds, in float32, by checkpoint name; throws (naming the bundle) on a damaged graph. */
export function bundleDecoderParameters(bundle: Bundle, where: string): Map<ParameterName, ParameterTensor> {
  const { manifest: m } = bundle;
  const graph = (file: string) => {
    const bytes = bundle.files.get(file);
    if (!bytes) throw new Error(`${where}: the bundle has no ${file}`);
    return floatInitializers(expandStoredWeights(bytes));
  };
  const out = new Map<ParameterName, ParameterTensor>();
  const take = (
    inits: Map<string, { dims: number[]; data: Float32Array }>,
    names: Partial<Record<string, ParameterName>>,
  ) => {
    for (const [init, param] of Object.entries(names)) {
      const t = inits.get(init);
      if (t) out.set(param!, { shape: t.dims, data: t.data });
    }
  };
  const init = graph(m.decoder.init.file),
    step = graph(m.decoder.step.file);
  take(init, INIT_GRAPH);
  take(step, STEP_GRAPH);
  // gru.bias [2, 3U]: the input bias, then the recurrent bias (whole, or per gate with gruState 'reset')
  const U = m.model.units;
  const input = step.get('gru_input_bias');
  const recurrent =
    step.get('gru_recurrent_bias')?.data ?? concatGates(['z', 'r', 'n'].map((g) => step.get(`gh_bias_${g}`)?.data));
  if (input && recurrent) {
    const bias = new Float32Array(6 * U);
    bias.set(input.data, 0);
    bias.set(recurrent, 3 * U);
    out.set('gru.bias', { shape: [2, 3 * U], data: bias });
  }
  return out;
}

function concatGates(parts: (Float32Array | undefined)[]): Float32Array | undefined {
  if (parts.some((p) => !p)) return undefined;
  const out = new Float32Array(parts.reduce((n, p) => n + p!.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p!, at);
    at += p!.length;
  }
  return out;
}
