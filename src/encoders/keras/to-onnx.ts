import path from 'node:path';
import { OnnxGraph } from '../onnx/graph.js';
import { padding } from '../onnx/padding.js';
import { layersUpTo, type KerasLayer, type KerasWeights, type WeightTensor } from './model.js';

/**
 * Converts a Keras image CNN (channels_last) into an ONNX graph cut at one layer.
 *
 * Layout: the graph takes NHWC float32 [n, size, size, 3], transposes once to NCHW (ONNX Conv's layout),
 * and transposes the cut layer back to NHWC [n, h, w, c] once at the end; nothing in between moves data.
 * A Conv2D whose only consumer is a BatchNormalization gets the BN folded into its weights and bias:
 *   W'[o] = W[o] * g[o],  b'[o] = (b[o] - mean[o]) * g[o] + beta[o],  g = gamma / sqrt(var + eps)
 * (computed in float64, stored float32). Supported layers: InputLayer, Conv2D, BatchNormalization,
 * Activation (relu/linear), MaxPooling2D, AveragePooling2D, Concatenate, Dropout.
 */
export interface KerasToOnnxOptions {
  layers: KerasLayer[];
  weights: KerasWeights;
  /** Name of the layer whose output becomes the graph output. */
  outputLayer: string;
  inputSize: number;
  inputName: string;
  outputName: string;
}

export interface ConvertedGraph {
  onnx: Uint8Array;
  /** Output shape [h, w, c] of the cut layer. */
  outputShape: [number, number, number];
}

/** [channels, height, width] of a tensor in the NCHW graph, batch excluded. */
type Shape = [number, number, number];

