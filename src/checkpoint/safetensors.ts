/**
 * The safetensors file format (https://github.com/huggingface/safetensors), float32 only, so a checkpoint
 * can be opened from Python with `safetensors.numpy.load_file` or `safetensors.torch.load_file`:
 *
 *   [8 bytes]  N = header length, unsigned 64-bit little-endian
 *   [N bytes]  UTF-8 JSON: { "<name>": { "dtype": "F32", "shape": [...], "data_offsets": [begin, end] }, ...,
 *                            "__metadata__": { "<key>": "<string value>" } }
 *              padded with spaces so the data starts on an 8-byte boundary
 *   [...]      raw little-endian tensor bytes; offsets are relative to the start of this block
 */
import fs from 'node:fs';
import { writeFileAtomic } from '../util/atomic-write.js';

export interface Tensor {
  shape: number[];
  data: Float32Array;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Write tensors (in the map's order) and string metadata to `file` atomically: temp file, fsync, rename. */
export function writeSafetensors(file: string, tensors: Map<string, Tensor>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(file, safetensorsChunks(tensors, metadata));
}

/** The bytes of a safetensors file of `tensors` (in the map's order) and `metadata`, as chunks written back to back. */
export function safetensorsChunks(tensors: Map<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array[] {
  const header: Record<string, HeaderEntry | Record<string, string>> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new Error(`safetensors: tensor "${name}" has shape [${t.shape}] (${count} values) but ${t.data.length} values`);
    }
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  const pad = (8 - ((8 + Buffer.byteLength(json)) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));

  // Float32Array bytes are in the platform's order; every platform Node supports is little-endian.
  const data = [...tensors.values()].map((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return [prefix, headerBytes, ...data];
}

export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** Read a float32 safetensors file. Errors name the file and what is wrong with it. */
export function readSafetensors(file: string): SafetensorsFile {
  const buf = fs.readFileSync(file);
  if (buf.length < 8) throw new Error(`${file}: too short to be a safetensors file (${buf.length} bytes)`);
  const n = Number(buf.readBigUInt64LE(0));
  if (8 + n > buf.length) throw new Error(`${file}: header length ${n} runs past the end of the file (${buf.length} bytes); the file is truncated`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  } catch (e) {
    throw new Error(`${file}: header is not valid JSON (${(e as Error).message})`);
  }
  const dataStart = 8 + n;
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = value as Record<string, string>;
      continue;
    }
    const e = value as HeaderEntry;
    if (e.dtype !== 'F32') throw new Error(`${file}: tensor "${name}" is ${e.dtype}; only F32 is supported`);
    const [begin, end] = e.data_offsets;
    const count = e.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * 4 || dataStart + end > buf.length) {
      throw new Error(`${file}: tensor "${name}" offsets [${begin}, ${end}] do not match shape [${e.shape}] or the file size`);
    }
    // Copy into a fresh, aligned array so callers own it and the file buffer can be freed.
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(buf.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, { shape: e.shape, data });
  }
  return { tensors, metadata };
}
