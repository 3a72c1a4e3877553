/**
 * Read side of the feature store (layout in format.ts): `openFeatureStore(dir)` loads only meta.json and
 * the index (~80 bytes per image: 10 MB for COCO's 123k images); each `read(id)` is one positional
 * fs.readSync of locations*channels*2 bytes from the right shard, decoded fp16 -> fp32 into the caller's
 * buffer. RAM does not grow with the store; the OS page cache does the caching.
 */
import fs from 'node:fs';
import { UserError } from '../util/errors.js';
import { decodeHalf } from './fp16.js';
import {
  assertLittleEndian,
  crc32,
  indexPath,
  parseIndex,
  readMeta,
  readSkipped,
  shardPath,
  type IndexEntry,
  type SkippedImage,
  type StoreMeta,
} from './format.js';
import type { FeatureStoreReader } from './types.js';

export class FeatureStore implements FeatureStoreReader {
  readonly locations: number;
  readonly channels: number;
  readonly encoderId: string;
  private readonly index = new Map<string, IndexEntry>();
  private readonly fds = new Map<number, number>();
  private readonly scratch: Uint16Array;
  private readonly scratchBytes: Uint8Array;

  constructor(
    readonly dir: string,
    readonly meta: StoreMeta,
  ) {
    this.locations = meta.locations;
    this.channels = meta.channels;
    this.encoderId = meta.encoderId;
    this.scratch = new Uint16Array(meta.locations * meta.channels);
    this.scratchBytes = new Uint8Array(this.scratch.buffer);
    const text = fs.existsSync(indexPath(dir)) ? fs.readFileSync(indexPath(dir)) : Buffer.alloc(0);
    // A torn tail (a writer killed mid-line, or still writing) is ignored, not repaired: readers never write.
    for (const e of parseIndex(text).entries) this.index.set(e.id, e);
  }

  ids(): string[] {
    return [...this.index.keys()];
  }

  has(id: string): boolean {
    return this.index.has(id);
  }

  get size(): number {
    return this.index.size;
  }

  /** Images the extraction could not read (skipped.json). */
  skipped(): SkippedImage[] {
    return readSkipped(this.dir);
  }

  read(id: string, out?: Float32Array, offset = 0): Float32Array {
    const n = this.locations * this.channels;
    const dst = out ?? new Float32Array(n);
    if (dst.length < offset + n)
      throw new RangeError(`read(${id}): output holds ${dst.length - offset} values after offset ${offset}, need ${n}`);
    this.readRaw(id); // fills this.scratch (its Uint16 view)
    decodeHalf(this.scratch, dst, offset, n);
    return dst;
  }

  /**
   * Re-read every record and compare its CRC-32 with the index (catches disk corruption or a store
   * copied while being written). Returns the ids that fail.
   */
  verify(onProgress?: (done: number) => void): string[] {
    const bad: string[] = [];
    let done = 0;
    for (const [id, e] of this.index) {
      if (crc32(this.readRaw(id)) !== e.crc) bad.push(id);
      onProgress?.(++done);
    }
    return bad;
  }

  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }

  /** The record's raw bytes in a scratch buffer that the next read overwrites. */
  private readRaw(id: string): Uint8Array {
    const e = this.index.get(id);
    if (!e)
      throw new UserError(
        `Image "${id}" has no features in ${this.dir}. Run \`sat features\` for this run (it resumes), or check skipped.json.`,
      );
    let fd = this.fds.get(e.shard);
    if (fd === undefined) {
      fd = fs.openSync(shardPath(this.dir, e.shard), 'r');
      this.fds.set(e.shard, fd);
    }
    const bytes = this.meta.recordBytes;
    let got = 0;
    while (got < bytes) {
      const r = fs.readSync(fd, this.scratchBytes, got, bytes - got, e.offset + got);
      if (r === 0)
        throw new Error(
          `${shardPath(this.dir, e.shard)} ends before the record of "${id}" (offset ${e.offset}): the store is damaged; re-run \`sat features\` on it.`,
        );
      got += r;
    }
    return this.scratchBytes;
  }
}

/** Open a finished (or in-progress) feature store folder for reading. */
export function openFeatureStore(dir: string): FeatureStore {
  assertLittleEndian();
  return new FeatureStore(dir, readMeta(dir));
}
