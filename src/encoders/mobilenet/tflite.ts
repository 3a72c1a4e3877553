import { ParseError } from '../../util/parse-error.js';
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

/** Bounds-checked reads of a FlatBuffer: every offset is checked against the buffer before it is followed. */
class FlatBuffer {
  constructor(
    readonly view: DataView,
    readonly source: string,
  ) {}

  /** Refuses (ParseError) unless bytes [at, at + size) lie inside the buffer. */
  need(at: number, size: number, what: string): void {
    if (!(at >= 0 && size >= 0 && at + size <= this.view.byteLength)) {
      throw new ParseError(
        `${this.source}: ${what} (${size} bytes at ${at}) lies outside the ${this.view.byteLength}-byte file; the model is damaged (download it again).`,
      );
    }
  }

  /** The table whose uoffset is stored at `at`. */
  tableAt(at: number, what: string): Table {
    this.need(at, 4, what);
    return new Table(this, at + this.view.getUint32(at, true), what);
  }
}

class Table {
  private readonly vtable: number;
  private readonly vtableSize: number;

  constructor(
    private readonly fb: FlatBuffer,
    readonly pos: number,
    private readonly what: string,
  ) {
    fb.need(pos, 4, what);
    this.vtable = pos - fb.view.getInt32(pos, true);
    fb.need(this.vtable, 4, `the vtable of ${what}`);
    this.vtableSize = fb.view.getUint16(this.vtable, true);
    fb.need(this.vtable, this.vtableSize, `the vtable of ${what}`);
  }

  /** Position of field `index` holding `size` bytes, or 0 when absent. */
  private field(index: number, size: number): number {
    const slot = 4 + 2 * index;
    if (slot + 2 > this.vtableSize) return 0;
    const o = this.fb.view.getUint16(this.vtable + slot, true);
    if (!o) return 0;
    this.fb.need(this.pos + o, size, `field ${index} of ${this.what}`);
    return this.pos + o;
  }

  uint8(index: number, dflt = 0): number {
    const at = this.field(index, 1);
    return at ? this.fb.view.getUint8(at) : dflt;
  }

  int32(index: number, dflt = 0): number {
    const at = this.field(index, 4);
    return at ? this.fb.view.getInt32(at, true) : dflt;
  }

  uint32(index: number, dflt = 0): number {
    const at = this.field(index, 4);
    return at ? this.fb.view.getUint32(at, true) : dflt;
  }

  /** Position of the vector's first element and its length, or undefined when absent; checked to fit. */
  private vector(index: number, elementSize: number): [start: number, length: number] | undefined {
    const at = this.field(index, 4);
    if (!at) return undefined;
    const vec = at + this.fb.view.getUint32(at, true);
    this.fb.need(vec, 4, `the length of vector ${index} of ${this.what}`);
    const length = this.fb.view.getUint32(vec, true);
    this.fb.need(vec + 4, length * elementSize, `vector ${index} of ${this.what} (${length} elements)`);
    return [vec + 4, length];
  }

  tables(index: number): Table[] {
    const v = this.vector(index, 4);
    if (!v) return [];
    return Array.from({ length: v[1] }, (_, i) =>
      this.fb.tableAt(v[0] + 4 * i, `element ${i} of vector ${index} of ${this.what}`),
    );
  }

  int32s(index: number): number[] {
    const v = this.vector(index, 4);
    return v ? Array.from({ length: v[1] }, (_, i) => this.fb.view.getInt32(v[0] + 4 * i, true)) : [];
  }

  bytes(index: number): Uint8Array {
    const v = this.vector(index, 1);
    return v ? new Uint8Array(this.fb.view.buffer, this.fb.view.byteOffset + v[0], v[1]) : new Uint8Array(0);
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
  if (bytes.length < 8) throw new ParseError(`${source} is too short to be a TFLite model.`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ident = new TextDecoder().decode(bytes.subarray(4, 8));
  if (ident !== 'TFL3')
    throw new ParseError(`${source} is not a TFLite model (file identifier "${ident}", expected "TFL3").`);
  const model = new FlatBuffer(view, source).tableAt(0, 'the Model table');
  const codes = model.tables(1).map((c) => Math.max(c.uint8(0), c.int32(3)));
  const buffers = model.tables(4);
  const subgraph = model.tables(2)[0];
  if (!subgraph) throw new ParseError(`${source} has no subgraph.`);
  const tensors = subgraph.tables(0);
  // One float copy per buffer, however many tensors or operators name it: the output never outgrows the file.
  const copies = new Map<number, Float32Array>();

  const tensor = (index: number, what: string): NpyArray & { name: string } => {
    const t = tensors[index];
    if (!t) throw new ParseError(`${source}: ${what} refers to tensor ${index}, which does not exist.`);
    const name = t.string(3);
    if (t.uint8(1) !== 0)
      throw new ParseError(
        `${source}: tensor "${name}" is not float32 (a quantized model?); use the float mobilenet_v2_1.0_224.tflite.`,
      );
    const shape = t.int32s(0);
    if (shape.some((d) => d < 0))
      throw new ParseError(`${source}: tensor "${name}" has a negative dimension in [${shape}].`);
    const bufferIndex = t.uint32(2);
    const raw = buffers[bufferIndex]?.bytes(0) ?? new Uint8Array(0);
    const count = shape.reduce((a, b) => a * b, 1);
    if (raw.length !== count * 4)
      throw new ParseError(
        `${source}: tensor "${name}" [${shape}] has ${raw.length} bytes of data, expected ${count * 4}.`,
      );
    let data = copies.get(bufferIndex);
    if (!data) {
      data = new Float32Array(count);
      new Uint8Array(data.buffer).set(raw); // copy: the buffer inside the file need not be 4-byte aligned
      copies.set(bufferIndex, data);
    }
    return { name, shape, data };
  };

  const convs: TfliteConv[] = [];
  for (const [i, op] of subgraph.tables(3).entries()) {
    const code = codes[op.uint32(0)];
    if (code !== CONV_2D && code !== DEPTHWISE_CONV_2D) continue;
    const inputs = op.int32s(1);
    if (inputs.length < 3 || inputs[2] < 0) throw new ParseError(`${source}: convolution #${i} has no bias input.`);
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
  if (convs.length < wanted.length)
    throw new ParseError(`${source} has ${convs.length} convolutions, MobileNetV2 needs ${wanted.length}.`);
  const out = new Map<string, NpyArray>();
  wanted.forEach((w, k) => {
    const c = convs[k];
    if ((c.op === 'depthwise') !== w.depthwise) {
      throw new ParseError(
        `${source}: convolution #${k} ("${c.weights.name}") is ${c.op}, but ${w.block} expects ${w.depthwise ? 'depthwise' : 'a regular conv'} there.`,
      );
    }
    out.set(w.weight, { data: c.weights.data, shape: c.weights.shape });
    out.set(w.bias, { data: c.bias.data, shape: c.bias.shape });
  });
  return out;
}