export function kerasToOnnx(opts: KerasToOnnxOptions): ConvertedGraph {
  const layers = layersUpTo(opts.layers, opts.outputLayer);
  const byName = new Map(layers.map((l) => [l.name, l]));
  const consumers = new Map<string, string[]>();
  for (const l of layers) for (const i of l.inbound) consumers.set(i, [...(consumers.get(i) ?? []), l.name]);

  // conv name -> the BatchNormalization folded into it
  const foldedBn = new Map<string, KerasLayer>();
  for (const l of layers) {
    if (l.className !== 'BatchNormalization' || l.inbound.length !== 1) continue;
    const conv = byName.get(l.inbound[0])!;
    if (
      conv.className === 'Conv2D' &&
      (conv.config.activation ?? 'linear') === 'linear' &&
      consumers.get(conv.name)!.length === 1
    ) {
      foldedBn.set(conv.name, l);
    }
  }

  const g = new OnnxGraph(`keras_${opts.outputLayer}`);
  const tensor = new Map<string, string>(); // keras layer -> ONNX tensor (NCHW)
  const shape = new Map<string, Shape>();
  const input = (l: KerasLayer, k = 0): [string, Shape] => [tensor.get(l.inbound[k])!, shape.get(l.inbound[k])!];
  const weight = (layer: string, name: string): WeightTensor => {
    const w = opts.weights.get(layer, name);
    if (!w) throw new Error(`${opts.weights.source}: no weight "${name}" for layer "${layer}".`);
    return w;
  };

  for (const l of layers) {
    const c = l.config;
    if (tensor.has(l.name)) continue; // a BN already folded into its conv
    switch (l.className) {
      case 'InputLayer': {
        const s = c.batch_input_shape as (number | null)[];
        if (s.length !== 4 || s[3] !== 3)
          throw new Error(`Input layer "${l.name}" has shape ${JSON.stringify(s)}; expected [null, h, w, 3].`);
        g.addInput(opts.inputName, ['n', opts.inputSize, opts.inputSize, 3]);
        tensor.set(l.name, g.addNode('Transpose', [opts.inputName], 'nchw', { perm: [0, 3, 1, 2] }));
        shape.set(l.name, [3, opts.inputSize, opts.inputSize]);
        break;
      }
      case 'Conv2D': {
        const [x, [cin, h, w]] = input(l);
        checkChannelsLast(l);
        if (!equal((c.dilation_rate as number[]) ?? [1, 1], [1, 1]))
          throw new Error(`Conv2D "${l.name}": dilation is not supported.`);
        const [kh, kw] = c.kernel_size as number[];
        const strides = c.strides as number[];
        const kernel = weight(l.name, 'kernel'); // Keras [kh, kw, in, out]
        const cout = kernel.shape[3];
        if (!equal(kernel.shape, [kh, kw, cin, cout]))
          throw new Error(
            `Conv2D "${l.name}": kernel shape [${kernel.shape}] does not match [${kh}, ${kw}, ${cin}, out].`,
          );
        const wOihw = kernelToOihw(kernel.data, kh, kw, cin, cout);
        const bias = c.use_bias ? Float64Array.from(weight(l.name, 'bias').data) : new Float64Array(cout);
        const bn = foldedBn.get(l.name);
        if (bn) foldBatchNorm(wOihw, bias, batchNormAffine(bn, cout, weight));
        const [oh, pads0] = padding(c.padding as string, h, kh, strides[0], l.name);
        const [ow, pads1] = padding(c.padding as string, w, kw, strides[1], l.name);
        const outName = bn ? bn.name : l.name;
        const wName = g.addFloat(`${l.name}_W`, wOihw, [cout, cin, kh, kw]);
        const bName = g.addFloat(`${l.name}_B`, Float32Array.from(bias), [cout]);
        let y = g.addNode('Conv', [x, wName, bName], outName, {
          kernel_shape: [kh, kw],
          strides,
          pads: [pads0[0], pads1[0], pads0[1], pads1[1]],
        });
        y = activation(g, y, (c.activation as string) ?? 'linear', l.name);
        for (const n of bn ? [l.name, bn.name] : [l.name]) {
          tensor.set(n, y);
          shape.set(n, [cout, oh, ow]);
        }
        break;
      }
      case 'BatchNormalization': {
        const [x, s] = input(l);
        const { scale, shift } = batchNormAffine(l, s[0], weight);
        const mul = g.addNode(
          'Mul',
          [x, g.addFloat(`${l.name}_scale`, Float32Array.from(scale), [s[0], 1, 1])],
          `${l.name}_mul`,
        );
        tensor.set(
          l.name,
          g.addNode('Add', [mul, g.addFloat(`${l.name}_shift`, Float32Array.from(shift), [s[0], 1, 1])], l.name),
        );
        shape.set(l.name, s);
        break;
      }
      case 'Activation': {
        const [x, s] = input(l);
        tensor.set(l.name, activation(g, x, c.activation as string, l.name));
        shape.set(l.name, s);
        break;
      }
      case 'Dropout': {
        // identity at inference
        const [x, s] = input(l);
        tensor.set(l.name, x);
        shape.set(l.name, s);
        break;
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        const [x, [ch, h, w]] = input(l);
        checkChannelsLast(l);
        const [kh, kw] = c.pool_size as number[];
        const strides = (c.strides as number[] | null) ?? [kh, kw];
        const [oh, pads0] = padding(c.padding as string, h, kh, strides[0], l.name);
        const [ow, pads1] = padding(c.padding as string, w, kw, strides[1], l.name);
        const attrs: Record<string, number | number[]> = {
          kernel_shape: [kh, kw],
          strides,
          pads: [pads0[0], pads1[0], pads0[1], pads1[1]],
        };
        // Keras/TF average pooling with SAME padding divides by the number of real (unpadded) pixels.
        if (l.className === 'AveragePooling2D') attrs.count_include_pad = 0;
        tensor.set(l.name, g.addNode(l.className === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', [x], l.name, attrs));
        shape.set(l.name, [ch, oh, ow]);
        break;
      }
      case 'Concatenate': {
        const axis = c.axis as number;
        if (axis !== 3 && axis !== -1)
          throw new Error(`Concatenate "${l.name}": only the channel axis (3 / -1) is supported, got ${axis}.`);
        const shapes = l.inbound.map((i) => shape.get(i)!);
        const [, h, w] = shapes[0];
        if (shapes.some((s) => s[1] !== h || s[2] !== w))
          throw new Error(`Concatenate "${l.name}": inputs differ in spatial size.`);
        tensor.set(
          l.name,
          g.addNode(
            'Concat',
            l.inbound.map((i) => tensor.get(i)!),
            l.name,
            { axis: 1 },
          ),
        );
        shape.set(l.name, [shapes.reduce((a, s) => a + s[0], 0), h, w]);
        break;
      }
      default:
        throw new Error(
          `Cannot cut at "${opts.outputLayer}": it needs layer "${l.name}" (${l.className}), which cannot be converted; ` +
            'cut the model at a convolutional layer before it ' +
            `(supported: InputLayer, Conv2D, BatchNormalization, Activation, MaxPooling2D, AveragePooling2D, Concatenate, Dropout).`,
        );
    }
  }

  const [ch, h, w] = shape.get(opts.outputLayer)!;
  g.addNode('Transpose', [tensor.get(opts.outputLayer)!], [opts.outputName], { perm: [0, 2, 3, 1] });
  g.addOutput(opts.outputName, ['n', h, w, ch]);
  return {
    // the weights' file name only: an exported model carries no path of the machine that wrote it
    onnx: g.toModel({
      docString: `Keras layers up to "${opts.outputLayer}" from ${path.basename(opts.weights.source)}`,
    }),
    outputShape: [h, w, ch],
  };
}

function checkChannelsLast(l: KerasLayer): void {
  const f = l.config.data_format;
  if (f !== undefined && f !== 'channels_last')
    throw new Error(`Layer "${l.name}": data_format ${String(f)} is not supported (channels_last only).`);
}

function activation(g: OnnxGraph, x: string, name: string, layer: string): string {
  if (name === 'linear') return x;
  if (name === 'relu') return g.addNode('Relu', [x], `${layer}_relu`);
  throw new Error(`Layer "${layer}": activation "${name}" is not supported (relu, linear).`);
}

/** Keras kernel [kh, kw, in, out] -> ONNX [out, in, kh, kw]. */
function kernelToOihw(k: Float32Array, kh: number, kw: number, cin: number, cout: number): Float32Array {
  const out = new Float32Array(k.length);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      for (let i = 0; i < cin; i++) {
        const src = ((y * kw + x) * cin + i) * cout;
        for (let o = 0; o < cout; o++) out[((o * cin + i) * kh + y) * kw + x] = k[src + o];
      }
    }
  }
  return out;
}

