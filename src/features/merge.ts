/**
 * Join the parts written by `sat features --shard i/n` (store/parts/0000i-of-0000n/) into the store folder.
 *
 * No feature bytes are copied: each part's shard files are hard-linked into the store under new shard
 * numbers and the index lines are rewritten to point at them, so merging COCO's 32 GB takes seconds.
 * Crash safety: links first, then index.jsonl replaced atomically (rename: the commit point), then
 * meta.json, then the parts folder is renamed away and deleted. A merge killed before the index rename
 * leaves the store as it was (stray links get new numbers next time and are never indexed; the writer
 * unlinks rather than truncates them); killed after it, a rerun sees every part already indexed and only
 * finishes the clean-up.
 */
import fs from 'node:fs';
import path from 'node:path';
import { outOfSpaceError, writeFileAtomic, writeJsonAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import {
  STORE_FORMAT,
  STORE_VERSION,
  formatIndexLine,
  indexPath,
  metaPath,
  parseIndex,
  partName,
  partsDir,
  readMeta,
  readSkipped,
  shardPath,
  skippedPath,
  type IndexEntry,
  type SkippedImage,
  type StoreMeta,
} from './format.js';
import { lockStore } from './store-writer.js';

export interface MergeResult {
  parts: number;
  images: number;
  skipped: number;
}

export function mergeParts(dir: string): MergeResult {
  fs.mkdirSync(dir, { recursive: true });
  const lock = lockStore(dir, 'sat features --merge');
  try {
    return merge(dir);
  } finally {
    lock.release();
  }
}

function merge(dir: string): MergeResult {
  const root = partsDir(dir);
  const names = fs.existsSync(root)
    ? fs
        .readdirSync(root)
        .filter((n) => /^\d{5}-of-\d{5}$/.test(n))
        .sort()
    : [];
  if (names.length === 0)
    throw new UserError(`Nothing to merge: ${root} has no parts. Run \`sat features --shard i/n\` for each i first.`);

  const parts = names.map((n) => ({ name: n, dir: path.join(root, n), meta: readMeta(path.join(root, n)) }));
  const count = parts[0].meta.slice?.count ?? 0;
  const first = parts[0].meta;
  for (const p of parts) {
    const m = p.meta;
    if (!m.slice || m.slice.count !== count || p.name !== partName(m.slice.index, count)) {
      throw new UserError(
        `${p.dir} is not part of a ${count}-way split (its meta.json says slice ${m.slice ? `${m.slice.index}/${m.slice.count}` : 'all'}).`,
      );
    }
    if (m.encoderId !== first.encoderId || m.locations !== first.locations || m.channels !== first.channels) {
      throw new UserError(
        `${p.dir} holds encoder "${m.encoderId}" (${m.locations}x${m.channels}) but ${parts[0].dir} holds ` +
          `"${first.encoderId}" (${first.locations}x${first.channels}); all parts must use the same encoder.`,
      );
    }
    if (!m.complete)
      throw new UserError(
        `${p.dir} (slice ${m.slice.index}/${count}) has not finished. Rerun \`sat features --shard ${m.slice.index}/${count}\`; it resumes.`,
      );
  }
  const missing = Array.from({ length: count }, (_, i) => partName(i, count)).filter((n) => !names.includes(n));
  if (missing.length > 0) {
    throw new UserError(
      `Cannot merge: parts ${missing.map((n) => `${Number(n.slice(0, 5))}/${count}`).join(', ')} are missing from ${root}. Run them first.`,
    );
  }

  // The store may already hold images (e.g. a previous merge); new shards are numbered after its own.
  let meta: StoreMeta;
  let entries: IndexEntry[] = [];
  if (fs.existsSync(metaPath(dir))) {
    meta = readMeta(dir);
    if (meta.encoderId !== first.encoderId || meta.locations !== first.locations || meta.channels !== first.channels) {
      throw new UserError(
        `${dir} already holds encoder "${meta.encoderId}"; the parts hold "${first.encoderId}". Merge into another folder.`,
      );
    }
    entries = parseIndex(fs.existsSync(indexPath(dir)) ? fs.readFileSync(indexPath(dir)) : Buffer.alloc(0)).entries;
  } else {
    meta = { ...first, format: STORE_FORMAT, version: STORE_VERSION, slice: null, complete: false, requested: 0 };
  }
  const stored = new Map(entries.map((e) => [e.id, e] as [string, IndexEntry]));
  const partEntries = parts.map((p) => parseIndex(fs.readFileSync(indexPath(p.dir))).entries);
  // A merge killed after its index rename but before the parts were removed: finish it, do not redo it.
  const alreadyMerged = partEntries.every((list) => list.every((e) => stored.get(e.id)?.crc === e.crc));

  const links: { from: string; to: string }[] = [];
  const merged: IndexEntry[] = [...entries];
  const seen = new Map(entries.map((e) => [e.id, dir] as [string, string]));
  // New shard numbers start after every shard file present (stray links of an interrupted merge included).
  let nextShard =
    1 +
    Math.max(
      -1,
      ...fs
        .readdirSync(dir)
        .filter((f) => /^shard-\d{5}\.bin$/.test(f))
        .map((f) => Number(f.slice(6, 11))),
    );
  let requested = meta.requested;
  const skipped: SkippedImage[] = readSkipped(dir);
  parts.forEach((p, k) => {
    skipped.push(...readSkipped(p.dir));
    if (alreadyMerged) return;
    requested += p.meta.requested;
    const renumber = new Map<number, number>();
    for (const e of partEntries[k]) {
      const other = seen.get(e.id);
      if (other)
        throw new UserError(
          `Image "${e.id}" is in both ${other} and ${p.dir}: the parts overlap, so they were not made from the same image list. Re-extract the parts.`,
        );
      seen.set(e.id, p.dir);
      if (!renumber.has(e.shard)) {
        renumber.set(e.shard, nextShard);
        links.push({ from: shardPath(p.dir, e.shard), to: shardPath(dir, nextShard) });
        nextShard++;
      }
      merged.push({ ...e, shard: renumber.get(e.shard)! });
    }
  });

  if (!alreadyMerged) {
    for (const l of links) {
      fs.rmSync(l.to, { force: true });
      try {
        fs.linkSync(l.from, l.to);
      } catch {
        copyShard(l.from, l.to, dir); // filesystems without hard links
      }
    }
    // The commit point: the index rename (all bytes checked written first). Everything before it leaves the store as it was.
    writeFileAtomic(indexPath(dir), merged.map(formatIndexLine).join(''), 'the merged feature index');
    writeJsonAtomic(metaPath(dir), { ...meta, complete: true, requested });
  }
  const finalIds = new Set(parseIndex(fs.readFileSync(indexPath(dir))).entries.map((e) => e.id));
  writeJsonAtomic(
    skippedPath(dir),
    skipped.filter((s) => !finalIds.has(s.id)),
  );

  const trash = `${root}.merged-${process.pid}`;
  fs.renameSync(root, trash);
  fs.rmSync(trash, { recursive: true, force: true });
  return { parts: parts.length, images: finalIds.size, skipped: skipped.filter((s) => !finalIds.has(s.id)).length };
}

/** Copy one part's shard into the store; out of space, the partial copy is removed (the store is as it was). */
function copyShard(from: string, to: string, dir: string): void {
  try {
    fs.copyFileSync(from, to);
    if (fs.statSync(to).size !== fs.statSync(from).size)
      throw Object.assign(new Error(`${to} is shorter than ${from}`), { code: 'ENOSPC' });
  } catch (e) {
    fs.rmSync(to, { force: true });
    const bytes = fs.statSync(from).size;
    throw outOfSpaceError(
      e,
      dir,
      `a copy of ${from} (this filesystem has no hard links)`,
      bytes,
      'the store was left as it was',
    );
  }
}
