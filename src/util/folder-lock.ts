/**
 * One writer per folder (a feature store for `sat features`, a checkpoints folder for `sat train`): a lock file
 * naming its holder { pid, host, token, command, since }.
 *
 *  - Taking the lock: the holder's record is written to a private file and hard-linked to the lock's name, an
 *    atomic create-if-absent, so the lock never exists half-written.
 *  - A lock whose process is dead (kill -9, a power cut) on this host is taken over; one from another host (a
 *    shared filesystem) is refused with the fix: the holder cannot be checked from here.
 *  - The takeover is race-free: a dead holder's lock is removed only by whoever creates the takeover marker
 *    named after that lock's own token (O_EXCL, via the same link), and only if the lock still carries that
 *    token. Of several processes that all saw the same dead holder, exactly one removes it; the others then see
 *    the winner's live lock (or race for the free name, which again only one creates). A takeover marker whose
 *    own process died is broken the same way, one level up.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { UserError } from './errors.js';

export const DEFAULT_LOCK_FILE = 'writer.lock';

export interface LockOptions {
  /** The command taking the lock, named in refusals (e.g. "sat train"). */
  command: string;
  /** The lock file's name inside the folder (default writer.lock). */
  file?: string;
  /** How long to keep retrying while a takeover by another process is in progress (default 5000 ms). */
  waitMs?: number;
}

export interface FolderLock {
  readonly file: string;
  /** Removes the lock if it is still this one's (idempotent). */
  release(): void;
}

interface Holder {
  pid: number;
  host: string;
  token?: string;
  command?: string;
  since?: string;
}

interface LockState {
  holder: Holder | null;
  /** What identifies this lock among all locks ever made under the name: its token (else inode and time). */
  generation: string;
  ageMs: number;
}

/** A lock file with unreadable content this young may still be being written by an older version's plain create. */
const UNREADABLE_GRACE_MS = 2000;

/** Take the lock of `dir` (created if missing), or refuse with a UserError naming the holder. */
export function lockFolder(dir: string, opts: LockOptions): FolderLock {
  const file = path.join(dir, opts.file ?? DEFAULT_LOCK_FILE);
  fs.mkdirSync(dir, { recursive: true });
  const me: Holder = {
    pid: process.pid,
    host: os.hostname(),
    token: randomBytes(12).toString('hex'),
    command: opts.command,
    since: new Date().toISOString(),
  };
  const deadline = Date.now() + (opts.waitMs ?? 5000);
  for (let attempt = 0; ; attempt++) {
    if (attempt > 0 && Date.now() > deadline) {
      throw new UserError(
        `Could not lock ${dir} for \`${opts.command}\`: ${file} keeps changing hands. Is another command starting on this folder?`,
      );
    }
    if (createExclusive(file, me)) return heldLock(file, me.token!);
    const state = readLock(file);
    if (state === null) continue; // released in between: try again
    const { holder } = state;
    if (holder === null) {
      if (state.ageMs < UNREADABLE_GRACE_MS) pause(20);
      else breakStale(file, state.generation, 0);
    } else if (holder.host !== me.host) {
      throw new UserError(
        `${dir} is being written by process ${holder.pid} on host ${holder.host}${holder.command ? ` (\`${holder.command}\`)` : ''} ` +
          `(lock ${file}). Wait for it; if that process is gone, delete the lock file.`,
      );
    } else if (holder.pid !== process.pid && isAlive(holder.pid)) {
      throw new UserError(
        `${dir} is being written by another \`${holder.command ?? opts.command}\` (pid ${holder.pid}` +
          `${holder.since ? `, since ${holder.since}` : ''}). Wait for it to finish, or stop it first.`,
      );
    } else {
      breakStale(file, state.generation, 0); // its process is gone (or it is an unreleased lock of this process)
    }
  }
}

function heldLock(file: string, token: string): FolderLock {
  let held = true;
  return {
    file,
    release() {
      if (!held) return;
      held = false;
      const state = readLock(file);
      if (state?.holder?.token === token) fs.rmSync(file, { force: true });
    },
  };
}

/**
 * Remove `file` if it is still generation `generation`. Only the creator of the marker named after that
 * generation may, so of all processes that saw the same stale lock, one removes it and none removes a newer one.
 */
function breakStale(file: string, generation: string, depth: number): void {
  const marker = `${file}.takeover-${generation.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  if (createExclusive(marker, { pid: process.pid, host: os.hostname(), token: randomBytes(12).toString('hex') })) {
    try {
      if (readLock(file)?.generation === generation) fs.rmSync(file, { force: true });
    } finally {
      fs.rmSync(marker, { force: true });
    }
    return;
  }
  const other = readLock(marker);
  const abandoned = other?.holder
    ? other.holder.host === os.hostname() && !isAlive(other.holder.pid)
    : other !== null && other.ageMs >= UNREADABLE_GRACE_MS;
  if (abandoned && depth < 3)
    breakStale(marker, other!.generation, depth + 1); // its taker died mid-takeover
  else pause(5); // another process is taking it over right now
}

/** Create `file` holding `holder`'s record, complete, unless it exists. */
function createExclusive(file: string, holder: Holder): boolean {
  const text = JSON.stringify(holder) + '\n';
  const tmp = `${file}.new-${process.pid}-${randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, text);
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') throw e;
    return createWithoutLinks(file, text);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Filesystems without hard links: O_EXCL create, then write (a reader may briefly see it empty: UNREADABLE_GRACE_MS). */
function createWithoutLinks(file: string, text: string): boolean {
  try {
    fs.writeFileSync(file, text, { flag: 'wx' });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

/** The lock at `file` as one consistent read (content and identity from one open file), or null if there is none. */
function readLock(file: string): LockState | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const st = fs.fstatSync(fd);
    const text = fs.readFileSync(fd, 'utf8');
    let holder: Holder | null = null;
    try {
      const h = JSON.parse(text) as Holder;
      if (h && Number.isInteger(h.pid) && typeof h.host === 'string') holder = h;
    } catch {
      holder = null;
    }
    const generation = holder?.token ?? `ino${st.ino}-${Math.round(st.mtimeMs * 1000)}`;
    return { holder, generation, ageMs: Date.now() - st.mtimeMs };
  } finally {
    fs.closeSync(fd);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function pause(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}
