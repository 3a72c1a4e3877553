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
import { ParseError } from '../util/parse-error.js';

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
export function writeSafetensors(
  file: string,
  tensors: Map<string, Tensor>,
  metadata: Record<string, string> = {},
): void {
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
      throw new Error(
        `safetensors: tensor "${name}" has shape [${t.shape}] (${count} values) but ${t.data.length} values`,
      );
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

/** Bytes per element of every dtype the format defines (the reader returns F32 tensors only). */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

export interface SafetensorsLimits {
  /** Refuse a JSON header longer than this (default 100 MB, the reference implementation's limit). */
  maxHeaderBytes?: number;
}
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

/** Read a float32 safetensors file. Errors name the file and what is wrong with it. */
export function readSafetensors(file: string, limits: SafetensorsLimits = {}): SafetensorsFile {
  return parseSafetensors(fs.readFileSync(file), file, limits);
}

/**
 * Parse safetensors bytes (`file` names them in errors). The header is checked before any tensor is copied:
 * a bounded length; a JSON object; string metadata; for each tensor a known dtype, a shape of non-negative
 * integers and integer offsets whose span is exactly dtype size x element count; sorted by offset, the tensors
 * must start at 0, follow each other with no gap or overlap and end exactly at the end of the file.
 * Every refusal is a ParseError.
 */
export function parseSafetensors(buf: Uint8Array, file: string, limits: SafetensorsLimits = {}): SafetensorsFile {
  const bad = (what: string) =>
    new ParseError(
      `${file}: ${what}; the file is damaged or not a safetensors file (save it again, or copy it again).`,
    );
  if (buf.length < 8) throw bad(`too short to be a safetensors file (${buf.length} bytes)`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = view.getBigUint64(0, true);
  const maxHeader = limits.maxHeaderBytes ?? SAFETENSORS_MAX_HEADER_BYTES;
  if (n > BigInt(maxHeader)) throw bad(`header length ${n} is over the limit of ${maxHeader} bytes`);
  const headerLen = Number(n);
  if (8 + headerLen > buf.length)
    throw bad(`header length ${headerLen} runs past the end of the file (${buf.length} bytes); the file is truncated`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + headerLen)));
  } catch (e) {
    throw bad(`header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!isRecord(header)) throw bad('header is not a JSON object');
  const dataStart = 8 + headerLen,
    dataLength = buf.length - dataStart;
  const entries: { name: string; dtype: string; shape: number[]; begin: number; end: number }[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isRecord(value) || !Object.values(value).every((v) => typeof v === 'string'))
        throw bad('__metadata__ is not an object of strings');
      metadata = value as Record<string, string>;
      continue;
    }
    entries.push({ name, ...checkEntry(name, value, bad) });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expectedBegin = 0;
  for (const e of entries) {
    if (e.begin !== expectedBegin) {
      throw bad(
        e.begin < expectedBegin
          ? `tensor "${e.name}" at [${e.begin}, ${e.end}] overlaps the tensor before it (which ends at ${expectedBegin})`
          : `the bytes [${expectedBegin}, ${e.begin}) before tensor "${e.name}" belong to no tensor`,
      );
    }
    expectedBegin = e.end;
  }
  if (expectedBegin !== dataLength) {
    throw bad(
      expectedBegin > dataLength
        ? `the tensors need ${expectedBegin} data bytes but the file has ${dataLength}; the file is truncated`
        : `the file has ${dataLength - expectedBegin} bytes after the last tensor`,
    );
  }
  const tensors = new Map<string, Tensor>();
  for (const e of entries) {
    if (e.dtype !== 'F32')
      throw new ParseError(
        `${file}: tensor "${e.name}" is ${e.dtype}; only F32 is supported (convert the file to float32).`,
      );
    // Copy into a fresh, aligned array so callers own it and the file buffer can be freed.
    const data = new Float32Array((e.end - e.begin) / 4);
    new Uint8Array(data.buffer).set(buf.subarray(dataStart + e.begin, dataStart + e.end));
    tensors.set(e.name, { shape: e.shape, data });
  }
  // Keep the header's order (the order the tensors were written in), not the offsets' order.
  const ordered = new Map<string, Tensor>();
  for (const name of Object.keys(header)) if (tensors.has(name)) ordered.set(name, tensors.get(name)!);
  return { tensors: ordered, metadata };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** One header entry's dtype, shape and offsets, each checked. */
function checkEntry(
  name: string,
  value: unknown,
  bad: (what: string) => Error,
): { dtype: string; shape: number[]; begin: number; end: number } {
  if (!isRecord(value)) throw bad(`tensor "${name}" is not an object`);
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype))
    throw bad(`tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || !shape.every(isCount))
    throw bad(`tensor "${name}" has shape ${JSON.stringify(shape)}, not a list of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    throw bad(`tensor "${name}" has data_offsets ${JSON.stringify(offsets)}, not [begin, end] with 0 <= begin <= end`);
  }
  let bytes = DTYPE_BYTES[dtype];
  for (const d of shape as number[]) {
    bytes *= d;
    if (!Number.isSafeInteger(bytes)) throw bad(`tensor "${name}" of shape [${shape}] is too large`);
  }
  const [begin, end] = offsets as number[];
  if (end - begin !== bytes)
    throw bad(
      `tensor "${name}" (${dtype} [${shape}], ${bytes} bytes) has data_offsets [${begin}, ${end}] (${end - begin} bytes)`,
    );
  return { dtype, shape: shape as number[], begin, end };
}
