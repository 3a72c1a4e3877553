import path from 'node:path';
import { OnnxGraph } from '../onnx/graph.js';
import { padding } from '../onnx/padding.js';
import type { NpyArray } from './npy.js';

/**
 * ImageNet MobileNetV2 1.0 (TFLite export, batch norm already folded) as an ONNX graph ending at the
 * 7x7x1280 `Conv_1` feature map (optionally with a tapped block's finer map folded onto it: buildMobileNetGraph).
 * Tensor names and wiring follow ../shared/models/README.md:
 * conv weights `Const_<id>` are OHWI [out, kh, kw, in], depthwise weights are [1, kh, kw, channels],
 * biases are `MobilenetV2_<name>_bias`; ReLU6 after every conv except the linear `project` convs;
 * TF SAME padding (odd padding at the bottom/right); a residual add where stride is 1 and channels match.
 */
export interface MbConv {
  weight: string;
  bias: string;
  depthwise: boolean;
  stride: number;
  /** Spacing of the kernel taps (1 = a plain convolution); >1 keeps a removed stride's receptive field. */
  dilation?: number;
  relu6: boolean;
}

export interface MbBlock {
  name: string;
  convs: MbConv[];
  /** Adds the block input to its output (the input and output shapes must match). */
  residual: boolean;
}

/** Source of the named float32 tensors (a folder of .npy files, or tensors read from the .tflite file). */
export type TensorSource = (name: string) => NpyArray;

// [N, expand id, depthwise id, project id, depthwise stride, residual] from the README's table.
const BLOCK_TABLE: [number, number, number, number, number, boolean][] = [
  [1, 165, 99, 73, 2, false],
  [2, 3, 119, 115, 1, true],
  [3, 255, 216, 157, 2, false],
  [4, 227, 221, 193, 1, true],
  [5, 243, 102, 215, 1, true],
  [6, 226, 163, 229, 2, false],
  [7, 104, 254, 143, 1, true],
  [8, 25, 142, 202, 1, true],
  [9, 225, 129, 98, 1, true],
  [10, 169, 2, 246, 1, false],
  [11, 162, 87, 106, 1, true],
  [12, 52, 22, 40, 1, true],
  [13, 114, 65, 242, 2, false],
  [14, 203, 250, 92, 1, true],
  [15, 133, 130, 258, 1, true],
  [16, 60, 248, 100, 1, false],
];

function conv(id: number, bias: string, depthwise: boolean, stride: number, relu6: boolean): MbConv {
  return { weight: `Const_${id}`, bias: `MobilenetV2_${bias}_bias`, depthwise, stride, relu6 };
}

/**
 * The full ImageNet MobileNetV2 1.0 trunk: 52 convolutions in 19 blocks. `outputStride` 32 is the network as
 * trained (7x7 at 224); 16 is DeepLab's dense variant (14x14 at 224, same weights): the last stride-2 convolution
 * runs at stride 1 and every later convolution is dilated by 2, so each unit still sees what it saw in training.
 */
export function mobilenetV2Blocks(outputStride: 16 | 32 = 32): MbBlock[] {
  const blocks: MbBlock[] = [
    { name: 'Conv', convs: [conv(90, 'Conv_Conv2D', false, 2, true)], residual: false },
    {
      name: 'expanded_conv',
      convs: [
        conv(238, 'expanded_conv_depthwise_depthwise', true, 1, true),
        conv(167, 'expanded_conv_project_Conv2D', false, 1, false),
      ],
      residual: false,
    },
  ];
  for (const [n, e, d, p, stride, residual] of BLOCK_TABLE) {
    const b = `expanded_conv_${n}`;
    blocks.push({
      name: b,
      convs: [
        conv(e, `${b}_expand_Conv2D`, false, 1, true),
        conv(d, `${b}_depthwise_depthwise`, true, stride, true),
        conv(p, `${b}_project_Conv2D`, false, 1, false),
      ],
      residual,
    });
  }
  blocks.push({ name: 'Conv_1', convs: [conv(71, 'Conv_1_Conv2D', false, 1, true)], residual: false });
  return outputStride === 32 ? blocks : dilateAfterStride(blocks, outputStride);
}

/** Removes strides once the running stride reaches `outputStride`, dilating later convolutions instead. */
function dilateAfterStride(blocks: MbBlock[], outputStride: number): MbBlock[] {
  let stride = 1,
    rate = 1;
  return blocks.map((block) => ({
    ...block,
    convs: block.convs.map((cv) => {
      if (stride < outputStride) {
        stride *= cv.stride;
        return cv;
      }
      const out = { ...cv, stride: 1, dilation: rate };
      rate *= cv.stride;
      return out;
    }),
  }));
}

/** Every tensor name the blocks read, weights and biases. */
export function tensorNames(blocks: MbBlock[]): string[] {
  return blocks.flatMap((b) => b.convs.flatMap((c) => [c.weight, c.bias]));
}

