import { ProtoWriter } from './protobuf.js';

/**
 * A small ONNX graph builder that serializes to a ModelProto (ir_version 8, default-domain opset 13).
 * Field numbers follow onnx/onnx.proto; only what our encoders and decoder graphs need is supported:
 * float32/float16/int8/int32/int64 initializers as raw_data, nodes with int/float/string/ints/floats
 * attributes, and typed inputs/outputs whose dimensions may be symbolic (e.g. 'n' for the batch).
 */
export type Dim = number | string;
export type AttrValue = number | string | number[] | { floats: number[] } | { float: number };

/** TensorProto.DataType values. */
export const ONNX_TYPES = { float32: 1, int8: 3, int32: 6, int64: 7, float16: 10 } as const;
export type OnnxElementType = keyof typeof ONNX_TYPES;
const FLOAT = ONNX_TYPES.float32;
const INT64 = ONNX_TYPES.int64;

/** AttributeProto.AttributeType values. */
const ATTR_FLOAT = 1,
  ATTR_INT = 2,
  ATTR_STRING = 3,
  ATTR_FLOATS = 6,
  ATTR_INTS = 7;

interface Initializer {
  name: string;
  dims: number[];
  dataType: number;
  raw: Uint8Array;
}
interface Node {
  opType: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
  name: string;
}
interface ValueInfo {
  name: string;
  dims: Dim[];
  type: OnnxElementType;
}

export class OnnxGraph {
  private readonly initializers: Initializer[] = [];
  private readonly nodes: Node[] = [];
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly used = new Set<string>();
  private counter = 0;

  constructor(readonly name: string) {}

  /** A fresh tensor name starting with `prefix` (unique within this graph). */
  fresh(prefix: string): string {
    let n = prefix;
    while (this.used.has(n)) n = `${prefix}_${++this.counter}`;
    this.used.add(n);
    return n;
  }

  addInput(name: string, dims: Dim[], type: OnnxElementType = 'float32'): string {
    this.claim(name);
    this.inputs.push({ name, dims, type });
    return name;
  }

  /** Declares an existing tensor as a graph output (float32 unless `type` says otherwise). */
  addOutput(name: string, dims: Dim[], type: OnnxElementType = 'float32'): void {
    this.outputs.push({ name, dims, type });
  }

  /** A constant of any supported type from its little-endian bytes (e.g. float16 bits from encodeHalf). */
  addRaw(prefix: string, type: OnnxElementType, data: ArrayBufferView & { length: number }, dims: number[]): string {
    checkSize(prefix, data.length, dims);
    const name = this.fresh(prefix);
    this.initializers.push({
      name,
      dims,
      dataType: ONNX_TYPES[type],
      raw: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  /** A float32 constant; the data is stored little-endian in raw_data (the only byte order x86/ARM Node runs on). */
  addFloat(prefix: string, data: Float32Array, dims: number[]): string {
    checkSize(prefix, data.length, dims);
    const name = this.fresh(prefix);
    this.initializers.push({
      name,
      dims,
      dataType: FLOAT,
      raw: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  addInt64(prefix: string, data: number[], dims: number[] = [data.length]): string {
    checkSize(prefix, data.length, dims);
    const name = this.fresh(prefix);
    const raw = new BigInt64Array(data.map((v) => BigInt(v)));
    this.initializers.push({ name, dims, dataType: INT64, raw: new Uint8Array(raw.buffer) });
    return name;
  }

  /** Adds a node and returns its first output's name (a fresh name from `out` when given as a prefix). */
  addNode(opType: string, inputs: string[], out: string | string[], attrs: Record<string, AttrValue> = {}): string {
    const outputs = Array.isArray(out) ? out.map((o) => this.claim(o)) : [this.fresh(out)];
    this.nodes.push({ opType, inputs, outputs, attrs, name: `${opType}_${this.nodes.length}` });
    return outputs[0];
  }

  /** Serialized onnx.ModelProto. */
  toModel(opts: { producer?: string; docString?: string } = {}): Uint8Array {
    const graph = new ProtoWriter();
    for (const n of this.nodes) graph.message(1, nodeProto(n));
    graph.string(2, this.name);
    for (const t of this.initializers) graph.message(5, tensorProto(t));
    for (const v of this.inputs) graph.message(11, valueInfoProto(v));
    for (const v of this.outputs) graph.message(12, valueInfoProto(v));

    const model = new ProtoWriter();
    model.varint(1, 8); // ir_version 8 (ONNX 1.10+), understood by every onnxruntime >= 1.10
    model.string(2, opts.producer ?? 'show-attend-tell');
    if (opts.docString) model.string(6, opts.docString);
    model.message(7, graph);
    model.message(8, new ProtoWriter().string(1, '').varint(2, 13)); // opset_import: default domain, opset 13
    return model.finish();
  }

  private claim(name: string): string {
    if (this.used.has(name)) throw new Error(`ONNX graph "${this.name}": tensor name "${name}" is already used.`);
    this.used.add(name);
    return name;
  }
}

function checkSize(name: string, length: number, dims: number[]): void {
  const expected = dims.reduce((a, b) => a * b, 1);
  if (expected !== length)
    throw new Error(`Initializer "${name}": ${length} values do not fill shape [${dims.join(', ')}].`);
}

function nodeProto(n: Node): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name);
  w.string(4, n.opType);
  for (const [name, value] of Object.entries(n.attrs)) w.message(5, attributeProto(name, value));
  return w;
}

function attributeProto(name: string, value: AttrValue): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  if (typeof value === 'number') {
    if (!Number.isInteger(value))
      throw new Error(`Attribute "${name}": ${value} is not an integer; pass { float: ${value} }.`);
    w.varint(3, value).varint(20, ATTR_INT);
  } else if (typeof value === 'string') {
    w.string(4, value).varint(20, ATTR_STRING);
  } else if (Array.isArray(value)) {
    for (const v of value) w.varint(8, v);
    w.varint(20, ATTR_INTS);
  } else if ('floats' in value) {
    for (const v of value.floats) w.float(7, v);
    w.varint(20, ATTR_FLOATS);
  } else {
    w.float(2, value.float).varint(20, ATTR_FLOAT);
  }
  return w;
}

function tensorProto(t: Initializer): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.dims) w.varint(1, d);
  w.varint(2, t.dataType);
  w.string(8, t.name);
  w.bytes(9, t.raw);
  return w;
}

function valueInfoProto(v: ValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.dims)
    shape.message(1, typeof d === 'number' ? new ProtoWriter().varint(1, d) : new ProtoWriter().string(2, d));
  const tensorType = new ProtoWriter().varint(1, ONNX_TYPES[v.type]).message(2, shape);
  return new ProtoWriter().string(1, v.name).message(2, new ProtoWriter().message(1, tensorType));
}
