/**
 * The decoder of a trained checkpoint as two ONNX graphs, with exactly the math of native/infer.cc
 * (Keras layout: kernels [in, out]; the GRU is Keras' reset_after=True cell, gate blocks z, r, n).
 * Shapes: n rows (images, or images x beams), L locations, C channels, E embedding, U GRU units,
 * A attention units, V vocabulary.
 *
 * decoder-init.onnx   features [n, L, C] (float32)
 *                     -> encoded   [n, L, E] = relu(features · Wp + bp)       (the Dense+ReLU projection)
 *                        projected [n, L, A] = encoded · W1 + b1              (the attention's W1 term, once per image)
 *                        hidden    [n, U]    = H[0]: zeros, or tanh(mean_l(encoded) · Wi + bi) with initState 'mean'
 *
 * decoder-step.onnx   token [n] (int32), hidden [n, U], encoded [n, L, E], projected [n, L, A]
 *                     -> logits    [n, V]
 *                        attention [n, L] = softmax_l(v · tanh(projected + hidden · W2 + b2) + bv)
 *                        hidden_out [n, U] = GRU(concat(context, embedding[token]), h_prev)
 *                     where context = sum_l attention · encoded, h_prev = hidden ('carry') or zeros ('reset'),
 *                     and logits = (hidden_out · Wfc1 + bfc1) · Wfc2 + bfc2.
 *
 * Parameters are read by their checkpoint names (PARAMETER_ORDER in src/model/params.ts).
 */
import { OnnxGraph } from '../encoders/onnx/graph.js';
import { PARAMETER_ORDER, type ParameterName } from '../model/params.js';
import { DECODER_INIT_IO, DECODER_STEP_IO } from '../model/onnx-io.js';
import type { ModelConfig } from '../model/types.js';
import { addWeight, type BundleDtype } from './weights.js';

/** The model's parameters by checkpoint name. */
export type DecoderParameters = Readonly<Record<ParameterName, Float32Array>>;

/** Every parameter of `named` (e.g. model.parameters()), as copies, so the model can be disposed after. */
export function parametersByName(named: Map<string, { data: Float32Array }>): DecoderParameters {
  return Object.fromEntries(
    PARAMETER_ORDER.map((name) => {
      const t = named.get(name);
      if (!t) throw new Error(`model has no parameter "${name}"`);
      return [name, t.data.slice()];
    }),
  ) as DecoderParameters;
}

export function decoderInitGraph(config: ModelConfig, p: DecoderParameters, dtype: BundleDtype): Uint8Array {
  const { locations: L, channels: C, embedDim: E, attentionUnits: A, units: U } = config;
  const g = new OnnxGraph('decoder_init');
  const io = DECODER_INIT_IO;
  const features = g.addInput(io.inputs.features, ['n', L, C]);
  const wp = addWeight(g, 'projection_kernel', p['projection.kernel'], [C, E], dtype);
  const pre = g.addNode(
    'Add',
    [g.addNode('MatMul', [features, wp], 'projection_mm'), g.addFloat('projection_bias', p['projection.bias'], [E])],
    'projection_pre',
  );
  const encoded = g.addNode('Relu', [pre], [io.outputs.encoded]);
  const w1 = addWeight(g, 'w1_kernel', p['attention.W1.kernel'], [E, A], dtype);
  g.addNode(
    'Add',
    [g.addNode('MatMul', [encoded, w1], 'w1_mm'), g.addFloat('w1_bias', p['attention.W1.bias'], [A])],
    [io.outputs.projected],
  );
  if (config.initState === 'mean') {
    const mean = g.addNode('ReduceMean', [encoded], 'encoded_mean', { axes: [1], keepdims: 0 });
    const wi = addWeight(g, 'init_kernel', p['init_state.kernel'], [E, U], dtype);
    const h0 = g.addNode('Gemm', [mean, wi, g.addFloat('init_bias', p['init_state.bias'], [U])], 'init_pre');
    g.addNode('Tanh', [h0], [io.outputs.hidden]);
  } else {
    // zeros [n, U]: a [1, U] zero row expanded to the batch size read from the input's shape
    const batch = g.addNode(
      'Slice',
      [g.addNode('Shape', [features], 'features_shape'), g.addInt64('zero', [0]), g.addInt64('one', [1])],
      'batch',
    );
    const shape = g.addNode('Concat', [batch, g.addInt64('units', [U])], 'hidden_shape', { axis: 0 });
    g.addNode('Expand', [g.addFloat('zero_row', new Float32Array(U), [1, U]), shape], [io.outputs.hidden]);
  }
  g.addOutput(io.outputs.encoded, ['n', L, E]);
  g.addOutput(io.outputs.projected, ['n', L, A]);
  g.addOutput(io.outputs.hidden, ['n', U]);
  return g.toModel({
    docString: `show-attend-tell decoder init (initState ${config.initState ?? 'zeros'}, ${dtype} weights)`,
  });
}