export function buildMobileNetGraph(opts: {
  blocks: MbBlock[];
  tensors: TensorSource;
  inputSize: number;
  inputName: string;
  outputName: string;
  source: string;
  /** A block whose output is also kept: folded to the final grid (space to depth) and appended to its channels. */
  tap?: string;
}): { onnx: Uint8Array; outputShape: [number, number, number] } {
  const g = new OnnxGraph('mobilenet_v2');
  g.addInput(opts.inputName, ['n', opts.inputSize, opts.inputSize, 3]);
  let x = g.addNode('Transpose', [opts.inputName], 'nchw', { perm: [0, 3, 1, 2] });
  let [c, h, w] = [3, opts.inputSize, opts.inputSize];
  const zero = g.addFloat('relu6_min', new Float32Array([0]), []);
  const six = g.addFloat('relu6_max', new Float32Array([6]), []);
  let tapped: { name: string; shape: number[] } | undefined;

  for (const block of opts.blocks) {
    const blockInput = x,
      inShape = [c, h, w];
    for (const cv of block.convs) {
      const wt = opts.tensors(cv.weight),
        bias = opts.tensors(cv.bias);
      const where = `${opts.source}: ${block.name} (${cv.weight}, ${cv.bias})`;
      if (wt.shape.length !== 4) throw new Error(`${where}: weights have shape [${wt.shape}], expected 4-D.`);
      let onnxW: Float32Array,
        dims: number[],
        groups = 1,
        cout: number;
      const [, kh, kw] = wt.shape;
      if (cv.depthwise) {
        // [1, kh, kw, C] -> [C, 1, kh, kw], one group per channel
        if (wt.shape[0] !== 1 || wt.shape[3] !== c)
          throw new Error(`${where}: depthwise weights [${wt.shape}] do not match ${c} input channels.`);
        cout = groups = c;
        onnxW = hwcToChw(wt.data, kh, kw, c);
        dims = [c, 1, kh, kw];
      } else {
        // OHWI [out, kh, kw, in] -> OIHW
        if (wt.shape[3] !== c)
          throw new Error(
            `${where}: weights [${wt.shape}] expect ${wt.shape[3]} input channels, the previous layer gives ${c}.`,
          );
        cout = wt.shape[0];
        onnxW = ohwiToOihw(wt.data, cout, kh, kw, c);
        dims = [cout, c, kh, kw];
      }
      if (bias.data.length !== cout)
        throw new Error(`${where}: bias has ${bias.data.length} values, expected ${cout}.`);
      const dilation = kh > 1 || kw > 1 ? (cv.dilation ?? 1) : 1; // a 1x1 kernel has no taps to space
      const span = (k: number) => (k - 1) * dilation + 1; // a dilated kernel's extent
      const [oh, ph] = padding('same', h, span(kh), cv.stride, block.name);
      const [ow, pw] = padding('same', w, span(kw), cv.stride, block.name);
      x = g.addNode(
        'Conv',
        [x, g.addFloat(cv.weight, onnxW, dims), g.addFloat(cv.bias, bias.data, [cout])],
        `${block.name}_conv`,
        {
          kernel_shape: [kh, kw],
          strides: [cv.stride, cv.stride],
          ...(dilation > 1 ? { dilations: [dilation, dilation] } : {}),
          pads: [ph[0], pw[0], ph[1], pw[1]],
          group: groups,
        },
      );
      if (cv.relu6) x = g.addNode('Clip', [x, zero, six], `${block.name}_relu6`);
      [c, h, w] = [cout, oh, ow];
    }
    if (block.residual) {
      if (inShape.join() !== [c, h, w].join())
        throw new Error(`${opts.source}: block ${block.name} is residual but maps [${inShape}] to [${c},${h},${w}].`);
      x = g.addNode('Add', [blockInput, x], `${block.name}_add`);
    }
    if (block.name === opts.tap) tapped = { name: x, shape: [c, h, w] };
  }
  if (opts.tap !== undefined) {
    if (!tapped) throw new Error(`${opts.source}: no block named ${opts.tap} to tap.`);
    const factor = tapped.shape[1] / h;
    if (!Number.isInteger(factor) || tapped.shape[2] / w !== factor)
      throw new Error(
        `${opts.source}: block ${opts.tap}'s ${tapped.shape[1]}x${tapped.shape[2]} grid does not fold onto ${h}x${w}.`,
      );
    const folded = g.addNode('SpaceToDepth', [tapped.name], `${opts.tap}_folded`, { blocksize: factor });
    x = g.addNode('Concat', [x, folded], 'features_and_tap', { axis: 1 });
    c += tapped.shape[0] * factor * factor;
  }
  g.addNode('Transpose', [x], [opts.outputName], { perm: [0, 2, 3, 1] });
  g.addOutput(opts.outputName, ['n', h, w, c]);
  // the weights' file name only: an exported model carries no path of the machine that wrote it
  const docString = `MobileNetV2 trunk from ${path.basename(opts.source)}`;
  return { onnx: g.toModel({ docString }), outputShape: [h, w, c] };
}

function ohwiToOihw(src: Float32Array, o: number, kh: number, kw: number, cin: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let a = 0; a < o; a++)
    for (let y = 0; y < kh; y++)
      for (let x = 0; x < kw; x++)
        for (let i = 0; i < cin; i++) out[((a * cin + i) * kh + y) * kw + x] = src[((a * kh + y) * kw + x) * cin + i];
  return out;
}

/** [kh, kw, C] -> [C, kh, kw] */
function hwcToChw(src: Float32Array, kh: number, kw: number, c: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++) for (let i = 0; i < c; i++) out[(i * kh + y) * kw + x] = src[(y * kw + x) * c + i];
  return out;
}
