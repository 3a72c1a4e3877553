import type { NpyArray } from './npy.js';
import type { MbBlock } from './mobilenet_v2.js';

/**
 * Reads convolution weights out of a TensorFlow Lite model (a FlatBuffer with the tflite schema.fbs).
 *
 * FlatBuffer layout, as far as we need it: the file starts with a uint32 offset to the root table.
 * A table starts with an int32 `soffset`; its vtable sits at (table - soffset) and lists, after two uint16
 * sizes, one uint16 offset per field (0 = field absent, use the default). Offsets to sub-tables, vectors
 * and strings are uint32, relative to where they are stored. A vector is a uint32 length and its elements.
 *
 * Schema fields used (field index in parentheses):
 *   Model: operator_codes (1), subgraphs (2), buffers (4)
 *   OperatorCode: deprecated_builtin_code:byte (0), builtin_code:int (3) — the code is the larger of the two
 *   SubGraph: tensors (0), operators (3);  Operator: opcode_index:uint (0), inputs:[int] (1)
 *   Tensor: shape:[int] (0), type:byte (1, FLOAT32 = 0), buffer:uint (2), name:string (3);  Buffer: data:[ubyte] (0)
 */
export const CONV_2D = 3;
export const DEPTHWISE_CONV_2D = 4;

class Table {
  constructor(private readonly view: DataView, readonly pos: number) {}

  private field(index: number): number {
    const vtable = this.pos - this.view.getInt32(this.pos, true);
    const vtableSize = this.view.getUint16(vtable, true);
    const slot = 4 + 2 * index;
    if (slot >= vtableSize) return 0;
    return this.view.getUint16(vtable + slot, true);
  }

  uint8(index: number, dflt = 0): number {
    const o = this.field(index);
    return o ? this.view.getUint8(this.pos + o) : dflt;
  }

  int32(index: number, dflt = 0): number {
    const o = this.field(index);
    return o ? this.view.getInt32(this.pos + o, true) : dflt;
  }

  uint32(index: number, dflt = 0): number {
    const o = this.field(index);
    return o ? this.view.getUint32(this.pos + o, true) : dflt;
  }

  /** Position of the vector's first element and its length, or undefined when absent. */
  private vector(index: number): [start: number, length: number] | undefined {
    const o = this.field(index);
    if (!o) return undefined;
    const at = this.pos + o;
    const vec = at + this.view.getUint32(at, true);
    return [vec + 4, this.view.getUint32(vec, true)];
  }

  tables(index: number): Table[] {
    const v = this.vector(index);
    if (!v) return [];
    return Array.from({ length: v[1] }, (_, i) => {
      const at = v[0] + 4 * i;
      return new Table(this.view, at + this.view.getUint32(at, true));
    });
  }

  int32s(index: number): number[] {
    const v = this.vector(index);
    return v ? Array.from({ length: v[1] }, (_, i) => this.view.getInt32(v[0] + 4 * i, true)) : [];
  }

  bytes(index: number): Uint8Array {
    const v = this.vector(index);
    return v ? new Uint8Array(this.view.buffer, this.view.byteOffset + v[0], v[1]) : new Uint8Array(0);
  }

  string(index: number): string {
    return new TextDecoder().decode(this.bytes(index));
  }
}

export interface TfliteConv {
  op: 'conv' | 'depthwise';
  weights: NpyArray & { name: string };
  bias: NpyArray & { name: string };
}

/** Every CONV_2D / DEPTHWISE_CONV_2D of the first subgraph, in execution order, with float32 weights and bias. */
export function readTfliteConvs(bytes: Uint8Array, source: string): TfliteConv[] {
  if (bytes.length < 8) throw new Error(`${source} is too short to be a TFLite model.`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ident = new TextDecoder().decode(bytes.subarray(4, 8));
  if (ident !== 'TFL3') throw new Error(`${source} is not a TFLite model (file identifier "${ident}", expected "TFL3").`);
  const model = new Table(view, view.getUint32(0, true));
  const codes = model.tables(1).map((c) => Math.max(c.uint8(0), c.int32(3)));
  const buffers = model.tables(4);
  const subgraph = model.tables(2)[0];
  if (!subgraph) throw new Error(`${source} has no subgraph.`);
  const tensors = subgraph.tables(0);

  const tensor = (index: number, what: string): NpyArray & { name: string } => {
    const t = tensors[index];
    if (!t) throw new Error(`${source}: ${what} refers to tensor ${index}, which does not exist.`);
    const name = t.string(3);
    if (t.uint8(1) !== 0) throw new Error(`${source}: tensor "${name}" is not float32 (a quantized model?); use the float mobilenet_v2_1.0_224.tflite.`);
    const shape = t.int32s(0);
    const raw = buffers[t.uint32(2)]?.bytes(0) ?? new Uint8Array(0);
    const count = shape.reduce((a, b) => a * b, 1);
    if (raw.length !== count * 4) throw new Error(`${source}: tensor "${name}" [${shape}] has ${raw.length} bytes of data, expected ${count * 4}.`);
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(raw); // copy: the buffer inside the file need not be 4-byte aligned
    return { name, shape, data };
  };

  const convs: TfliteConv[] = [];
  for (const [i, op] of subgraph.tables(3).entries()) {
    const code = codes[op.uint32(0)];
    if (code !== CONV_2D && code !== DEPTHWISE_CONV_2D) continue;
    const inputs = op.int32s(1);
    if (inputs.length < 3 || inputs[2] < 0) throw new Error(`${source}: convolution #${i} has no bias input.`);
    convs.push({
      op: code === CONV_2D ? 'conv' : 'depthwise',
      weights: tensor(inputs[1], `operator #${i} weights`),
      bias: tensor(inputs[2], `operator #${i} bias`),
    });
  }
  return convs;
}

/**
 * Names the model's convolutions after our block table, by execution order: the k-th convolution of the
 * file feeds the k-th conv of `blocks` (extra trailing convolutions, like the 1001-way classifier, are
 * ignored). The kind (regular / depthwise) of each must agree; shapes are checked when the graph is built.
 */
export function tensorsFromTflite(convs: TfliteConv[], blocks: MbBlock[], source: string): Map<string, NpyArray> {
  const wanted = blocks.flatMap((b) => b.convs.map((c) => ({ block: b.name, ...c })));
  if (convs.length < wanted.length) throw new Error(`${source} has ${convs.length} convolutions, MobileNetV2 needs ${wanted.length}.`);
  const out = new Map<string, NpyArray>();
  wanted.forEach((w, k) => {
    const c = convs[k];
    if ((c.op === 'depthwise') !== w.depthwise) {
      throw new Error(`${source}: convolution #${k} ("${c.weights.name}") is ${c.op}, but ${w.block} expects ${w.depthwise ? 'depthwise' : 'a regular conv'} there.`);
    }
    out.set(w.weight, { data: c.weights.data, shape: c.weights.shape });
    out.set(w.bias, { data: c.bias.data, shape: c.bias.shape });
  });
  return out;
}
