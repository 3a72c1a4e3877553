/**
 * Rewrites the float32 weights of a serialized ONNX model as float16 + Cast (for fp16/int8 bundles: the
 * encoder's weights at half the download size, computed in float32). Works on any ModelProto, ours or a
 * user's: the protobuf is walked field by field and every field we do not touch is copied byte for byte.
 *
 * Field numbers (onnx/onnx.proto): ModelProto.graph = 7; GraphProto.node = 1, initializer = 5, input = 11;
 * TensorProto.dims = 1, data_type = 2, float_data = 4, name = 8, raw_data = 9; ValueInfoProto.name = 1.
 */
import { ProtoWriter } from '../encoders/onnx/protobuf.js';
import { encodeHalf } from '../features/fp16.js';

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
