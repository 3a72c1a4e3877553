/**
 * A user's own data: a folder of images plus one caption file, either
 *
 *   captions.csv     header "image,caption[,split]", one caption per row (an image may have many rows)
 *   captions.jsonl   one object per line: {"image": "a.jpg", "caption": "..."} or {"image", "captions": [...]},
 *                    optionally "split"
 *
 * Image paths are relative to ROOT (absolute paths are kept). If no row gives a split, images are split
 * 80/10/10 train/dev/test by a seeded shuffle; if split is given it must be given for every row.
 * Split names: train, dev|val|validation, test.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { parseCsvLines } from './csv.js';
import { parseSplitName, splitByImage } from './split.js';
import type { Dataset, DatasetImage, Split } from './types.js';

export interface FolderOptions {
  root: string;
  /** CSV or JSONL file (default: ROOT/captions.csv, then ROOT/captions.jsonl). */
  captionsFile?: string;
  seed?: number;
}

interface Row {
  image: string;
  captions: string[];
  split?: string;
  where: string;
}

export function readFolder(opts: FolderOptions): Dataset {
  const root = path.resolve(opts.root);
  const file = opts.captionsFile
    ? path.resolve(opts.captionsFile)
    : ['captions.csv', 'captions.jsonl'].map((f) => path.join(root, f)).find((f) => fs.existsSync(f));
  if (!file || !fs.existsSync(file)) {
    throw new UserError(
      `no caption file: expected ${path.join(root, 'captions.csv')} or captions.jsonl, or pass --captions FILE (CSV "image,caption" or JSONL {"image","caption"}).`,
    );
  }
  const text = fs.readFileSync(file, 'utf8');
  const rows = /\.jsonl$/i.test(file) ? jsonlRows(text, file) : csvRows(text, file);

  const withSplit = rows.filter((r) => r.split !== undefined && r.split !== '').length;
  if (withSplit > 0 && withSplit < rows.length) {
    const bad = rows.find((r) => r.split === undefined || r.split === '')!;
    throw new UserError(
      `${bad.where}: no split, but other rows have one. Give a split for every row or for none (then images are split 80/10/10 by --seed).`,
    );
  }

  const byImage = new Map<string, DatasetImage>();
  const skipped: Dataset['skipped'] = [];
  const badSplit = new Set<string>();
  for (const r of rows) {
    let split: Split = 'train';
    if (withSplit > 0) {
      const s = parseSplitName(r.split!);
      if (!s) throw new UserError(`${r.where}: unknown split "${r.split}" (use train, dev/val or test).`);
      split = s;
    }
    const p = path.resolve(root, r.image);
    const existing = byImage.get(p);
    if (existing) {
      if (existing.split !== split) badSplit.add(r.where);
      existing.captions.push(...r.captions);
    } else {
      byImage.set(p, { id: r.image, path: p, captions: [...r.captions], split });
    }
  }
  if (badSplit.size > 0)
    throw new UserError(`${[...badSplit][0]}: the same image is given two different splits; splits are by image.`);

  const images: DatasetImage[] = [];
  for (const img of byImage.values()) {
    img.captions = img.captions.map((c) => c.trim()).filter(Boolean);
    if (!fs.existsSync(img.path)) skipped.push({ id: img.id, reason: `image file not found (${img.path})` });
    else if (img.captions.length === 0) skipped.push({ id: img.id, reason: 'image has no non-empty caption' });
    else images.push(img);
  }
  if (withSplit === 0) splitByImage(images, { train: 0.8, dev: 0.1, test: 0.1 }, opts.seed ?? 42);
  return { kind: 'folder', images, skipped };
}

function csvRows(text: string, file: string): Row[] {
  const table = parseCsvLines(text, file);
  if (table.length === 0) throw new UserError(`${file} is empty; expected a header "image,caption".`);
  const header = table[0].fields.map((h) => h.trim().toLowerCase());
  const col = (name: string) => header.indexOf(name);
  const [ci, cc, cs] = [col('image'), col('caption'), col('split')];
  if (ci < 0 || cc < 0)
    throw new UserError(
      `${file}: header must name columns "image" and "caption" (got "${table[0].fields.join(',')}").`,
    );
  return table.slice(1).map(({ fields: r, line }) => {
    const where = `${path.basename(file)} line ${line}`;
    if (r.length > header.length) {
      throw new UserError(
        `${where}: ${r.length} fields but the header has ${header.length}; put a caption that contains commas in double quotes.`,
      );
    }
    if (r.length <= Math.max(ci, cc))
      throw new UserError(
        `${where}: ${r.length} field${r.length === 1 ? '' : 's'}, no "${r.length <= ci ? 'image' : 'caption'}" column.`,
      );
    const image = r[ci].trim();
    if (image === '') throw new UserError(`${where}: empty image column.`);
    return { image, captions: [r[cc]], split: cs >= 0 ? (r[cs] ?? '').trim() : undefined, where };
  });
}

/** One JSON object per line; a line that is not one (null, a list, bad JSON, wrong field types) names the file and line. */
function jsonlRows(text: string, file: string): Row[] {
  const rows: Row[] = [];
  text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .forEach((line, k) => {
      if (line.trim() === '') return;
      const where = `${path.basename(file)} line ${k + 1}`;
      let o: unknown;
      try {
        o = JSON.parse(line);
      } catch (e) {
        throw new UserError(`${where}: not valid JSON (${(e as Error).message}).`);
      }
      if (typeof o !== 'object' || o === null || Array.isArray(o)) {
        throw new UserError(
          `${where}: expected an object like {"image": "a.jpg", "caption": "..."}, got ${o === null ? 'null' : Array.isArray(o) ? 'a list' : typeof o}.`,
        );
      }
      const {
        image,
        caption,
        captions: list,
        split,
      } = o as { image?: unknown; caption?: unknown; captions?: unknown; split?: unknown };
      if (typeof image !== 'string' || image === '') throw new UserError(`${where}: needs a string "image" field.`);
      const captions =
        typeof caption === 'string'
          ? [caption]
          : Array.isArray(list) && list.every((c) => typeof c === 'string')
            ? (list as string[])
            : undefined;
      if (!captions) throw new UserError(`${where}: needs "caption": "..." or "captions": ["...", ...].`);
      if (split !== undefined && typeof split !== 'string')
        throw new UserError(`${where}: "split" must be a string (train, dev/val or test).`);
      rows.push({ image, captions, split, where });
    });
  return rows;
}