export function decoderStepGraph(config: ModelConfig, p: DecoderParameters, dtype: BundleDtype): Uint8Array {
  const { locations: L, embedDim: E, attentionUnits: A, units: U, vocabSize: V } = config;
  const reset = config.gruState === 'reset';
  const g = new OnnxGraph('decoder_step');
  const io = DECODER_STEP_IO;
  const token = g.addInput(io.inputs.token, ['n'], 'int32');
  const hidden = g.addInput(io.inputs.hidden, ['n', U]);
  const encoded = g.addInput(io.inputs.encoded, ['n', L, E]);
  const projected = g.addInput(io.inputs.projected, ['n', L, A]);
  const axis = (k: number) => g.addInt64(`axis${k}`, [k]);

  // Bahdanau attention
  const hw2 = g.addNode(
    'Gemm',
    [
      hidden,
      addWeight(g, 'w2_kernel', p['attention.W2.kernel'], [U, A], dtype),
      g.addFloat('w2_bias', p['attention.W2.bias'], [A]),
    ],
    'hw2',
  );
  const th = g.addNode(
    'Tanh',
    [g.addNode('Add', [projected, g.addNode('Unsqueeze', [hw2, axis(1)], 'hw2_row')], 'score_pre')],
    'score_tanh',
  );
  const score = g.addNode(
    'Add',
    [
      g.addNode('MatMul', [th, g.addFloat('v_kernel', p['attention.V.kernel'], [A, 1])], 'score_mm'),
      g.addFloat('v_bias', p['attention.V.bias'], [1]),
    ],
    'score_col',
  );
  const attention = g.addNode('Softmax', [g.addNode('Squeeze', [score, axis(2)], 'score')], [io.outputs.attention], {
    axis: 1,
  });
  const context = g.addNode(
    'Squeeze',
    [
      g.addNode('MatMul', [g.addNode('Unsqueeze', [attention, axis(1)], 'attention_row'), encoded], 'context_row'),
      axis(1),
    ],
    'context',
  );

  // GRU input: concat(context, embedding), as the kernel's rows 0..E-1 (context) and E..2E-1 (embedding)
  const embedded = g.addNode(
    'Gather',
    [addWeight(g, 'embedding', p['embedding.embeddings'], [V, E], dtype, 0), token],
    'embedded',
    { axis: 0 },
  );
  const x = g.addNode('Concat', [context, embedded], 'gru_input', { axis: 1 });
  const bias = p['gru.bias'];
  const gx = g.addNode(
    'Gemm',
    [
      x,
      addWeight(g, 'gru_kernel', p['gru.kernel'], [2 * E, 3 * U], dtype),
      g.addFloat('gru_input_bias', bias.subarray(0, 3 * U), [3 * U]),
    ],
    'gx',
  );
  const split = g.addInt64('gate_sizes', [U, U, U]);
  const gxParts = ['gx_z', 'gx_r', 'gx_n'];
  g.addNode('Split', [gx, split], gxParts, { axis: 1 });
  let ghParts: string[];
  if (reset) {
    // h_prev = 0: the recurrent side is its bias alone
    ghParts = [0, 1, 2].map((k) =>
      g.addFloat(`gh_bias_${'zrn'[k]}`, bias.slice(3 * U + k * U, 3 * U + (k + 1) * U), [U]),
    );
  } else {
    const gh = g.addNode(
      'Gemm',
      [
        hidden,
        addWeight(g, 'gru_recurrent', p['gru.recurrent_kernel'], [U, 3 * U], dtype),
        g.addFloat('gru_recurrent_bias', bias.subarray(3 * U, 6 * U), [3 * U]),
      ],
      'gh',
    );
    ghParts = ['gh_z', 'gh_r', 'gh_n'];
    g.addNode('Split', [gh, split], ghParts, { axis: 1 });
  }
  const z = g.addNode('Sigmoid', [g.addNode('Add', [gxParts[0], ghParts[0]], 'z_pre')], 'z');
  const r = g.addNode('Sigmoid', [g.addNode('Add', [gxParts[1], ghParts[1]], 'r_pre')], 'r');
  const cand = g.addNode(
    'Tanh',
    [g.addNode('Add', [gxParts[2], g.addNode('Mul', [r, ghParts[2]], 'r_gh')], 'n_pre')],
    'n',
  );
  const keepNew = g.addNode(
    'Mul',
    [g.addNode('Sub', [g.addFloat('one_f', Float32Array.of(1), [1]), z], 'one_minus_z'), cand],
    'new_part',
  );
  const hNext = reset
    ? g.addNode('Identity', [keepNew], [io.outputs.hidden])
    : g.addNode('Add', [g.addNode('Mul', [z, hidden], 'old_part'), keepNew], [io.outputs.hidden]);

  // output layers: fc1 (no activation, as the TF tutorial), fc2 -> logits
  const f1 = g.addNode(
    'Gemm',
    [hNext, addWeight(g, 'fc1_kernel', p['fc1.kernel'], [U, U], dtype), g.addFloat('fc1_bias', p['fc1.bias'], [U])],
    'fc1',
  );
  g.addNode(
    'Gemm',
    [f1, addWeight(g, 'fc2_kernel', p['fc2.kernel'], [U, V], dtype), g.addFloat('fc2_bias', p['fc2.bias'], [V])],
    [io.outputs.logits],
  );

  g.addOutput(io.outputs.logits, ['n', V]);
  g.addOutput(io.outputs.attention, ['n', L]);
  g.addOutput(io.outputs.hidden, ['n', U]);
  return g.toModel({
    docString: `show-attend-tell decoder step (gruState ${config.gruState ?? 'carry'}, ${dtype} weights)`,
  });
}
