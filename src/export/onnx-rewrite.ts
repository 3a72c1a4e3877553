/**
 * Weight storage rewrites of serialized ONNX models (pure TypeScript, browsers included). Both work on any
 * ModelProto, ours or a user's: the protobuf is walked field by field (readFields, src/encoders/onnx/protobuf.ts)
 * and every field they do not touch is copied byte for byte.
 *
 * halfPrecisionInitializers: the float32 weights of a model as float16 + Cast (for fp16/int8 bundles: the
 * encoder's weights at half the download size, computed in float32).
 * expandStoredWeights: the inverse, when a bundle is loaded (see src/export/weights.ts for why).
 *
 * Field numbers (onnx/onnx.proto): ModelProto.graph = 7; GraphProto.node = 1, initializer = 5, input = 11;
 * TensorProto.dims = 1, data_type = 2, float_data = 4, name = 8, raw_data = 9, external_data = 13, data_location = 14;
 * NodeProto.input = 1, output = 2, op_type = 4, attribute = 5; ValueInfoProto.name = 1.
 */
import {
  concatBytes as concat,
  protoText,
  ProtoWriter,
  readFields,
  readPackedVarints,
  type ProtoField,
} from '../encoders/onnx/protobuf.js';
import { decodeHalf, encodeHalf } from '../features/fp16.js';
import { ParseError } from '../util/parse-error.js';

/** A length-delimited field's payload; any other wire type for a field ONNX declares as bytes is refused. */
function payload(f: ProtoField, what: string): Uint8Array {
  if (f.wire !== 2)
    throw new ParseError(
      `ONNX model: ${what} (field ${f.field} at byte ${f.start}) has wire type ${f.wire}, expected 2 (length-delimited)`,
    );
  return f.value as Uint8Array;
}
/** A varint field's value; any other wire type is refused. */
function varintOf(f: ProtoField, what: string): number {
  if (f.wire !== 0)
    throw new ParseError(
      `ONNX model: ${what} (field ${f.field} at byte ${f.start}) has wire type ${f.wire}, expected 0 (varint)`,
    );
  return f.value as number;
}
const text = (f: ProtoField, what: string) => protoText(payload(f, what));
/** Raw bytes as `width`-byte elements: refuses a length that is not a multiple of the element size. */
function elements(raw: Uint8Array, width: number, what: string): ArrayBuffer {
  if (raw.length % width !== 0)
    throw new ParseError(`ONNX model: ${what} has ${raw.length} bytes, not a multiple of ${width}`);
  return aligned(raw).buffer as ArrayBuffer;
}

const aligned = (raw: Uint8Array) => raw.slice(); // a copy starts at offset 0, so typed views of any width line up

/** TensorProto fields we read: its name, dims, data type and values (raw_data, or float_data for float32). */
interface TensorInfo {
  name: string;
  dims: number[];
  type: number;
  raw: Uint8Array | null;
  floats: number[];
  external: boolean;
}

function readTensor(bytes: Uint8Array): TensorInfo {
  const t: TensorInfo = { name: '', dims: [], type: 0, raw: null, floats: [], external: false };
  for (const f of readFields(bytes, 'ONNX TensorProto')) {
    if (f.field === 1 && f.wire === 0) t.dims.push(f.value as number);
    else if (f.field === 1) t.dims.push(...readPackedVarints(payload(f, 'TensorProto.dims'), 'ONNX TensorProto.dims'));
    else if (f.field === 2) t.type = varintOf(f, 'TensorProto.data_type');
    else if (f.field === 8) t.name = text(f, 'TensorProto.name');
    else if (f.field === 9) t.raw = payload(f, 'TensorProto.raw_data');
    else if (f.field === 4) {
      const v = f.wire === 5 ? (f.value as Uint8Array) : payload(f, 'TensorProto.float_data');
      for (const x of new Float32Array(elements(v, 4, 'TensorProto.float_data'))) t.floats.push(x);
    } else if (f.field === 13 || f.field === 14) t.external = true;
  }
  return t;
}

/** The name of a ValueInfoProto (graph input or output), '' when it has none. */
function valueInfoName(f: ProtoField): string {
  const name = readFields(payload(f, 'GraphProto input/output'), 'ONNX ValueInfoProto').find((x) => x.field === 1);
  return name ? text(name, 'ValueInfoProto.name') : '';
}

/** A float32 initializer's name, dims and values, or null for any other tensor (or one with external data). */
function floatTensor(bytes: Uint8Array): { name: string; dims: number[]; data: Float32Array } | null {
  const t = readTensor(bytes);
  if (t.type !== 1 || t.external) return null;
  const data = t.raw
    ? new Float32Array(elements(t.raw, 4, `the raw data of float tensor "${t.name}"`))
    : Float32Array.from(t.floats);
  return { name: t.name, dims: t.dims, data };
}

