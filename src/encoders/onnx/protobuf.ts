/**
 * Just enough of the protobuf wire format to write ONNX messages (ProtoWriter) and to walk serialized ones
 * field by field (readFields), so a rewrite can change some fields and copy every other one byte for byte.
 *
 * A message is a list of fields; each field is a key (field number << 3 | wire type) followed by
 * a varint (wire type 0), 4 little-endian bytes (type 5, float) or a length-prefixed payload
 * (type 2: strings, bytes, nested messages). Repeated scalars are written unpacked, one key per
 * value, which every protobuf parser accepts for the proto2 `onnx.proto`.
 */
export class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private length = 0;

  /** Varint field (int32, int64, enum, bool). Negative numbers take 10 bytes (64-bit two's complement). */
  varint(field: number, value: number | bigint): this {
    this.key(field, 0);
    this.rawVarint(value);
    return this;
  }

  /** float field (wire type 5, IEEE-754 single precision). */
  float(field: number, value: number): this {
    this.key(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  /** Length-delimited field; `value` is referenced, not copied, until `finish()`. */
  bytes(field: number, value: Uint8Array): this {
    this.key(field, 2);
    this.rawVarint(value.length);
    this.push(value);
    return this;
  }

  /** Nested message: its chunks are appended by reference, so large tensors are copied once, in `finish()`. */
  message(field: number, value: ProtoWriter): this {
    this.key(field, 2);
    this.rawVarint(value.length);
    for (const c of value.chunks) this.push(c);
    return this;
  }

  /** The serialized message, concatenated once. */
  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const c of this.chunks) {
      out.set(c, offset);
      offset += c.length;
    }
    return out;
  }

  private key(field: number, wireType: number): void {
    this.rawVarint((field << 3) | wireType);
  }

  private rawVarint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    const bytes: number[] = [];
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) byte |= 0x80;
      bytes.push(byte);
    } while (v !== 0n);
    this.push(Uint8Array.from(bytes));
  }

  private push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }
}

/** One top-level field of a serialized message: bytes [start, end) of the buffer, key included. */
export interface ProtoField {
  field: number;
  wire: number;
  start: number;
  end: number;
  /** A varint's number (wire type 0) or the payload (1: 8 bytes, 2: length-delimited, 5: 4 bytes). */
  value: number | Uint8Array;
}

/** The top-level fields of a protobuf message, in order. Payloads are views into `buf`, not copies. */
export function readFields(buf: Uint8Array): ProtoField[] {
  const out: ProtoField[] = [];
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

/** The values of a packed repeated varint field (e.g. TensorProto.dims written packed). */
export function readPackedVarints(b: Uint8Array): number[] {
  const out: number[] = [];
  let pos = 0;
  while (pos < b.length) {
    let result = 0, shift = 0, byte: number;
    do {
      if (pos >= b.length) throw new Error('truncated protobuf');
      byte = b[pos++];
      result += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    out.push(result);
  }
  return out;
}

/** A string field's UTF-8 payload as text. */
export const protoText = (b: Uint8Array) => new TextDecoder().decode(b);

/** Byte arrays back to back in one new array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}
