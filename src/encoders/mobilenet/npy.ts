import * as fs from 'node:fs';
import { ParseError } from '../../util/parse-error.js';

/**
 * NumPy .npy files (format versions 1-3), float32 little-endian in C order only — what our weight folders hold.
 * Layout: "\x93NUMPY", major, minor, header length (uint16 LE for v1, uint32 LE for v2/3), then an ASCII
 * Python dict like {'descr': '<f4', 'fortran_order': False, 'shape': (32, 3, 3, 3), } and the raw data.
 */
export interface NpyArray {
  data: Float32Array;
  shape: number[];
}

/**
 * Parses .npy bytes (`name` in errors). Checked before anything is copied: the magic, a known format version,
 * the header inside the file, the dtype and order, a shape of non-negative integers, and a data block of
 * exactly the shape's size. Every refusal is a ParseError.
 */
export function parseNpy(bytes: Uint8Array, name = 'array'): NpyArray {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b))
    throw new ParseError(`${name} is not a .npy file (bad magic).`);
  const major = bytes[6];
  if (major < 1 || major > 3)
    throw new ParseError(`${name}: .npy format version ${major}.${bytes[7]} is not supported (1.0 to 3.0).`);
  if (major > 1 && bytes.length < 12) throw new ParseError(`${name}: the .npy header is truncated.`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [headerLen, headerStart] = major === 1 ? [view.getUint16(8, true), 10] : [view.getUint32(8, true), 12];
  if (headerStart + headerLen > bytes.length)
    throw new ParseError(
      `${name}: the .npy header (${headerLen} bytes) runs past the end of the ${bytes.length}-byte file.`,
    );
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(
    bytes.subarray(headerStart, headerStart + headerLen),
  );
  const descr = /'descr':\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined)
    throw new ParseError(`${name}: cannot parse .npy header ${JSON.stringify(header.slice(0, 200))}.`);
  if (descr !== '<f4')
    throw new ParseError(`${name}: dtype ${descr} is not supported (float32 little-endian '<f4' only).`);
  if (fortran === 'True') throw new ParseError(`${name}: Fortran-order arrays are not supported (save with C order).`);
  const dims = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (!dims.every((d) => /^\d{1,15}$/.test(d)))
    throw new ParseError(`${name}: .npy shape (${shapeText}) is not a tuple of non-negative integers.`);
  const shape = dims.map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = headerStart + headerLen;
  if (bytes.length - dataStart !== count * 4) {
    throw new ParseError(
      `${name}: header shape (${shape.join(', ')}) needs ${count * 4} data bytes, the file has ${bytes.length - dataStart}.`,
    );
  }
  // Copy into a fresh, aligned buffer (the data offset is not necessarily a multiple of 4).
  const data = new Float32Array(count);
  new Uint8Array(data.buffer).set(bytes.subarray(dataStart));
  return { data, shape };
}

export function readNpy(file: string): NpyArray {
  return parseNpy(new Uint8Array(fs.readFileSync(file)), file);
}

/** Serializes a float32 C-order array as .npy version 1.0 (for tests and caches). */
export function encodeNpy(a: NpyArray): Uint8Array {
  const shape = a.shape.length === 1 ? `(${a.shape[0]},)` : `(${a.shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1; // + '\n'
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n'; // data starts 64-byte aligned
  const out = new Uint8Array(10 + header.length + a.data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength), 10 + header.length);
  return out;
}
