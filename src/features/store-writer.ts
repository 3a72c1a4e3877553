/**
 * Append-only, crash-safe writer for a feature store folder (layout in format.ts).
 *
 * Durability protocol, per committed batch:
 *   1. append the records to the current shard file(s), fsync them;
 *   2. only then append their index lines, fsync the index.
 * An index line therefore never points at bytes that are not on disk. On (re)open the writer keeps the
 * longest valid prefix of index.jsonl (a torn tail line fails its checksum and is cut off) and truncates
 * every shard back to the end of its last indexed record, so a kill -9 anywhere loses at most the batch
 * in flight and never leaves a corrupt entry. Extraction then continues with the images not yet indexed.
 */
import fs from 'node:fs';
import type { EncoderSpec } from '../encoders/types.js';
import { outOfSpaceError, writeAllSync, writeJsonAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import { lockFolder, type FolderLock } from '../util/folder-lock.js';
import {
  STORE_FORMAT,
  STORE_VERSION,
  assertLittleEndian,
  crc32,
  formatIndexLine,
  indexPath,
  metaPath,
  parseIndex,
  readMeta,
  shardPath,
  type IndexEntry,
  type StoreMeta,
} from './format.js';

export const DEFAULT_SHARD_MAX_BYTES = 1 << 30; // 1 GiB: a few files for COCO (32 GB), one for Flickr8k

export interface WriterOptions {
  spec: EncoderSpec;
  shardMaxBytes?: number;
  slice?: { index: number; count: number } | null;
  /** Number of images this extraction was asked for (recorded in meta.json). */
  requested: number;
}

export class FeatureStoreWriter {
  private readonly entries = new Map<string, IndexEntry>();
  private pending: { id: string; data: Uint8Array }[] = [];
  private shard = 0;
  private shardSize = 0;
  private shardFd: number | undefined;
  private indexFd: number;
  /** The error of a failed commit: the writer takes no more records. */
  private failed: Error | undefined;

  private constructor(
    readonly dir: string,
    readonly meta: StoreMeta,
    private readonly lock: FolderLock,
  ) {
    this.indexFd = -1;
  }

  /** Open `dir` for appending: create a new store, or resume one made with the same encoder and slice. */
  static open(dir: string, opts: WriterOptions): FeatureStoreWriter {
    assertLittleEndian();
    const { spec } = opts;
    const slice = opts.slice ?? null;
    fs.mkdirSync(dir, { recursive: true });
    const lock = lockStore(dir);
    try {
      let meta: StoreMeta;
      if (fs.existsSync(metaPath(dir))) {
        meta = readMeta(dir);
        checkCompatible(dir, meta, spec, slice);
        if (meta.requested !== opts.requested || meta.complete) {
          meta = { ...meta, requested: opts.requested, complete: false };
          writeJsonAtomic(metaPath(dir), meta);
        }
      } else {
        meta = {
          format: STORE_FORMAT,
          version: STORE_VERSION,
          encoderId: spec.id,
          encoder: spec,
          locations: spec.locations,
          channels: spec.channels,
          dtype: 'float16',
          byteOrder: 'little',
          recordBytes: spec.locations * spec.channels * 2,
          shardMaxBytes: Math.max(opts.shardMaxBytes ?? DEFAULT_SHARD_MAX_BYTES, spec.locations * spec.channels * 2),
          slice,
          complete: false,
          requested: opts.requested,
        };
        writeJsonAtomic(metaPath(dir), meta);
      }
      const w = new FeatureStoreWriter(dir, meta, lock);
      w.recover();
      return w;
    } catch (e) {
      lock.release();
      throw e;
    }
  }

  get count(): number {
    return this.entries.size;
  }

  has(id: string): boolean {
    return this.entries.has(id) || this.pending.some((p) => p.id === id);
  }

  ids(): string[] {
    return [...this.entries.keys()];
  }

  /** Queue one image's features (binary16 bits, [locations * channels]); durable after commit(). */
  append(id: string, halves: Uint16Array): void {
    if (halves.length !== this.meta.locations * this.meta.channels) {
      throw new Error(
        `append(${id}): got ${halves.length} values, the store holds ${this.meta.locations}x${this.meta.channels}`,
      );
    }
    if (this.has(id)) throw new Error(`append(${id}): id already stored`);
    // Copy: the caller reuses its buffers for the next batch.
    this.pending.push({
      id,
      data: new Uint8Array(halves.buffer.slice(halves.byteOffset, halves.byteOffset + halves.byteLength)),
    });
  }

  /**
   * Make every queued record durable (data fsync, then index append + fsync). If any write fails (a full disk,
   * a file-size limit) the index is cut back to its last good record and the writer refuses further commits;
   * the store then holds every record committed before, and a rerun resumes from there.
   */
  commit(): void {
    if (this.failed) throw this.failed;
    if (this.pending.length === 0) return;
    const indexBefore = fs.fstatSync(this.indexFd).size;
    const bytes = this.pending.length * this.meta.recordBytes;
    try {
      this.appendPending();
    } catch (e) {
      try {
        fs.ftruncateSync(this.indexFd, indexBefore);
        fs.fsyncSync(this.indexFd);
      } catch {
        // reopening the store cuts a torn tail too (recover)
      }
      this.pending = [];
      this.failed = outOfSpaceError(
        e,
        this.dir,
        `${bytes} bytes of features`,
        bytes,
        `the store keeps the ${this.entries.size} images committed before (a rerun resumes from there)`,
      ) as Error;
      throw this.failed;
    }
  }

  private appendPending(): void {
    const { recordBytes, shardMaxBytes } = this.meta;
    const added: IndexEntry[] = [];
    let chunk: Uint8Array[] = [];
    const flush = () => {
      if (chunk.length === 0) return;
      writeAllSync(this.currentShardFd(), Buffer.concat(chunk), this.shardSize - chunk.length * recordBytes);
      chunk = [];
    };
    const touched = new Set<number>();
    for (const p of this.pending) {
      if (this.shardSize > 0 && this.shardSize + recordBytes > shardMaxBytes) {
        flush();
        fs.fsyncSync(this.currentShardFd());
        this.nextShard();
      }
      added.push({ id: p.id, shard: this.shard, offset: this.shardSize, crc: crc32(p.data) });
      chunk.push(p.data);
      this.shardSize += recordBytes;
      touched.add(this.shard);
    }
    flush();
    fs.fsyncSync(this.currentShardFd());
    writeAllSync(this.indexFd, added.map(formatIndexLine).join(''));
    fs.fsyncSync(this.indexFd);
    for (const e of added) this.entries.set(e.id, e);
    this.pending = [];
  }

  /** Record the extraction outcome in meta.json (complete = every requested image stored or skipped). */
  markComplete(complete: boolean): void {
    const meta = { ...this.meta, complete };
    writeJsonAtomic(metaPath(this.dir), meta);
    Object.assign(this.meta, meta);
  }

  close(): void {
    if (!this.failed) this.commit();
    if (this.shardFd !== undefined) fs.closeSync(this.shardFd);
    if (this.indexFd >= 0) fs.closeSync(this.indexFd);
    this.shardFd = undefined;
    this.indexFd = -1;
    this.lock.release();
  }

  /** Cut a torn index tail and un-indexed shard bytes left by a crash; position at the append point. */
  private recover(): void {
    const iPath = indexPath(this.dir);
    const text = fs.existsSync(iPath) ? fs.readFileSync(iPath) : Buffer.alloc(0);
    const { entries, ends } = parseIndex(text);
    const { recordBytes } = this.meta;
    // The end of the indexed data in each shard; an entry beyond its shard's size (impossible with the
    // protocol above unless a disk lied about fsync) ends the trusted prefix.
    const shardEnd = new Map<number, number>();
    const sizes = new Map<number, number>();
    const sizeOf = (n: number) => {
      if (!sizes.has(n))
        sizes.set(n, fs.existsSync(shardPath(this.dir, n)) ? fs.statSync(shardPath(this.dir, n)).size : -1);
      return sizes.get(n)!;
    };
    let keepBytes = 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      if (e.offset + recordBytes > sizeOf(e.shard) || this.entries.has(e.id)) break;
      this.entries.set(e.id, e);
      shardEnd.set(e.shard, Math.max(shardEnd.get(e.shard) ?? 0, e.offset + recordBytes));
      keepBytes = ends[i];
    }
    if (keepBytes !== text.length) fs.truncateSync(iPath, keepBytes);
    // Truncate every shard file to its indexed end; the last shard present is where appending resumes.
    const shardFiles = fs
      .readdirSync(this.dir)
      .filter((f) => /^shard-\d{5}\.bin$/.test(f))
      .map((f) => Number(f.slice(6, 11)));
    const last = Math.max(0, ...shardFiles, ...shardEnd.keys());
    for (const n of shardFiles) {
      const end = shardEnd.get(n) ?? 0;
      if (sizeOf(n) === end) continue;
      // A hard link (left by an interrupted --merge) shares its bytes with a part: never truncate those.
      if (fs.statSync(shardPath(this.dir, n)).nlink > 1 && end === 0) fs.unlinkSync(shardPath(this.dir, n));
      else fs.truncateSync(shardPath(this.dir, n), end);
    }
    this.shard = last;
    this.shardSize = shardEnd.get(last) ?? 0;
    this.indexFd = fs.openSync(iPath, 'a');
  }

  private currentShardFd(): number {
    if (this.shardFd === undefined)
      this.shardFd = fs.openSync(
        shardPath(this.dir, this.shard),
        fs.existsSync(shardPath(this.dir, this.shard)) ? 'r+' : 'w+',
      );
    return this.shardFd;
  }

  private nextShard(): void {
    if (this.shardFd !== undefined) fs.closeSync(this.shardFd);
    this.shardFd = undefined;
    this.shard++;
    this.shardSize = 0;
  }
}

/**
 * One writer per store: two processes appending to the same shard would interleave records (e.g. two array
 * tasks given the same --shard index). See src/util/folder-lock.ts for stale locks and takeovers.
 */
export function lockStore(dir: string, command = 'sat features'): FolderLock {
  return lockFolder(dir, { command, file: 'writer.lock' });
}

function checkCompatible(dir: string, meta: StoreMeta, spec: EncoderSpec, slice: StoreMeta['slice']): void {
  const fix = `Delete ${dir} to extract again, or write to another folder.`;
  if (meta.encoderId !== spec.id || meta.locations !== spec.locations || meta.channels !== spec.channels) {
    throw new UserError(
      `${dir} holds features of encoder "${meta.encoderId}" (${meta.locations}x${meta.channels}), ` +
        `not "${spec.id}" (${spec.locations}x${spec.channels}). ${fix}`,
    );
  }
  const a = meta.slice ? `${meta.slice.index}/${meta.slice.count}` : 'all';
  const b = slice ? `${slice.index}/${slice.count}` : 'all';
  if (a !== b) throw new UserError(`${dir} was extracted for slice ${a}, not ${b}. ${fix}`);
}
