/**
 * A streaming zip reader (no dependency): parses the central directory, including ZIP64 (COCO's
 * train2014.zip is 13 GB), and extracts stored (method 0) and deflated (method 8) entries through
 * node:zlib's raw inflate, checking each entry's size and CRC-32 so a corrupt archive is caught.
 *
 * Layout reminder: [local header + data]* [central directory] [zip64 EOCD record + locator]? [EOCD]
 */
import fs from 'node:fs';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { ProgressBar } from '../util/progress.js';
import { UserError } from '../util/errors.js';

export interface ZipEntry {
  name: string;
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  /** Offset of the entry's local header. */
  localOffset: number;
  isDirectory: boolean;
}

const SIG_EOCD = 0x06054b50, SIG_ZIP64_LOCATOR = 0x07064b50, SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50, SIG_LOCAL = 0x04034b50;
const MAX32 = 0xffffffff;

function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const n = fs.readSync(fd, buf, 0, length, position);
  return buf.subarray(0, n);
}

/** List the entries of a zip file from its central directory. */
export function listZip(file: string): ZipEntry[] {
  const fd = fs.openSync(file, 'r');
  try {
    const fileSize = fs.fstatSync(fd).size;
    // The EOCD record (22 bytes + comment up to 64 KiB) is at the very end.
    const tailLen = Math.min(fileSize, 22 + 0xffff);
    const tail = readAt(fd, fileSize - tailLen, tailLen);
    let eocd = -1;
    for (let i = tail.length - 22; i >= 0; i--) if (tail.readUInt32LE(i) === SIG_EOCD) { eocd = i; break; }
    if (eocd < 0) throw new UserError(`${file} is not a zip file (no end-of-central-directory record); it may be truncated or corrupt: delete it and download again.`);
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    const locatorPos = fileSize - tailLen + eocd - 20;
    if (locatorPos >= 0 && readAt(fd, locatorPos, 4).readUInt32LE(0) === SIG_ZIP64_LOCATOR) {
      const z64Offset = Number(readAt(fd, locatorPos + 8, 8).readBigUInt64LE(0));
      const rec = readAt(fd, z64Offset, 56);
      if (rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) throw new UserError(`${file}: bad ZIP64 end record; the archive is corrupt.`);
      count = Number(rec.readBigUInt64LE(32));
      cdSize = Number(rec.readBigUInt64LE(40));
      cdOffset = Number(rec.readBigUInt64LE(48));
    }
    const cd = readAt(fd, cdOffset, cdSize);
    const entries: ZipEntry[] = [];
    let p = 0;
    for (let k = 0; k < count; k++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) throw new UserError(`${file}: central directory entry ${k} is corrupt; delete the file and download again.`);
      const method = cd.readUInt16LE(p + 10);
      const crc32 = cd.readUInt32LE(p + 16);
      let compressedSize = cd.readUInt32LE(p + 20);
      let size = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28), extraLen = cd.readUInt16LE(p + 30), commentLen = cd.readUInt16LE(p + 32);
      let localOffset = cd.readUInt32LE(p + 42);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      // ZIP64 extra field (id 1): the 64-bit values of whichever fields were 0xFFFFFFFF, in this order.
      let e = p + 46 + nameLen;
      const extraEnd = e + extraLen;
      while (e + 4 <= extraEnd) {
        const id = cd.readUInt16LE(e), len = cd.readUInt16LE(e + 2);
        if (id === 1) {
          let q = e + 4;
          if (size === MAX32) { size = Number(cd.readBigUInt64LE(q)); q += 8; }
          if (compressedSize === MAX32) { compressedSize = Number(cd.readBigUInt64LE(q)); q += 8; }
          if (localOffset === MAX32) { localOffset = Number(cd.readBigUInt64LE(q)); q += 8; }
        }
        e += 4 + len;
      }
      entries.push({ name, method, crc32, compressedSize, size, localOffset, isDirectory: name.endsWith('/') });
      p = extraEnd + commentLen;
    }
    return entries;
  } finally {
    fs.closeSync(fd);
  }
}

/** CRC-32 (IEEE): node's zlib.crc32 where present (Node >= 20.15), else a table-driven fallback. */
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
export function crc32(buf: Uint8Array, crc = 0): number {
  if (nativeCrc32) return nativeCrc32(buf, crc);
  let c = ~crc >>> 0;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** Passes bytes through while counting them and computing their CRC-32. */
class CrcCheck extends Transform {
  crc = 0;
  bytes = 0;
  _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.crc = crc32(chunk, this.crc);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

export interface ExtractOptions {
  /** Strip this leading folder from entry names (e.g. the zip already has "Flickr8k_text/"). */
  stripPrefix?: string;
  silent?: boolean;
  label?: string;
}

/**
 * Extract every file of `zipFile` under `destDir`. Entries are written to NAME.part and renamed when
 * complete and verified, so an interrupted extraction resumes by skipping files that already exist
 * with the right size. macOS metadata folders (__MACOSX/) are skipped. Returns the number of files.
 */
export async function extractZip(zipFile: string, destDir: string, opts: ExtractOptions = {}): Promise<number> {
  const entries = listZip(zipFile).filter((e) => !e.isDirectory && !e.name.startsWith('__MACOSX/'));
  const root = path.resolve(destDir);
  const bar = new ProgressBar({ total: entries.length, label: opts.label ?? `extract ${path.basename(zipFile)}`, unit: 'file', silent: opts.silent });
  const fd = fs.openSync(zipFile, 'r');
  try {
    for (const entry of entries) {
      let rel = entry.name;
      if (opts.stripPrefix && rel.startsWith(opts.stripPrefix + '/')) rel = rel.slice(opts.stripPrefix.length + 1);
      const out = path.resolve(root, rel);
      if (!out.startsWith(root + path.sep)) throw new UserError(`${zipFile}: entry "${entry.name}" would be written outside ${root}; refusing to extract it.`);
      if (fs.existsSync(out) && fs.statSync(out).size === entry.size) { bar.tick(); continue; }
      if (entry.method !== 0 && entry.method !== 8) throw new UserError(`${zipFile}: entry "${entry.name}" uses compression method ${entry.method}; only stored and deflate are supported. Extract it with unzip and pass --root.`);
      const local = readAt(fd, entry.localOffset, 30);
      if (local.length < 30 || local.readUInt32LE(0) !== SIG_LOCAL) throw new UserError(`${zipFile}: local header of "${entry.name}" is corrupt; delete the file and download again.`);
      const dataStart = entry.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
      fs.mkdirSync(path.dirname(out), { recursive: true });
      const check = new CrcCheck();
      try {
        if (entry.compressedSize === 0) {
          fs.writeFileSync(out + '.part', '');
        } else {
          const source = fs.createReadStream(zipFile, { start: dataStart, end: dataStart + entry.compressedSize - 1 });
          const sink = fs.createWriteStream(out + '.part');
          if (entry.method === 8) await pipeline(source, zlib.createInflateRaw(), check, sink);
          else await pipeline(source, check, sink);
        }
      } catch (e) {
        throw new UserError(`${zipFile}: cannot inflate "${entry.name}" (${(e as Error).message}); the archive is corrupt: delete it and download again.`);
      }
      if (check.bytes !== entry.size || (check.crc >>> 0) !== entry.crc32) {
        fs.rmSync(out + '.part', { force: true });
        throw new UserError(`${zipFile}: "${entry.name}" fails its CRC/size check; the archive is corrupt: delete it and download again.`);
      }
      fs.renameSync(out + '.part', out);
      bar.tick();
    }
  } finally {
    fs.closeSync(fd);
  }
  bar.finish();
  return entries.length;
}