type StoredTensor = TensorInfo & { raw: Uint8Array };

/** An initializer whose values are in raw_data, or null. */
function storedTensor(bytes: Uint8Array): StoredTensor | null {
  const t = readTensor(bytes);
  return t.raw ? (t as StoredTensor) : null;
}

/** `model` with its graph (ModelProto field 7) replaced by `rewrite(graph bytes)`; every other field kept byte for byte. */
function rewriteGraph(model: Uint8Array, rewrite: (graph: Uint8Array) => Uint8Array | null): Uint8Array {
  const top = readFields(model, 'ONNX ModelProto');
  const graphField = top.find((f) => f.field === 7 && f.wire === 2);
  if (!graphField) throw new ParseError('not an ONNX model: no graph (ModelProto field 7)');
  const graph = rewrite(graphField.value as Uint8Array);
  if (graph === null) return model;
  return concat(
    top.map((f) => (f === graphField ? new ProtoWriter().bytes(7, graph).finish() : model.subarray(f.start, f.end))),
  );
}

/**
 * `model` with every float32 initializer of at least `minElements` values stored as float16 and cast back
 * by a Cast node placed before the graph's first node. Initializers that are also graph inputs are kept.
 */
export function halfPrecisionInitializers(model: Uint8Array, minElements = 1024): Uint8Array {
  return rewriteGraph(model, (graphBytes) => {
    const graph = readFields(graphBytes, 'ONNX GraphProto');
    const graphInputs = new Set(graph.filter((f) => f.field === 11).map((f) => valueInfoName(f)));
    const casts: Uint8Array[] = [];
    const parts: Uint8Array[] = [];
    const castsAt = graph.findIndex((f) => f.field === 1);
    let placeholder = -1;
    graph.forEach((f, i) => {
      if (i === castsAt) placeholder = parts.push(new Uint8Array(0)) - 1; // the Cast nodes go before the first node
      const t = f.field === 5 ? floatTensor(payload(f, 'GraphProto.initializer')) : null;
      if (!t || t.data.length < minElements || graphInputs.has(t.name)) {
        parts.push(graphBytes.subarray(f.start, f.end));
        return;
      }
      const halfName = `${t.name}__fp16`;
      const tensor = new ProtoWriter();
      for (const d of t.dims) tensor.varint(1, d);
      tensor.varint(2, 10).string(8, halfName);
      const bits = encodeHalf(t.data);
      tensor.bytes(9, new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength));
      parts.push(new ProtoWriter().message(5, tensor).finish());
      const node = new ProtoWriter()
        .string(1, halfName)
        .string(2, t.name)
        .string(3, `Cast_${halfName}`)
        .string(4, 'Cast')
        .message(5, new ProtoWriter().string(1, 'to').varint(3, 1).varint(20, 2));
      casts.push(new ProtoWriter().message(1, node).finish());
    });
    if (placeholder >= 0) parts[placeholder] = concat(casts);
    else parts.push(...casts);
    return concat(parts);
  });
}

interface NodeInfo {
  inputs: string[];
  outputs: string[];
  op: string;
  attrs: Map<string, number>;
}

function nodeInfo(bytes: Uint8Array): NodeInfo {
  const n: NodeInfo = { inputs: [], outputs: [], op: '', attrs: new Map() };
  for (const f of readFields(bytes, 'ONNX NodeProto')) {
    if (f.field === 1) n.inputs.push(text(f, 'NodeProto.input'));
    else if (f.field === 2) n.outputs.push(text(f, 'NodeProto.output'));
    else if (f.field === 4) n.op = text(f, 'NodeProto.op_type');
    else if (f.field === 5) {
      const a = readFields(payload(f, 'NodeProto.attribute'), 'ONNX AttributeProto');
      const name = a.find((x) => x.field === 1);
      const int = a.find((x) => x.field === 3);
      if (name && int) n.attrs.set(text(name, 'AttributeProto.name'), varintOf(int, 'AttributeProto.i'));
    }
  }
  return n;
}

function float32Initializer(name: string, dims: number[], data: Float32Array): Uint8Array {
  const t = new ProtoWriter();
  for (const d of dims) t.varint(1, d);
  t.varint(2, 1)
    .string(8, name)
    .bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return new ProtoWriter().message(5, t).finish();
}

