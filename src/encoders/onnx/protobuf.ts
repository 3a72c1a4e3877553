/**
 * Just enough of the protobuf wire format to serialize ONNX messages (writing only).
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
