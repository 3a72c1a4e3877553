/**
 * A streaming zip reader (no dependency): parses the central directory, including ZIP64 (COCO's
 * train2014.zip is 13 GB), and extracts stored (method 0) and deflated (method 8) entries through
 * node:zlib's raw inflate.
 *
 * Layout: [local header + data (+ data descriptor)]* [central directory] [zip64 end record + locator]? [end record]
 *
 * Nothing is trusted before it is checked: the central directory must lie inside the file before its end
 * record (checked before it is read); every entry's local header must agree with the directory (name and
 * method); an entry's data starts after the LOCAL header's own name and extra field (their lengths may differ
 * from the directory's); entries may not overlap or run into the directory; data descriptors must agree with
 * the directory; declared sizes must be possible for the method; the uncompressed total has a cap
 * (ZipLimits.maxTotalBytes); inflating never writes past an entry's declared size, and the size and CRC-32
 * are checked before a file is renamed into place. Every refusal is a ParseError naming the archive.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { ProgressBar } from '../util/progress.js';
import { UserError } from '../util/errors.js';
import { ParseError } from '../util/parse-error.js';

export interface ZipEntry {
  name: string;
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  /** Offset of the entry's local header. */
  localOffset: number;
  /** Offset of the entry's data: after the local header and the local header's own name and extra field. */
  dataOffset: number;
  /** General-purpose flag bit 3: the CRC and sizes follow the data in a data descriptor. */
  hasDataDescriptor: boolean;
  isDirectory: boolean;
}

export interface ZipLimits {
  /** Refuse an archive whose entries add up to more uncompressed bytes than this (default 64 GiB). */
  maxTotalBytes?: number;
  /** Refuse an archive with more entries than this (default 2,000,000). */
  maxEntries?: number;
}

export const ZIP_DEFAULT_MAX_TOTAL_BYTES = 64 * 2 ** 30;
export const ZIP_DEFAULT_MAX_ENTRIES = 2_000_000;
/** Deflate cannot expand by more than about 1032:1; a declared size above this is a lie. */
const MAX_DEFLATE_RATIO = 1040;

/** Random access to the archive's bytes: a file, or a buffer (tests and fuzzing). */
export interface ZipSource {
  size: number;
  /** Up to `length` bytes at `position` (fewer at the end of the source). */
  read(position: number, length: number): Buffer;
}

export function bufferSource(bytes: Buffer): ZipSource {
  return {
    size: bytes.length,
    read: (position, length) =>
      bytes.subarray(Math.min(position, bytes.length), Math.min(position + length, bytes.length)),
  };
}

function fileSource(fd: number): ZipSource {
  return {
    size: fs.fstatSync(fd).size,
    read(position, length) {
      const buf = Buffer.allocUnsafe(length);
      return buf.subarray(0, fs.readSync(fd, buf, 0, length, position));
    },
  };
}

const SIG_EOCD = 0x06054b50,
  SIG_ZIP64_LOCATOR = 0x07064b50,
  SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50,
  SIG_LOCAL = 0x04034b50,
  SIG_DESCRIPTOR = 0x08074b50;
const MAX32 = 0xffffffff,
  MAX16 = 0xffff;
const FLAG_ENCRYPTED = 1,
  FLAG_DESCRIPTOR = 8,
  FLAG_UTF8 = 0x800;

/** List the entries of a zip file, every one checked as the module comment says. */
export function listZip(file: string, limits: ZipLimits = {}): ZipEntry[] {
  const fd = fs.openSync(file, 'r');
  try {
    return readZipDirectory(fileSource(fd), file, limits);
  } finally {
    fs.closeSync(fd);
  }
}

