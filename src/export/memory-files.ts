/**
 * A caption memory (src/decode/consensus.ts) as two bundle files, so consensus reranking works wherever the bundle
 * goes (onnxruntime-node, the browser, `sat serve`). Pure: no Node built-ins.
 *
 *   memory-vectors.bin     [M] float32 scales, then [M, C] int8: each memory image's pooled, L2-normalised
 *                          features as int8 x its row's scale (max |value| / 127), little-endian
 *   memory-captions.json   [M][>= 1] strings: each memory image's PTB-tokenised captions
 *
 * The manifest's `memory` entry names them and gives M, C and the encoder they come from.
 */
import { CaptionMemory, type CaptionMemoryData } from '../decode/consensus.js';

export const MEMORY_FILES = { vectors: 'memory-vectors.bin', captions: 'memory-captions.json' } as const;

/** The manifest's `memory` entry. */
export interface BundleMemory {
  vectors: string;
  captions: string;
  images: number; // M
  channels: number; // C
  encoderId: string;
  dtype: 'int8';
  /** The run it was built from (its folder name) and split, for people. */
  source: { run: string | null; split: string };
}

/** The memory's two files and its manifest entry. */
export function memoryBundleFiles(
  data: CaptionMemoryData,
  source: BundleMemory['source'],
): { entry: BundleMemory; files: Map<string, Uint8Array> } {
  const vectors = quantiseRows(data.vectors, data.captions.length, data.channels);
  const captions = new TextEncoder().encode(JSON.stringify(data.captions));
  return {
    entry: {
      vectors: MEMORY_FILES.vectors,
      captions: MEMORY_FILES.captions,
      images: data.captions.length,
      channels: data.channels,
      encoderId: data.encoderId,
      dtype: 'int8',
      source,
    },
    files: new Map([
      [MEMORY_FILES.vectors, vectors],
      [MEMORY_FILES.captions, captions],
    ]),
  };
}

/** The problems of a manifest's `memory` entry against the bundle's encoder (none when it is sound). */
export function memoryEntryProblems(
  m: unknown,
  encoder: { id: string; channels: number },
  files: Record<string, unknown>,
): string[] {
  const e = m as Partial<BundleMemory> | null;
  if (!e || typeof e !== 'object' || Array.isArray(e)) return ['memory is not an object'];
  const problems: string[] = [];
  if (!Number.isInteger(e.images) || (e.images as number) < 1)
    problems.push(`memory.images ${JSON.stringify(e.images)}`);
  if (e.channels !== encoder.channels)
    problems.push(`memory.channels ${JSON.stringify(e.channels)}, the encoder gives ${encoder.channels}`);
  if (e.encoderId !== encoder.id)
    problems.push(`memory.encoderId ${JSON.stringify(e.encoderId)}, the bundle's encoder is ${encoder.id}`);
  if (e.dtype !== 'int8') problems.push(`memory.dtype ${JSON.stringify(e.dtype)} (expected "int8")`);
  for (const key of ['vectors', 'captions'] as const)
    if (typeof e[key] !== 'string' || !files[e[key] as string]) problems.push(`memory.${key} file is not listed`);
  return problems;
}

/** The bundle's caption memory, from its checked manifest entry and file bytes. */
export function readBundleMemory(entry: BundleMemory, files: ReadonlyMap<string, Uint8Array>): CaptionMemory {
  const raw = files.get(entry.vectors),
    text = files.get(entry.captions);
  if (!raw || !text) throw new Error('the bundle lacks its caption memory files; export it again with --memory RUN.');
  const M = entry.images,
    C = entry.channels;
  if (raw.byteLength !== M * 4 + M * C)
    throw new Error(
      `${entry.vectors} holds ${raw.byteLength} bytes, expected ${M} scales and ${M} x ${C} int8 values.`,
    );
  const vectors = dequantiseRows(raw, M, C);
  const captions = JSON.parse(new TextDecoder().decode(text)) as unknown;
  if (
    !Array.isArray(captions) ||
    captions.length !== M ||
    !captions.every((c) => Array.isArray(c) && c.length > 0 && c.every((s) => typeof s === 'string'))
  )
    throw new Error(
      `${entry.captions} must hold ${M} lists of caption strings; export the bundle again with --memory RUN.`,
    );
  return new CaptionMemory({ encoderId: entry.encoderId, channels: C, vectors, captions: captions as string[][] });
}

/** [M, C] float32 -> [M] float32 scales (max |value| / 127 of each row) then [M, C] int8, little-endian. */
export function quantiseRows(vectors: Float32Array, M: number, C: number): Uint8Array {
  const out = new Uint8Array(M * 4 + M * C);
  const view = new DataView(out.buffer);
  const values = new Int8Array(out.buffer, M * 4, M * C);
  for (let j = 0; j < M; j++) {
    const row = vectors.subarray(j * C, (j + 1) * C);
    let max = 0;
    for (let c = 0; c < C; c++) max = Math.max(max, Math.abs(row[c]));
    const scale = max / 127;
    view.setFloat32(j * 4, scale, true);
    if (scale > 0) for (let c = 0; c < C; c++) values[j * C + c] = Math.round(row[c] / scale);
  }
  return out;
}

/** The inverse of quantiseRows: [M, C] float32. */
export function dequantiseRows(bytes: Uint8Array, M: number, C: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values = new Int8Array(bytes.buffer, bytes.byteOffset + M * 4, M * C);
  const out = new Float32Array(M * C);
  for (let j = 0; j < M; j++) {
    const scale = view.getFloat32(j * 4, true);
    for (let c = 0; c < C; c++) out[j * C + c] = values[j * C + c] * scale;
  }
  return out;
}