/** Inference-time BN as y = x * scale + shift per channel (float64). */
function batchNormAffine(bn: KerasLayer, channels: number, weight: (layer: string, name: string) => WeightTensor) {
  const c = bn.config;
  const axis = c.axis as number | number[];
  if (!(axis === 3 || axis === -1 || (Array.isArray(axis) && axis.length === 1 && (axis[0] === 3 || axis[0] === -1)))) {
    throw new Error(
      `BatchNormalization "${bn.name}": only the channel axis is supported, got ${JSON.stringify(axis)}.`,
    );
  }
  const eps = (c.epsilon as number) ?? 1e-3;
  const get = (name: string, use: boolean, fill: number) => {
    if (!use) return new Float32Array(channels).fill(fill);
    const w = weight(bn.name, name);
    if (w.data.length !== channels)
      throw new Error(`BatchNormalization "${bn.name}": ${name} has ${w.data.length} values, expected ${channels}.`);
    return w.data;
  };
  const gamma = get('gamma', c.scale !== false, 1);
  const beta = get('beta', c.center !== false, 0);
  const mean = get('moving_mean', true, 0);
  const variance = get('moving_variance', true, 1);
  const scale = new Float64Array(channels),
    shift = new Float64Array(channels);
  for (let i = 0; i < channels; i++) {
    scale[i] = gamma[i] / Math.sqrt(variance[i] + eps);
    shift[i] = beta[i] - mean[i] * scale[i];
  }
  return { scale, shift };
}

/** In place: w [out, ...] scaled per output channel, bias -> bias * scale + shift. */
function foldBatchNorm(w: Float32Array, bias: Float64Array, bn: { scale: Float64Array; shift: Float64Array }): void {
  const per = w.length / bias.length;
  for (let o = 0; o < bias.length; o++) {
    const s = bn.scale[o];
    for (let j = o * per; j < (o + 1) * per; j++) w[j] = w[j] * s;
    bias[o] = bias[o] * s + bn.shift[o];
  }
}

function equal(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
