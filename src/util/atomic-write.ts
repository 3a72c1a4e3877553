/**
 * Crash-safe and disk-full-safe file replacement. The data goes to a temporary file beside the target, every
 * byte of it checked written (fs.writeSync may write fewer bytes than asked without raising, e.g. at a file-size
 * limit), fsynced, its size checked, and only then renamed over the target; then the folder is fsynced so that
 * the rename itself is on disk. A crash, a kill -9, a power cut or a full disk leaves either the old file or the
 * new one, never half of one. A full disk (ENOSPC), a file-size limit (EFBIG) or a used-up quota (EDQUOT) is a
 * UserError naming the folder, what was being written and how much space it needs; the old file stays.
 *
 * A writer killed mid-write (kill -9, a power cut) cannot remove its temporary file: the next write of the same
 * target removes the temporaries of that target whose writing process is gone (`FILE.tmp-PID`, PID not running).
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from './errors.js';

export type FileData = string | Uint8Array | readonly Uint8Array[];

/** One file of a group written together (writeFilesAtomic). */
export interface AtomicFile {
  file: string;
  data: FileData;
}

/** Replace `file` with `data` (a string, bytes, or byte chunks written back to back); `what` names it in errors. */
export function writeFileAtomic(file: string, data: FileData, what = path.basename(file)): void {
  writeFilesAtomic([{ file, data }], what);
}

/** Replace `file` with pretty-printed JSON (two-space indent, trailing newline). */
export function writeJsonAtomic(file: string, value: unknown, what = path.basename(file)): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n', what);
}

/**
 * Replace several files as one step as far as a full disk goes: every temporary file is written and checked
 * first, so running out of space leaves all the targets as they were; only then are they renamed into place in
 * order (renames need no space), `beforeReplace` running just before the first rename.
 */
export function writeFilesAtomic(
  files: readonly AtomicFile[],
  what: string,
  opts: { beforeReplace?: () => void } = {},
): void {
  replaceAllAtomically(
    files.map(({ file, data }) => ({
      file,
      bytes: byteLength(data),
      fill: (tmp: string) => writeTemp(tmp, data),
    })),
    what,
    opts.beforeReplace,
  );
}

/** Replace `to` with a copy of `from`. */
export function copyFileAtomic(from: string, to: string, what = path.basename(to)): void {
  copyFilesAtomic([{ from, to }], what);
}

/** Replace each `to` with a copy of its `from`, all copies made and checked before the first rename. */
export function copyFilesAtomic(pairs: readonly { from: string; to: string }[], what: string): void {
  replaceAllAtomically(
    pairs.map(({ from, to }) => ({
      file: to,
      bytes: fs.statSync(from).size,
      fill: (tmp: string) => fs.copyFileSync(from, tmp),
    })),
    what,
  );
}

/**
 * Write all of `data` to `fd` (at `position` and on, or at the file offset when null): writeSync is repeated
 * until every byte is written; a write that makes no progress is a full disk (ENOSPC).
 */
export function writeAllSync(fd: number, data: string | Uint8Array, position: number | null = null): void {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let done = 0;
  while (done < buf.length) {
    const n = fs.writeSync(fd, buf, done, buf.length - done, position === null ? null : position + done);
    if (!(n > 0))
      throw Object.assign(new Error(`ENOSPC: a write made no progress with ${buf.length - done} bytes left`), {
        code: 'ENOSPC',
      });
    done += n;
  }
}

const SPACE_ERRORS: Readonly<Record<string, string>> = {
  ENOSPC: 'the disk is full',
  EFBIG: 'a file reached the size limit of this process (ulimit -f)',
  EDQUOT: 'the disk quota is used up',
};

/** Whether `e` means "no room": a full disk, a file-size limit or a quota. */
export function isOutOfSpace(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && code in SPACE_ERRORS;
}

/**
 * The UserError for an out-of-space failure `e` while writing `what` (`bytes` long) into `dir`; other errors
 * are returned as they are. `kept` says what was left intact.
 */
