/**
 * Weight storage rewrites of serialized ONNX models (pure TypeScript, browsers included).
 *
 * halfPrecisionInitializers: the float32 weights of a model as float16 + Cast (for fp16/int8 bundles: the
 * encoder's weights at half the download size, computed in float32). Works on any ModelProto, ours or a
 * user's: the protobuf is walked field by field and every field we do not touch is copied byte for byte.
 *
 * Field numbers (onnx/onnx.proto): ModelProto.graph = 7; GraphProto.node = 1, initializer = 5, input = 11;
 * TensorProto.dims = 1, data_type = 2, float_data = 4, name = 8, raw_data = 9; ValueInfoProto.name = 1.
 */
import { ProtoWriter } from '../encoders/onnx/protobuf.js';
import { decodeHalf, encodeHalf } from '../features/fp16.js';

interface Field { field: number; wire: number; start: number; end: number; value: number | Uint8Array }

/** The top-level fields of a protobuf message; `value` is a varint's number or a length-delimited payload. */
function readFields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let pos = 0;
  const varint = (): number => {
    let result = 0, shift = 0, byte: number;
    do {
      if (pos >= buf.length) throw new Error('truncated protobuf');
      byte = buf[pos++];
      result += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    return result;
  };
  while (pos < buf.length) {
    const start = pos;
    const key = varint();
    const field = Math.floor(key / 8), wire = key & 7;
    let value: number | Uint8Array;
    if (wire === 0) value = varint();
    else if (wire === 1) { value = buf.subarray(pos, pos + 8); pos += 8; }
    else if (wire === 5) { value = buf.subarray(pos, pos + 4); pos += 4; }
    else if (wire === 2) { const len = varint(); value = buf.subarray(pos, pos + len); pos += len; }
    else throw new Error(`unsupported protobuf wire type ${wire}`);
    if (pos > buf.length) throw new Error('truncated protobuf');
    out.push({ field, wire, start, end: pos, value });
  }
  return out;
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** A float32 initializer's name, dims and values, or null for any other tensor. */
function floatTensor(bytes: Uint8Array): { name: string; dims: number[]; data: Float32Array } | null {
  let name = '', type = 0;
  const dims: number[] = [];
  let raw: Uint8Array | null = null;
  const floats: number[] = [];
  for (const f of readFields(bytes)) {
    if (f.field === 1 && f.wire === 0) dims.push(f.value as number);
    else if (f.field === 1 && f.wire === 2) for (const d of readPackedVarints(f.value as Uint8Array)) dims.push(d);
    else if (f.field === 2) type = f.value as number;
    else if (f.field === 8) name = text(f.value as Uint8Array);
    else if (f.field === 9) raw = f.value as Uint8Array;
    else if (f.field === 4 && f.wire === 5) floats.push(new DataView((f.value as Uint8Array).slice().buffer).getFloat32(0, true));
    else if (f.field === 4 && f.wire === 2) { const v = f.value as Uint8Array; const dv = new DataView(v.slice().buffer); for (let i = 0; i + 4 <= v.length; i += 4) floats.push(dv.getFloat32(i, true)); }
    else if (f.field === 13 || f.field === 14) return null; // external data: leave it alone
  }
  if (type !== 1) return null;
  const data = raw ? new Float32Array(raw.slice().buffer) : Float32Array.from(floats);
  return { name, dims, data };
}

function readPackedVarints(b: Uint8Array): number[] {
  const out: number[] = [];
  let pos = 0;
  while (pos < b.length) {
    let result = 0, shift = 0, byte: number;
    do { byte = b[pos++]; result += (byte & 0x7f) * 2 ** shift; shift += 7; } while (byte & 0x80);
    out.push(result);
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/**
 * `model` with every float32 initializer of at least `minElements` values stored as float16 and cast back
 * by a Cast node placed before the graph's first node. Initializers that are also graph inputs are kept.
 */
export function halfPrecisionInitializers(model: Uint8Array, minElements = 1024): Uint8Array {
  const top = readFields(model);
  const graphField = top.find((f) => f.field === 7 && f.wire === 2);
  if (!graphField) throw new Error('not an ONNX model: no graph');
  const graph = readFields(graphField.value as Uint8Array);
  const graphInputs = new Set(graph.filter((f) => f.field === 11).map((f) => {
    const name = readFields(f.value as Uint8Array).find((x) => x.field === 1);
    return name ? text(name.value as Uint8Array) : '';
  }));
  const graphBytes = graphField.value as Uint8Array;
  const casts: Uint8Array[] = [];
  const parts: Uint8Array[] = [];
  const castsAt = graph.findIndex((f) => f.field === 1);
  let placeholder = -1;
  graph.forEach((f, i) => {
    if (i === castsAt) placeholder = parts.push(new Uint8Array(0)) - 1; // the Cast nodes go before the first node
    const t = f.field === 5 ? floatTensor(f.value as Uint8Array) : null;
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
    const node = new ProtoWriter().string(1, halfName).string(2, t.name).string(3, `Cast_${halfName}`).string(4, 'Cast')
      .message(5, new ProtoWriter().string(1, 'to').varint(3, 1).varint(20, 2));
    casts.push(new ProtoWriter().message(1, node).finish());
  });
  if (placeholder >= 0) parts[placeholder] = concat(casts);
  else parts.push(...casts);
  const newGraph = concat(parts);
  const out: Uint8Array[] = [];
  for (const f of top) {
    if (f === graphField) out.push(new ProtoWriter().bytes(7, newGraph).finish());
    else out.push(model.subarray(f.start, f.end));
  }
  return concat(out);
}

interface StoredTensor { name: string; dims: number[]; type: number; raw: Uint8Array }

/** An initializer's name, dims, type and raw bytes (null when it keeps its values elsewhere than raw_data). */
function storedTensor(bytes: Uint8Array): StoredTensor | null {
  let name = '', type = 0;
  const dims: number[] = [];
  let raw: Uint8Array | null = null;
  for (const f of readFields(bytes)) {
    if (f.field === 1 && f.wire === 0) dims.push(f.value as number);
    else if (f.field === 1 && f.wire === 2) dims.push(...readPackedVarints(f.value as Uint8Array));
    else if (f.field === 2) type = f.value as number;
    else if (f.field === 8) name = text(f.value as Uint8Array);
    else if (f.field === 9) raw = f.value as Uint8Array;
  }
  return raw ? { name, dims, type, raw } : null;
}

interface NodeInfo { inputs: string[]; outputs: string[]; op: string; attrs: Map<string, number> }

function nodeInfo(bytes: Uint8Array): NodeInfo {
  const n: NodeInfo = { inputs: [], outputs: [], op: '', attrs: new Map() };
  for (const f of readFields(bytes)) {
    if (f.field === 1) n.inputs.push(text(f.value as Uint8Array));
    else if (f.field === 2) n.outputs.push(text(f.value as Uint8Array));
    else if (f.field === 4) n.op = text(f.value as Uint8Array);
    else if (f.field === 5) {
      const a = readFields(f.value as Uint8Array);
      const name = a.find((x) => x.field === 1);
      const int = a.find((x) => x.field === 3);
      if (name && int) n.attrs.set(text(name.value as Uint8Array), int.value as number);
    }
  }
  return n;
}

const aligned = (raw: Uint8Array) => raw.slice(); // a copy starts at offset 0, so typed views of any width line up

function float32Initializer(name: string, dims: number[], data: Float32Array): Uint8Array {
  const t = new ProtoWriter();
  for (const d of dims) t.varint(1, d);
  t.varint(2, 1).string(8, name).bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return new ProtoWriter().message(5, t).finish();
}

/**
 * The inverse of the storage formats, done once when a graph is loaded: every `Cast(float16 initializer)` and
 * `DequantizeLinear(int8 initializer, scale, zero point)` whose inputs are all initializers becomes the float32
 * initializer it computes, so the runtime multiplies plain float32 matrices (onnxruntime does not fold these
 * nodes itself: onnxruntime-web redid them at every decoder step, 5-10x slower). Other fields are kept as they are.
 */
export function expandStoredWeights(model: Uint8Array): Uint8Array {
  const top = readFields(model);
  const graphField = top.find((f) => f.field === 7 && f.wire === 2);
  if (!graphField) throw new Error('not an ONNX model: no graph');
  const graphBytes = graphField.value as Uint8Array;
  const graph = readFields(graphBytes);
  const inits = new Map<string, StoredTensor>();
  for (const f of graph) if (f.field === 5) { const t = storedTensor(f.value as Uint8Array); if (t) inits.set(t.name, t); }
  const replaced = new Map<number, Uint8Array>(); // graph field index -> new bytes (empty = dropped)
  const consumed = new Map<string, number>();     // initializer -> uses by folded nodes
  graph.forEach((f, i) => {
    if (f.field !== 1) return;
    const node = nodeInfo(f.value as Uint8Array);
    let data: Float32Array | null = null, dims: number[] = [];
    if (node.op === 'Cast' && node.attrs.get('to') === 1 && inits.get(node.inputs[0])?.type === 10) {
      const t = inits.get(node.inputs[0])!;
      data = decodeHalf(new Uint16Array(aligned(t.raw).buffer), new Float32Array(t.raw.length / 2));
      dims = t.dims;
    } else if (node.op === 'DequantizeLinear' && node.inputs.every((n) => inits.has(n)) && inits.get(node.inputs[0])!.type === 3) {
      const [q, s, z] = node.inputs.map((n) => inits.get(n)!);
      const values = new Int8Array(aligned(q.raw).buffer);
      const scale = new Float32Array(aligned(s.raw).buffer);
      const zero = z ? new Int8Array(aligned(z.raw).buffer) : new Int8Array(scale.length);
      const axis = node.attrs.get('axis') ?? 1;
      dims = q.dims;
      const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1), channels = dims[axis];
      data = new Float32Array(values.length);
      for (let i = 0; i < values.length; i++) {
        const c = scale.length === 1 ? 0 : Math.floor(i / inner) % channels;
        data[i] = (values[i] - zero[c]) * scale[c];
      }
    }
    if (!data) return;
    replaced.set(i, float32Initializer(node.outputs[0], dims, data));
    for (const n of node.inputs) consumed.set(n, (consumed.get(n) ?? 0) + 1);
  });
  if (replaced.size === 0) return model;
  // drop the stored initializers that only the folded nodes read
  const uses = new Map<string, number>();
  for (const f of graph) if (f.field === 1) for (const n of nodeInfo(f.value as Uint8Array).inputs) uses.set(n, (uses.get(n) ?? 0) + 1);
  const graphOutputs = new Set(graph.filter((f) => f.field === 12).map((f) => text(readFields(f.value as Uint8Array).find((x) => x.field === 1)!.value as Uint8Array)));
  const parts: Uint8Array[] = [];
  const folded: Uint8Array[] = [];
  graph.forEach((f, i) => {
    if (replaced.has(i)) { folded.push(replaced.get(i)!); return; }
    if (f.field === 5) {
      const t = storedTensor(f.value as Uint8Array);
      if (t && consumed.get(t.name) === uses.get(t.name) && !graphOutputs.has(t.name)) return;
    }
    parts.push(graphBytes.subarray(f.start, f.end));
  });
  const out: Uint8Array[] = [];
  for (const f of top) out.push(f === graphField ? new ProtoWriter().bytes(7, concat([...folded, ...parts])).finish() : model.subarray(f.start, f.end));
  return concat(out);
}
