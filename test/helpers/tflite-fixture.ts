/**
 * A minimal FlatBuffer writer and a TFLite model built with it, and a ustar writer, for the TFLite and tar
 * readers' tests and fuzz seeds.
 */
import { CONV_2D } from '../../src/encoders/mobilenet/tflite.js';

// ---- a minimal FlatBuffer writer (front to back: every uoffset points forward, as the format requires) ----
type Scalar = { u8: number } | { i32: number } | { u32: number };
type Fb =
  | { table: (Fb | Scalar | undefined)[] }
  | { tables: Fb[] }
  | { ints: number[] }
  | { bytes: Uint8Array }
  | { string: string };

export class FbWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): number {
    while (this.length + n > this.buf.length) {
      const bigger = new Uint8Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
      this.view = new DataView(bigger.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  private align() {
    this.reserve((4 - (this.length % 4)) % 4);
  }
  u16(at: number, v: number) {
    this.view.setUint16(at, v, true);
  }
  u32(at: number, v: number) {
    this.view.setUint32(at, v, true);
  }

  /** Writes `node` (and everything below it) at the end; returns its position. */
  write(node: Fb): number {
    this.align();
    if ('table' in node) {
      const present = node.table.map((f, i) => [f, i] as const).filter(([f]) => f !== undefined);
      const vt = this.reserve(4 + 2 * node.table.length);
      this.u16(vt, 4 + 2 * node.table.length);
      this.u16(vt + 2, 4 + 4 * present.length);
      this.align();
      const pos = this.reserve(4 + 4 * present.length);
      this.view.setInt32(pos, pos - vt, true); // vtable = table - soffset
      const children: [number, Fb][] = [];
      present.forEach(([f, i], k) => {
        const slot = pos + 4 + 4 * k;
        this.u16(vt + 4 + 2 * i, 4 + 4 * k);
        if ('u8' in f!) this.view.setUint8(slot, f.u8);
        else if ('i32' in f!) this.view.setInt32(slot, f.i32, true);
        else if ('u32' in f!) this.u32(slot, f.u32);
        else children.push([slot, f as Fb]);
      });
      for (const [slot, child] of children) this.u32(slot, this.write(child) - slot);
      return pos;
    }
    if ('tables' in node) {
      const pos = this.reserve(4 + 4 * node.tables.length);
      this.u32(pos, node.tables.length);
      node.tables.forEach((t, i) => {
        const slot = pos + 4 + 4 * i;
        this.u32(slot, this.write(t) - slot);
      });
      return pos;
    }
    const data =
      'ints' in node
        ? new Uint8Array(Int32Array.from(node.ints).buffer)
        : 'bytes' in node
          ? node.bytes
          : new TextEncoder().encode(node.string + '\0');
    const pos = this.reserve(4 + data.length);
    this.u32(pos, 'string' in node ? data.length - 1 : 'ints' in node ? node.ints.length : data.length);
    this.buf.set(data, pos + 4);
    return pos;
  }

  /** A file: root offset, the identifier, then the root table. */
  static file(root: Fb, ident: string): Uint8Array {
    const w = new FbWriter();
    w.reserve(8);
    w.buf.set(new TextEncoder().encode(ident), 4);
    w.u32(0, w.write(root));
    return w.buf.slice(0, w.length);
  }
}

export interface TfTensor {
  name: string;
  shape: number[];
  data?: Float32Array;
  type?: number;
}

/** A TFLite Model: operator codes (CONV_2D through the old byte field, the others through builtin_code). */
export function tfliteModel(
  tensors: TfTensor[],
  ops: { code: number; inputs: number[]; outputs: number[] }[],
): Uint8Array {
  const codes = [...new Set(ops.map((o) => o.code))];
  const buffers: Fb[] = [{ table: [] }]; // buffer 0: empty, by convention
  const tensorTables = tensors.map((t): Fb => {
    let buffer = 0;
    if (t.data) {
      buffers.push({ table: [{ bytes: new Uint8Array(t.data.buffer) }] });
      buffer = buffers.length - 1;
    }
    return { table: [{ ints: t.shape }, { u8: t.type ?? 0 }, { u32: buffer }, { string: t.name }] };
  });
  return FbWriter.file(
    {
      table: [
        { u32: 3 },
        {
          tables: codes.map((c): Fb => ({
            table: c === CONV_2D ? [{ u8: c }] : [{ u8: 0 }, undefined, { i32: 1 }, { i32: c }],
          })),
        },
        {
          tables: [
            {
              table: [
                { tables: tensorTables },
                { ints: [0] },
                { ints: [tensors.length - 1] },
                {
                  tables: ops.map((o): Fb => ({
                    table: [{ u32: codes.indexOf(o.code) }, { ints: o.inputs }, { ints: o.outputs }],
                  })),
                },
              ],
            },
          ],
        },
        { string: 'test model' },
        { tables: buffers },
      ],
    },
    'TFL3',
  );
}

/** A ustar archive of regular files. */
export function tarFile(entries: { name: string; data: Uint8Array }[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const e of entries) {
    const h = new Uint8Array(512);
    const put = (at: number, s: string) => h.set(new TextEncoder().encode(s), at);
    put(0, e.name);
    put(100, '0000644\0');
    put(124, e.data.length.toString(8).padStart(11, '0') + '\0');
    put(156, '0');
    put(257, 'ustar\0' + '00');
    put(148, '        ');
    put(
      148,
      h
        .reduce((a, b) => a + b, 0)
        .toString(8)
        .padStart(6, '0') + '\0 ',
    );
    blocks.push(h, e.data, new Uint8Array((512 - (e.data.length % 512)) % 512));
  }
  blocks.push(new Uint8Array(1024));
  return new Uint8Array(Buffer.concat(blocks));
}