export function outOfSpaceError(
  e: unknown,
  dir: string,
  what: string,
  bytes: number,
  kept = 'the previous files were left as they were',
): unknown {
  if (!isOutOfSpace(e)) return e;
  const code = (e as NodeJS.ErrnoException).code!;
  const free = freeBytes(dir);
  return new UserError(
    `Could not write ${what} in ${path.resolve(dir)}: ${SPACE_ERRORS[code]} (${code}). ` +
      `It needs ${formatBytes(bytes)}${free !== null ? `; ${formatBytes(free)} is free there` : ''}, and ${kept}. ` +
      (code === 'EFBIG' ? 'Raise the limit (ulimit -f unlimited)' : 'Free some space or write to another folder') +
      ', then run the command again.',
  );
}

/** Bytes available to this user on the filesystem of `dir`, or null where that cannot be read. */
export function freeBytes(dir: string): number | null {
  try {
    const s = fs.statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]} (${n} bytes)`;
}

interface Replacement {
  file: string;
  /** The size the finished temporary file must have. */
  bytes: number;
  /** Writes the temporary file. */
  fill: (tmp: string) => void;
}

/** Temporary files filled, fsynced and size-checked, then renamed over their targets in order; the folders fsynced. */
function replaceAllAtomically(items: readonly Replacement[], what: string, beforeReplace?: () => void): void {
  const temps: string[] = [];
  const total = items.reduce((s, it) => s + it.bytes, 0);
  for (const it of items) removeOrphanedTemporaries(it.file);
  try {
    for (const it of items) {
      const tmp = tempName(it.file);
      temps.push(tmp);
      it.fill(tmp);
      syncAndCheckSize(tmp, it.bytes);
    }
  } catch (e) {
    for (const tmp of temps) fs.rmSync(tmp, { force: true });
    throw outOfSpaceError(
      e,
      path.dirname(items[0].file),
      what,
      total,
      `${items.map((it) => path.basename(it.file)).join(', ')} ${items.length === 1 ? 'was' : 'were'} left as before`,
    );
  }
  try {
    beforeReplace?.();
    items.forEach((it, i) => fs.renameSync(temps[i], it.file));
  } catch (e) {
    for (const tmp of temps) fs.rmSync(tmp, { force: true });
    throw e;
  }
  for (const dir of new Set(items.map((it) => path.dirname(it.file)))) fsyncFolder(dir);
}

function writeTemp(tmp: string, data: FileData): void {
  const fd = fs.openSync(tmp, 'w');
  try {
    if (typeof data === 'string' || data instanceof Uint8Array) writeAllSync(fd, data);
    else for (const chunk of data) writeAllSync(fd, chunk);
  } finally {
    fs.closeSync(fd);
  }
}

/** fsync `tmp` and refuse it unless it holds exactly `bytes` bytes (a short write that went unnoticed). */
function syncAndCheckSize(tmp: string, bytes: number): void {
  const fd = fs.openSync(tmp, 'r+');
  try {
    fs.fsyncSync(fd);
    const size = fs.fstatSync(fd).size;
    if (size !== bytes) {
      throw Object.assign(new Error(`${tmp} holds ${size} bytes after writing ${bytes}`), {
        code: size < bytes ? 'ENOSPC' : 'EIO',
      });
    }
  } finally {
    fs.closeSync(fd);
  }
}

function byteLength(data: FileData): number {
  if (typeof data === 'string') return Buffer.byteLength(data, 'utf8');
  if (data instanceof Uint8Array) return data.byteLength;
  return data.reduce((s, c) => s + c.byteLength, 0);
}

const tempName = (file: string) => `${file}.tmp-${process.pid}`;

/** Whether process `pid` exists (EPERM: it does, owned by another user). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove `file`'s temporaries left by writers that are gone (killed mid-write); a live writer's are kept. */
function removeOrphanedTemporaries(file: string): void {
  const prefix = `${path.basename(file)}.tmp-`;
  let names: string[];
  try {
    names = fs.readdirSync(path.dirname(file));
  } catch {
    return; // no folder yet: nothing left over in it
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !isRunning(pid))
      fs.rmSync(path.join(path.dirname(file), name), { force: true });
  }
}

/** Make a rename inside `dir` durable. Windows cannot open a folder for fsync; NTFS journals renames itself. */
function fsyncFolder(dir: string): void {
  if (process.platform === 'win32') return;
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