/**
 * The inverse of the storage formats, done once when a graph is loaded: every `Cast(float16 initializer)` and
 * `DequantizeLinear(int8 initializer, scale, zero point)` whose inputs are all initializers becomes the float32
 * initializer it computes, so the runtime multiplies plain float32 matrices (onnxruntime does not fold these
 * nodes itself: onnxruntime-web redid them at every decoder step, 5-10x slower). Other fields are kept as they are.
 */
export function expandStoredWeights(model: Uint8Array): Uint8Array {
  return rewriteGraph(model, (graphBytes) => {
    const graph = readFields(graphBytes, 'ONNX GraphProto');
    const inits = new Map<string, StoredTensor>();
    for (const f of graph)
      if (f.field === 5) {
        const t = storedTensor(payload(f, 'GraphProto.initializer'));
        if (t) inits.set(t.name, t);
      }
    const replaced = new Map<number, Uint8Array>(); // graph field index -> the float32 initializer replacing that node
    const consumed = new Map<string, number>(); // initializer -> uses by folded nodes
    graph.forEach((f, i) => {
      if (f.field !== 1) return;
      const node = nodeInfo(payload(f, 'GraphProto.node'));
      const folded = foldNode(node, inits);
      if (!folded) return;
      replaced.set(i, float32Initializer(node.outputs[0], folded.dims, folded.data));
      for (const n of node.inputs) consumed.set(n, (consumed.get(n) ?? 0) + 1);
    });
    if (replaced.size === 0) return null;
    // drop the stored initializers that only the folded nodes read
    const uses = new Map<string, number>();
    for (const f of graph)
      if (f.field === 1)
        for (const n of nodeInfo(payload(f, 'GraphProto.node')).inputs) uses.set(n, (uses.get(n) ?? 0) + 1);
    const graphOutputs = new Set(graph.filter((f) => f.field === 12).map((f) => valueInfoName(f)));
    const parts: Uint8Array[] = [];
    const folded: Uint8Array[] = [];
    graph.forEach((f, i) => {
      if (replaced.has(i)) {
        folded.push(replaced.get(i)!);
        return;
      }
      if (f.field === 5) {
        const t = storedTensor(payload(f, 'GraphProto.initializer'));
        if (t && consumed.get(t.name) === uses.get(t.name) && !graphOutputs.has(t.name)) return;
      }
      parts.push(graphBytes.subarray(f.start, f.end));
    });
    return concat([...folded, ...parts]);
  });
}

/** The float32 value of a Cast(float16 initializer) or DequantizeLinear(int8 initializer, scale, zero point) node, else null. */
function foldNode(node: NodeInfo, inits: Map<string, StoredTensor>): { dims: number[]; data: Float32Array } | null {
  if (node.op === 'Cast' && node.attrs.get('to') === 1 && inits.get(node.inputs[0])?.type === 10) {
    const t = inits.get(node.inputs[0])!;
    return {
      dims: t.dims,
      data: decodeHalf(
        new Uint16Array(elements(t.raw, 2, `float16 tensor "${t.name}"`)),
        new Float32Array(t.raw.length / 2),
      ),
    };
  }
  if (
    node.op === 'DequantizeLinear' &&
    node.inputs.length >= 2 &&
    node.inputs.every((n) => inits.has(n)) &&
    inits.get(node.inputs[0])!.type === 3
  ) {
    const [q, s, z] = node.inputs.map((n) => inits.get(n)!);
    const values = new Int8Array(aligned(q.raw).buffer);
    const scale = new Float32Array(elements(s.raw, 4, `scale tensor "${s.name}"`));
    const zero = z ? new Int8Array(aligned(z.raw).buffer) : new Int8Array(scale.length);
    const axis = node.attrs.get('axis') ?? 1;
    const inner = q.dims.slice(axis + 1).reduce((a, b) => a * b, 1),
      channels = q.dims[axis];
    const data = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const c = scale.length === 1 ? 0 : Math.floor(i / inner) % channels;
      data[i] = (values[i] - zero[c]) * scale[c];
    }
    return { dims: q.dims, data };
  }
  return null;
}

/** The float32 initializers of a model (raw_data or float_data; external data skipped), by name. */
export function floatInitializers(model: Uint8Array): Map<string, { dims: number[]; data: Float32Array }> {
  const out = new Map<string, { dims: number[]; data: Float32Array }>();
  const graph = readFields(model).find((f) => f.field === 7 && f.wire === 2);
  if (!graph) throw new Error('not an ONNX model: no graph');
  for (const f of readFields(graph.value as Uint8Array)) {
    if (f.field !== 5) continue;
    const t = floatTensor(f.value as Uint8Array);
    if (t) out.set(t.name, { dims: t.dims, data: t.data.slice() });
  }
  return out;
}
