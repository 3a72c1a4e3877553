/**
 * MS-COCO captions in the official format:
 *
 *   ROOT/annotations/captions_<split><year>.json   {images: [{id, file_name}], annotations: [{image_id, caption}]}
 *   ROOT/<split><year>/<file_name>                 e.g. ROOT/train2014/COCO_train2014_000000000009.jpg
 *
 * Which caption files are used: --captions FILE if given, otherwise every annotations/captions_*.json whose
 * image folder exists (a caption file without its images, e.g. captions_val2014.json after downloading
 * only train2014.zip, is reported and left out).
 *
 * Splits, by image: with a train and a val file, train -> train and val -> dev. With one file (the tutorial's
 * setup: captions_train2014.json only), the captions are optionally limited to the first N of a seeded
 * shuffle (the tutorial keeps 30,000) and the images are then split 80/20 train/dev with the same seed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { limitCaptions, splitByImage } from './split.js';
import type { Dataset, DatasetImage, Split } from './types.js';

export interface CocoOptions {
  root: string;
  /** One caption file instead of discovering annotations/captions_*.json. */
  captionsFile?: string;
  /** Keep only this many captions (seeded shuffle), before splitting. */
  limitCaptions?: number;
  seed?: number;
  /** Fraction of images that go to dev when one caption file is split (default 0.2, the tutorial's). */
  devFraction?: number;
}

interface CocoJson {
  images: { id: number | string; file_name: string }[];
  annotations: { image_id: number | string; caption: string }[];
}

/** "captions_train2014.json" -> "train2014" */
const folderOf = (file: string) => path.basename(file, '.json').replace(/^captions_/, '');

export function readCoco(opts: CocoOptions): Dataset {
  const root = path.resolve(opts.root);
  const seed = opts.seed ?? 42;
  const skipped: Dataset['skipped'] = [];
  let files: string[];
  if (opts.captionsFile) {
    files = [path.resolve(opts.captionsFile)];
  } else {
    const annDir = path.join(root, 'annotations');
    if (!fs.existsSync(annDir))
      throw new UserError(
        `COCO annotations not found: ${annDir} does not exist. Pass the folder holding annotations/ and train2014/ as --root, or add --download.`,
      );
    files = fs
      .readdirSync(annDir)
      .filter((f) => /^captions_.*\.json$/.test(f))
      .sort()
      .map((f) => path.join(annDir, f));
    if (files.length === 0)
      throw new UserError(`no captions_*.json in ${annDir}. Pass --captions FILE or add --download.`);
  }

  const sources: { file: string; imageDir: string }[] = [];
  for (const file of files) {
    const folder = folderOf(file);
    // With an explicit --captions file whose folder name matches nothing, the images sit in ROOT itself.
    const candidates = [path.join(root, folder), path.join(root, 'images', folder)];
    const imageDir =
      candidates.find((d) => fs.existsSync(d) && fs.statSync(d).isDirectory()) ??
      (opts.captionsFile ? root : undefined);
    if (!imageDir)
      skipped.push({
        id: path.basename(file),
        reason: `image folder ${path.join(root, folder)} not found; caption file not used`,
      });
    else sources.push({ file, imageDir });
  }
  if (sources.length === 0)
    throw new UserError(
      `no COCO caption file has its image folder under ${root} (looked for ${files.map(folderOf).join(', ')}).`,
    );

  const perSource = sources.map((s) => readCocoFile(s.file, s.imageDir, skipped));
  const trainLike = sources.findIndex((s) => /train/.test(folderOf(s.file)));
  const valLike = sources.findIndex((s) => /val/.test(folderOf(s.file)));
  let images: DatasetImage[];
  if (sources.length >= 2 && trainLike >= 0 && valLike >= 0) {
    // Official train -> train, official val -> dev; any other file is reported and left out.
    sources.forEach((s, i) => {
      if (i !== trainLike && i !== valLike)
        skipped.push({ id: path.basename(s.file), reason: 'neither the train nor the val caption file; not used' });
    });
    perSource[trainLike].forEach((img) => (img.split = 'train'));
    perSource[valLike].forEach((img) => (img.split = 'dev'));
    images = [...perSource[trainLike], ...perSource[valLike]];
    if (opts.limitCaptions !== undefined) images = limitCaptions(images, opts.limitCaptions, seed);
  } else {
    images = perSource.flat();
    if (opts.limitCaptions !== undefined) images = limitCaptions(images, opts.limitCaptions, seed);
    const devFraction = opts.devFraction ?? 0.2;
    splitByImage(images, { train: 1 - devFraction, dev: devFraction }, seed);
  }
  return { kind: 'coco', images, skipped };
}

const isId = (v: unknown) => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));

/** Every image has an id and a file name, every annotation an image id and a caption; the first that does not is named. */
function checkCocoEntries(json: CocoJson, file: string): void {
  const fix = 'each image needs {"id", "file_name"} and each annotation {"image_id", "caption"}';
  json.images.forEach((im: unknown, i) => {
    const o = im as Record<string, unknown> | null;
    if (typeof o !== 'object' || o === null || !isId(o.id) || typeof o.file_name !== 'string' || o.file_name === '') {
      throw new UserError(`${file}: images[${i}] is ${JSON.stringify(im)?.slice(0, 120)}; ${fix}.`);
    }
  });
  json.annotations.forEach((ann: unknown, i) => {
    const o = ann as Record<string, unknown> | null;
    if (typeof o !== 'object' || o === null || !isId(o.image_id) || typeof o.caption !== 'string') {
      throw new UserError(`${file}: annotations[${i}] is ${JSON.stringify(ann)?.slice(0, 120)}; ${fix}.`);
    }
  });
}

function readCocoFile(file: string, imageDir: string, skipped: Dataset['skipped']): DatasetImage[] {
  let json: CocoJson;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`cannot read COCO caption file ${file}: ${(e as Error).message}`);
  }
  if (!Array.isArray(json.images) || !Array.isArray(json.annotations)) {
    throw new UserError(`${file} is not a COCO captions file (expected "images" and "annotations" arrays).`);
  }
  checkCocoEntries(json, file);
  const byId = new Map<string, DatasetImage>();
  const missing = new Set<string>();
  for (const im of json.images) {
    const id = String(im.id);
    const p = path.join(imageDir, im.file_name);
    if (!fs.existsSync(p)) missing.add(id);
    else byId.set(id, { id, path: p, captions: [], split: 'train' as Split });
  }
  const orphans = new Map<string, number>();
  for (const ann of json.annotations) {
    const id = String(ann.image_id);
    const img = byId.get(id);
    if (img) img.captions.push(ann.caption.trim());
    else if (!missing.has(id)) orphans.set(id, (orphans.get(id) ?? 0) + 1);
  }
  for (const id of missing) skipped.push({ id, reason: `image file not found in ${imageDir}` });
  for (const [id, n] of orphans)
    skipped.push({ id, reason: `${n} captions name an image id that is not in ${path.basename(file)}` });
  const images = [...byId.values()];
  for (const img of images) if (img.captions.length === 0) skipped.push({ id: img.id, reason: 'image has no caption' });
  return images.filter((img) => img.captions.length > 0);
}
