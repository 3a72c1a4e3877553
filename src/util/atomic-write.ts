/**
 * Crash-safe file replacement. The data goes to a temporary file beside the target, which is fsynced and
 * renamed over the target; then the folder is fsynced so that the rename itself is on disk. A crash, a
 * kill -9 or a power cut leaves either the old file or the new one, never half of one.
 */
import fs from 'node:fs';
import path from 'node:path';

/** Replace `file` with `data` (a string, bytes, or byte chunks written back to back). */
export function writeFileAtomic(file: string, data: string | Uint8Array | readonly Uint8Array[]): void {
  replaceAtomically(file, (tmp) => {
    const fd = fs.openSync(tmp, 'w');
    try {
      if (typeof data === 'string') fs.writeSync(fd, data);
      else if (data instanceof Uint8Array) fs.writeSync(fd, data);
      else for (const chunk of data) fs.writeSync(fd, chunk);
    } finally {
      fs.closeSync(fd);
    }
  });
}

/** Replace `file` with pretty-printed JSON (two-space indent, trailing newline). */
export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

/** Replace `to` with a copy of `from`. */
export function copyFileAtomic(from: string, to: string): void {
  replaceAtomically(to, (tmp) => fs.copyFileSync(from, tmp));
}

/** `fill` writes the temporary file; it is then fsynced and renamed over `file`, and the folder fsynced. */
function replaceAtomically(file: string, fill: (tmp: string) => void): void {
  const tmp = tempName(file);
  try {
    fill(tmp);
    const fd = fs.openSync(tmp, 'r+');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncFolder(path.dirname(file));
}

const tempName = (file: string) => `${file}.tmp-${process.pid}`;

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