/** The checked entries of the archive in `source`; `label` names it in errors. */
export function readZipDirectory(source: ZipSource, label: string, limits: ZipLimits = {}): ZipEntry[] {
  const corrupt = (what: string) =>
    new ParseError(`${label}: ${what}; the archive is corrupt: delete it and download (or zip) it again.`);
  const readExact = (position: number, length: number, what: string): Buffer => {
    const b = position >= 0 && position + length <= source.size ? source.read(position, length) : Buffer.alloc(0);
    if (b.length !== length)
      throw corrupt(`${what} (${length} bytes at ${position}) lies outside the ${source.size}-byte file`);
    return b;
  };
  const u64 = (b: Buffer, at: number, what: string): number => {
    const v = b.readBigUInt64LE(at);
    if (v > MAX_SAFE) throw corrupt(`${what} ${v} is out of range`);
    return Number(v);
  };

  // The end record (22 bytes + a comment of up to 64 KiB) is the last one whose comment fits in the file.
  const tailLen = Math.min(source.size, 22 + MAX16);
  const tailStart = source.size - tailLen;
  const tail = source.read(tailStart, tailLen);
  let at = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_EOCD && i + 22 + tail.readUInt16LE(i + 20) <= tail.length) {
      at = i;
      break;
    }
  }
  if (at < 0)
    throw new ParseError(
      `${label} is not a zip file (no end-of-central-directory record); it may be truncated or corrupt: delete it and download again.`,
    );
  const eocdPos = tailStart + at;
  let disk = tail.readUInt16LE(at + 4),
    cdDisk = tail.readUInt16LE(at + 6);
  let countHere = tail.readUInt16LE(at + 8),
    count = tail.readUInt16LE(at + 10);
  let cdSize = tail.readUInt32LE(at + 12),
    cdOffset = tail.readUInt32LE(at + 16);
  let cdLimit = eocdPos; // the central directory ends before the end records
  if (eocdPos >= 20 && source.read(eocdPos - 20, 4).readUInt32LE(0) === SIG_ZIP64_LOCATOR) {
    const locator = readExact(eocdPos - 20, 20, 'the ZIP64 locator');
    const recPos = u64(locator, 8, 'the ZIP64 end record offset');
    if (recPos + 56 > eocdPos - 20) throw corrupt(`the ZIP64 end record offset ${recPos} is not before its locator`);
    const rec = readExact(recPos, 56, 'the ZIP64 end record');
    if (rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) throw corrupt('bad ZIP64 end record signature');
    disk = rec.readUInt32LE(16);
    cdDisk = rec.readUInt32LE(20);
    countHere = u64(rec, 24, 'the ZIP64 entry count');
    count = u64(rec, 32, 'the ZIP64 entry count');
    cdSize = u64(rec, 40, 'the ZIP64 directory size');
    cdOffset = u64(rec, 48, 'the ZIP64 directory offset');
    cdLimit = recPos;
  }
  if (disk !== 0 || cdDisk !== 0 || countHere !== count) {
    throw new ParseError(
      `${label} is one part of a split (multi-disk) archive; join the parts first (zip -s 0 parts.zip --out whole.zip).`,
    );
  }
  const maxEntries = limits.maxEntries ?? ZIP_DEFAULT_MAX_ENTRIES;
  if (count > maxEntries)
    throw new ParseError(
      `${label} has ${count} entries, more than the limit of ${maxEntries}; raise maxEntries if the archive is trusted.`,
    );
  // Checked before anything is allocated: the directory must lie between the file's start and the end records.
  if (cdOffset + cdSize > cdLimit)
    throw corrupt(`the central directory (${cdSize} bytes at ${cdOffset}) runs past its end record at ${cdLimit}`);
  if (count * 46 > cdSize) throw corrupt(`${count} entries cannot fit in a ${cdSize}-byte central directory`);
  const cd = readExact(cdOffset, cdSize, 'the central directory');

  const entries: ZipEntry[] = [];
  const rawNames: Buffer[] = [];
  const names = new Set<string>();
  let total = 0;
  const maxTotal = limits.maxTotalBytes ?? ZIP_DEFAULT_MAX_TOTAL_BYTES;
  let p = 0;
  for (let k = 0; k < count; k++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL)
      throw corrupt(`central directory entry ${k} at byte ${cdOffset + p} is not one`);
    const flags = cd.readUInt16LE(p + 8),
      method = cd.readUInt16LE(p + 10),
      crc32 = cd.readUInt32LE(p + 16);
    let compressedSize = cd.readUInt32LE(p + 20),
      size = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28),
      extraLen = cd.readUInt16LE(p + 30),
      commentLen = cd.readUInt16LE(p + 32);
    let localOffset = cd.readUInt32LE(p + 42);
    const extraStart = p + 46 + nameLen,
      extraEnd = extraStart + extraLen,
      next = extraEnd + commentLen;
    if (next > cd.length) throw corrupt(`central directory entry ${k} runs past the directory's end`);
    const nameBytes = cd.subarray(p + 46, extraStart);
    const name = nameBytes.toString(flags & FLAG_UTF8 ? 'utf8' : 'latin1');
    if (name === '' || name.includes('\0'))
      throw corrupt(`central directory entry ${k} has an empty name or one with a NUL byte`);
    if (flags & FLAG_ENCRYPTED)
      throw new ParseError(
        `${label}: entry "${name}" is encrypted; decrypt the archive (unzip) and pass the extracted folder as --root.`,
      );
    // ZIP64 extra field (id 1): the 64-bit values of whichever fields were 0xFFFFFFFF, in this order.
    // Fewer than 4 bytes left over is padding some writers add; it is ignored.
    for (let e = extraStart; e + 4 <= extraEnd;) {
      const id = cd.readUInt16LE(e),
        end = e + 4 + cd.readUInt16LE(e + 2);
      if (end > extraEnd) throw corrupt(`entry "${name}": an extra field runs past the extra block`);
      if (id === 1) {
        let q = e + 4;
        if (size === MAX32) {
          size = zip64Value(cd, q, end, `entry "${name}": ZIP64 size`, corrupt);
          q += 8;
        }
        if (compressedSize === MAX32) {
          compressedSize = zip64Value(cd, q, end, `entry "${name}": ZIP64 compressed size`, corrupt);
          q += 8;
        }
        if (localOffset === MAX32)
          localOffset = zip64Value(cd, q, end, `entry "${name}": ZIP64 local header offset`, corrupt);
      }
      e = end;
    }
    if (names.has(name)) throw corrupt(`entry "${name}" appears twice`);
    names.add(name);
    if (method === 0 && compressedSize !== size)
      throw corrupt(`stored entry "${name}" declares ${size} bytes but holds ${compressedSize}`);
    if (method === 8 && size > compressedSize * MAX_DEFLATE_RATIO + 1024)
      throw corrupt(
        `entry "${name}" declares ${size} bytes from ${compressedSize} deflated bytes, more than deflate can produce`,
      );
    total += size;
    if (total > maxTotal)
      throw new ParseError(
        `${label}: its entries add up to more than ${maxTotal} bytes uncompressed (the limit); raise maxTotalBytes if the archive is trusted.`,
      );
    rawNames.push(nameBytes);
    entries.push({
      name,
      method,
      crc32,
      compressedSize,
      size,
      localOffset,
      dataOffset: 0,
      hasDataDescriptor: (flags & FLAG_DESCRIPTOR) !== 0,
      isDirectory: name.endsWith('/'),
    });
    p = next;
  }

  // Local headers: the data starts after the local header's OWN name and extra field.
  const spans: { entry: ZipEntry; end: number }[] = [];
  for (const [k, entry] of entries.entries()) {
    // One read for the header and the name it should hold (a local name of another length is refused anyway).
    const local = readExact(entry.localOffset, 30 + rawNames[k].length, `the local header of "${entry.name}"`);
    if (local.readUInt32LE(0) !== SIG_LOCAL)
      throw corrupt(`no local header for "${entry.name}" at byte ${entry.localOffset}`);
    const localMethod = local.readUInt16LE(8),
      localNameLen = local.readUInt16LE(26),
      localExtraLen = local.readUInt16LE(28);
    if (localMethod !== entry.method)
      throw corrupt(
        `"${entry.name}": its local header says compression method ${localMethod}, the central directory ${entry.method}`,
      );
    const localName =
      localNameLen === rawNames[k].length
        ? local.subarray(30)
        : readExact(entry.localOffset + 30, localNameLen, `the local name of "${entry.name}"`);
    if (!localName.equals(rawNames[k])) {
      throw corrupt(`"${entry.name}": its local header names it "${localName.toString('latin1')}"`);
    }
    entry.dataOffset = entry.localOffset + 30 + localNameLen + localExtraLen;
    let end = entry.dataOffset + entry.compressedSize;
    if (entry.hasDataDescriptor) end += dataDescriptorLength(source, end, entry, corrupt);
    if (end > cdOffset)
      throw corrupt(
        `the data of "${entry.name}" (${entry.compressedSize} bytes at ${entry.dataOffset}) runs into the central directory at ${cdOffset}`,
      );
    spans.push({ entry, end });
  }
  spans.sort((a, b) => a.entry.localOffset - b.entry.localOffset);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i].entry.localOffset < spans[i - 1].end) {
      throw corrupt(
        `entries "${spans[i - 1].entry.name}" and "${spans[i].entry.name}" overlap (bytes ${spans[i].entry.localOffset}-${spans[i - 1].end})`,
      );
    }
  }
  return entries;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** The 8-byte value at b[q] of a ZIP64 field ending at `end`: missing or out of range is an error. */
