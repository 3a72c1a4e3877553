/**
 * Just enough of the protobuf wire format to write ONNX messages (ProtoWriter) and to walk serialized ones
 * field by field (readFields), so a rewrite can change some fields and copy every other one byte for byte.
 *
 * A message is a list of fields; each field is a key (field number << 3 | wire type) followed by
 * a varint (wire type 0), 4 little-endian bytes (type 5, float) or a length-prefixed payload
 * (type 2: strings, bytes, nested messages). Repeated scalars are written unpacked, one key per
 * value, which every protobuf parser accepts for the proto2 `onnx.proto`.
 */
import { ParseError } from '../../util/parse-error.js';
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

/** The largest field number protobuf allows (2^29 - 1). */
const MAX_FIELD = 0x1fffffff;

/**
 * Reads one varint at `pos` of `buf`: at most 10 bytes (64 bits), the 10th holding only the top bit.
 * Returns [value, next position]; values above 2^53 lose precision (no ONNX field we read is that large).
 */
function readVarint(buf: Uint8Array, pos: number, what: string): [number, number] {
  let result = 0;
  for (let i = 0; i < 10; i++) {
    if (pos + i >= buf.length) throw new ParseError(`${what}: truncated varint at byte ${pos} of ${buf.length}`);
    const byte = buf[pos + i];
    if (i === 9 && byte > 1) throw new ParseError(`${what}: varint at byte ${pos} overflows 64 bits`);
    result += (byte & 0x7f) * 2 ** (7 * i);
    if (!(byte & 0x80)) return [result, pos + i + 1];
  }
  throw new ParseError(`${what}: varint at byte ${pos} is longer than 10 bytes`);
}

/**
 * The top-level fields of a protobuf message, in order. Payloads are views into `buf`, not copies, so a nested
 * message read from a payload cannot reach past its parent. Refuses (ParseError, `what` naming the message) a
 * truncated field, a varint over 10 bytes, a length past the end of the message, field number 0 and the
 * deprecated group wire types (3, 4), which ONNX never uses.
 */
export function readFields(buf: Uint8Array, what = 'protobuf message'): ProtoField[] {
  const out: ProtoField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    let key: number;
    [key, pos] = readVarint(buf, pos, what);
    const field = Math.floor(key / 8),
      wire = key % 8;
    if (field === 0 || field > MAX_FIELD)
      throw new ParseError(`${what}: invalid field number ${field} at byte ${start}`);
    let value: number | Uint8Array;
    if (wire === 0) [value, pos] = readVarint(buf, pos, what);
    else if (wire === 1 || wire === 5) {
      const size = wire === 1 ? 8 : 4;
      if (pos + size > buf.length)
        throw new ParseError(
          `${what}: field ${field} at byte ${start} needs ${size} bytes, ${buf.length - pos} are left`,
        );
      value = buf.subarray(pos, pos + size);
      pos += size;
    } else if (wire === 2) {
      let len: number;
      [len, pos] = readVarint(buf, pos, what);
      if (len > buf.length - pos)
        throw new ParseError(
          `${what}: field ${field} at byte ${start} is ${len} bytes long, only ${buf.length - pos} are left`,
        );
      value = buf.subarray(pos, pos + len);
      pos += len;
    } else throw new ParseError(`${what}: unsupported protobuf wire type ${wire} (field ${field} at byte ${start})`);
    out.push({ field, wire, start, end: pos, value });
  }
  return out;
}

/** The values of a packed repeated varint field (e.g. TensorProto.dims written packed). */
export function readPackedVarints(b: Uint8Array, what = 'packed varints'): number[] {
  const out: number[] = [];
  let pos = 0;
  while (pos < b.length) {
    let value: number;
    [value, pos] = readVarint(b, pos, what);
    out.push(value);
  }
  return out;
}

/** A string field's UTF-8 payload as text. */
export const protoText = (b: Uint8Array) => new TextDecoder().decode(b);

/** Byte arrays back to back in one new array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
