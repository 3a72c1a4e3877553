/**
 * On-disk layout of a feature store folder (written by store-writer.ts, read by store.ts):
 *
 *   meta.json          StoreMeta: encoder spec, [locations, channels], dtype float16 little-endian,
 *                      bytes per record, shard size cap, the slice this part covers, `complete` flag
 *   shard-00000.bin    append-only records, each locations*channels binary16 values (row-major
 *   shard-00001.bin    [locations][channels], the decoder's layout), packed back to back, no headers
 *   index.jsonl        one line per stored image, appended after its record is on disk:
 *                        {"id":"1000268201_693b08cb0e.jpg","shard":0,"offset":0,"crc":3735928559}\t1a2b3c4d
 *                      `crc` is the CRC-32 of the record's bytes; the hex after the tab is the CRC-32 of the
 *                      JSON text, so a line torn by a crash (kill -9, power loss) is recognised and ignored.
 *   skipped.json       images that could not be read, with the reason (see extract.ts)
 *   parts/             `--shard i/n` outputs, one complete store each, until `--merge` folds them in
 *
 * Records have a fixed size, so an index entry needs no shape: the shape is in meta.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { EncoderSpec } from '../encoders/types.js';
import { UserError } from '../util/errors.js';

export const STORE_FORMAT = 'sat-feature-store';
export const STORE_VERSION = 1;

export interface StoreMeta {
  format: typeof STORE_FORMAT;
  version: number;
  encoderId: string;
  encoder: EncoderSpec;
  locations: number;
  channels: number;
  dtype: 'float16';
  byteOrder: 'little';
  /** locations * channels * 2 */
  recordBytes: number;
  /** A new shard file starts when the current one would grow past this. */
  shardMaxBytes: number;
  /** The deterministic slice of the run's image list this store covers (`--shard index/count`); null = all. */
  slice: { index: number; count: number } | null;
  /** True once every image of the slice was either stored or reported in skipped.json. */
  complete: boolean;
  /** Image count the extraction was asked for (after de-duplication). */
  requested: number;
}

export interface IndexEntry {
  id: string;
  shard: number;
  offset: number;
  /** CRC-32 of the record bytes. */
  crc: number;
}

export interface SkippedImage {
  id: string;
  path: string;
  /** missing | not-an-image | too-large | corrupt | error */
  kind: string;
  /** The message shown to the user: file, what is wrong, the decoder's own words. */
  reason: string;
}

export const metaPath = (dir: string) => path.join(dir, 'meta.json');
export const indexPath = (dir: string) => path.join(dir, 'index.jsonl');
export const skippedPath = (dir: string) => path.join(dir, 'skipped.json');
export const partsDir = (dir: string) => path.join(dir, 'parts');
export const shardName = (n: number) => `shard-${String(n).padStart(5, '0')}.bin`;
export const shardPath = (dir: string, n: number) => path.join(dir, shardName(n));
export const partName = (index: number, count: number) =>
  `${String(index).padStart(5, '0')}-of-${String(count).padStart(5, '0')}`;

export function crc32(data: Uint8Array | string): number {
  return zlib.crc32(data) >>> 0;
}

export function formatIndexLine(e: IndexEntry): string {
  const json = JSON.stringify({ id: e.id, shard: e.shard, offset: e.offset, crc: e.crc });
  return `${json}\t${crc32(json).toString(16).padStart(8, '0')}\n`;
}

/**
 * Parse index.jsonl text. Returns the valid entries and the byte length of the valid prefix; parsing stops
 * at the first torn or corrupt line (a crash can only tear the tail, so anything after it is not trusted).
 */
export function parseIndex(text: Buffer): { entries: IndexEntry[]; ends: number[]; validBytes: number } {
  const entries: IndexEntry[] = [];
  const ends: number[] = []; // byte offset just past each entry's line
  let pos = 0;
  while (pos < text.length) {
    const nl = text.indexOf(0x0a, pos);
    if (nl < 0) break; // torn last line: no newline yet
    const line = text.toString('utf8', pos, nl);
    const tab = line.lastIndexOf('\t');
    if (tab < 0) break;
    const json = line.slice(0, tab);
    if (line.slice(tab + 1) !== crc32(json).toString(16).padStart(8, '0')) break;
    let e: IndexEntry;
    try {
      e = JSON.parse(json) as IndexEntry;
    } catch {
      break;
    }
    if (
      typeof e.id !== 'string' ||
      !Number.isInteger(e.shard) ||
      !Number.isInteger(e.offset) ||
      !Number.isInteger(e.crc)
    )
      break;
    entries.push(e);
    pos = nl + 1;
    ends.push(pos);
  }
  return { entries, ends, validBytes: pos };
}

export function readMeta(dir: string): StoreMeta {
  const file = metaPath(dir);
  let meta: StoreMeta;
  try {
    meta = JSON.parse(fs.readFileSync(file, 'utf8')) as StoreMeta;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      const parts = fs.existsSync(partsDir(dir)) ? fs.readdirSync(partsDir(dir)).length : 0;
      throw new UserError(
        parts > 0
          ? `${dir} holds ${parts} unmerged feature-store part(s) (from --shard i/n) but no merged store. ` +
              'Run `sat features --run RUN --merge` once every part has finished.'
          : `No feature store at ${dir} (missing meta.json). Run \`sat features --run RUN\` first.`,
      );
    }
    throw new UserError(
      `Cannot read ${file}: ${(e as Error).message}. The feature store is damaged; delete ${dir} and extract again.`,
    );
  }
  if (meta.format !== STORE_FORMAT || meta.version !== STORE_VERSION) {
    throw new UserError(
      `${file} is not a version-${STORE_VERSION} ${STORE_FORMAT} (format "${meta.format}", version ${meta.version}).`,
    );
  }
  if (
    meta.dtype !== 'float16' ||
    meta.byteOrder !== 'little' ||
    meta.recordBytes !== meta.locations * meta.channels * 2
  ) {
    throw new UserError(
      `${file} describes an unsupported record layout (dtype ${meta.dtype}, ${meta.byteOrder}-endian, ${meta.recordBytes} bytes per record).`,
    );
  }
  return meta;
}

export function readSkipped(dir: string): SkippedImage[] {
  try {
    return JSON.parse(fs.readFileSync(skippedPath(dir), 'utf8')) as SkippedImage[];
  } catch {
    return [];
  }
}

/** Host byte order check: records are little-endian binary16 read through a Uint16Array view. */
export function assertLittleEndian(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new Error('The feature store reads binary16 through typed-array views and needs a little-endian CPU.');
  }
}