function zip64Value(b: Buffer, q: number, end: number, what: string, corrupt: (what: string) => Error): number {
  if (q + 8 > end) throw corrupt(`${what} is missing from its extra field`);
  const v = b.readBigUInt64LE(q);
  if (v > MAX_SAFE) throw corrupt(`${what} ${v} is out of range`);
  return Number(v);
}

/**
 * Length of the data descriptor at `at` (after the entry's data): an optional signature, the CRC-32 and the
 * sizes as 4 or 8 bytes each (ZIP64). It must agree with the central directory.
 */
function dataDescriptorLength(
  source: ZipSource,
  at: number,
  entry: ZipEntry,
  corrupt: (what: string) => Error,
): number {
  const b = source.read(at, 24);
  for (const signed of [true, false]) {
    const o = signed ? 4 : 0;
    if (signed && (b.length < 4 || b.readUInt32LE(0) !== SIG_DESCRIPTOR)) continue;
    if (
      b.length >= o + 12 &&
      b.readUInt32LE(o) === entry.crc32 &&
      b.readUInt32LE(o + 4) === entry.compressedSize &&
      b.readUInt32LE(o + 8) === entry.size
    )
      return o + 12;
    if (
      b.length >= o + 20 &&
      b.readUInt32LE(o) === entry.crc32 &&
      b.readBigUInt64LE(o + 4) === BigInt(entry.compressedSize) &&
      b.readBigUInt64LE(o + 12) === BigInt(entry.size)
    )
      return o + 20;
  }
  throw corrupt(`the data descriptor of "${entry.name}" at byte ${at} does not match the central directory`);
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

/** Passes bytes through while computing their CRC-32; fails as soon as they would exceed `limit`. */
class SizeAndCrcCheck extends Transform {
  crc = 0;
  bytes = 0;
  constructor(
    private readonly limit: number,
    private readonly what: string,
  ) {
    super();
  }
  _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.bytes + chunk.length > this.limit) {
      cb(new Error(`${this.what} inflates past its declared size of ${this.limit} bytes`));
      return;
    }
    this.crc = crc32(chunk, this.crc);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

export interface ExtractOptions extends ZipLimits {
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
  const entries = listZip(zipFile, opts).filter((e) => !e.isDirectory && !e.name.startsWith('__MACOSX/'));
  const root = path.resolve(destDir);
  const bar = new ProgressBar({
    total: entries.length,
    label: opts.label ?? `extract ${path.basename(zipFile)}`,
    unit: 'file',
    silent: opts.silent,
  });
  for (const entry of entries) {
    let rel = entry.name;
    if (opts.stripPrefix && rel.startsWith(opts.stripPrefix + '/')) rel = rel.slice(opts.stripPrefix.length + 1);
    const out = path.resolve(root, rel);
    if (!out.startsWith(root + path.sep))
      throw new UserError(
        `${zipFile}: entry "${entry.name}" would be written outside ${root}; refusing to extract it.`,
      );
    if (fs.existsSync(out) && fs.statSync(out).size === entry.size) {
      bar.tick();
      continue;
    }
    if (entry.method !== 0 && entry.method !== 8)
      throw new UserError(
        `${zipFile}: entry "${entry.name}" uses compression method ${entry.method}; only stored and deflate are supported. Extract it with unzip and pass --root.`,
      );
    fs.mkdirSync(path.dirname(out), { recursive: true });
    await extractEntry(zipFile, entry, out + '.part');
    fs.renameSync(out + '.part', out);
    bar.tick();
  }
  bar.finish();
  return entries.length;
}

/** Writes one entry to `part`: never more than its declared size, and removed unless size and CRC-32 match. */
async function extractEntry(zipFile: string, entry: ZipEntry, part: string): Promise<void> {
  const check = new SizeAndCrcCheck(entry.size, `"${entry.name}"`);
  try {
    if (entry.compressedSize === 0) {
      fs.writeFileSync(part, '');
    } else {
      const source = fs.createReadStream(zipFile, {
        start: entry.dataOffset,
        end: entry.dataOffset + entry.compressedSize - 1,
      });
      const sink = fs.createWriteStream(part);
      if (entry.method === 8) await pipeline(source, zlib.createInflateRaw(), check, sink);
      else await pipeline(source, check, sink);
    }
  } catch (e) {
    fs.rmSync(part, { force: true });
    throw new ParseError(
      `${zipFile}: cannot extract "${entry.name}" (${(e as Error).message}); the archive is corrupt: delete it and download again.`,
    );
  }
  if (check.bytes !== entry.size || check.crc >>> 0 !== entry.crc32) {
    fs.rmSync(part, { force: true });
    const what =
      check.bytes !== entry.size
        ? `${check.bytes} bytes instead of the declared ${entry.size}`
        : 'its CRC-32 does not match';
    throw new ParseError(
      `${zipFile}: "${entry.name}" fails its CRC/size check (${what}); the archive is corrupt: delete it and download again.`,
    );
  }
}
