/**
 * Karpathy's split files (dataset_coco.json, dataset_flickr8k.json, dataset_flickr30k.json):
 *
 *   {images: [{filepath?, filename, split: train|val|test|restval, sentences: [{raw, tokens}], cocoid?, imgid?}]}
 *
 * The image is at IMAGE_ROOT/filepath/filename (filepath is "train2014"/"val2014" for COCO, absent for
 * Flickr). "restval" (the COCO val images Karpathy did not hold out) folds into train, val -> dev.
 * We keep the raw sentence and let our own tokenizer process it, so every source is tokenised the same.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { parseSplitName } from './split.js';
import type { Dataset, DatasetImage } from './types.js';

export interface KarpathyOptions {
  /** Folder the image paths are relative to. */
  root: string;
  /** The dataset_*.json file (default: the only ROOT/dataset_*.json). */
  captionsFile?: string;
}

interface KarpathyJson {
  images: {
    filepath?: string;
    filename: string;
    split: string;
    sentences: { raw?: string; tokens?: string[] }[];
    cocoid?: number;
    imgid?: number;
  }[];
}

export function readKarpathy(opts: KarpathyOptions): Dataset {
  const root = path.resolve(opts.root);
  let file = opts.captionsFile ? path.resolve(opts.captionsFile) : undefined;
  if (!file) {
    const found = fs.existsSync(root) ? fs.readdirSync(root).filter((f) => /^dataset_.*\.json$/.test(f)) : [];
    if (found.length !== 1) {
      throw new UserError(
        `${found.length === 0 ? 'no' : 'several'} dataset_*.json in ${root}: pass the Karpathy split file with --captions FILE.`,
      );
    }
    file = path.join(root, found[0]);
  }
  let json: KarpathyJson;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`cannot read Karpathy split file ${file}: ${(e as Error).message}`);
  }
  if (!Array.isArray(json.images))
    throw new UserError(`${file} is not a Karpathy split file (expected an "images" array).`);

  const images: DatasetImage[] = [];
  const skipped: Dataset['skipped'] = [];
  const seen = new Set<string>();
  for (const [i, im] of json.images.entries()) {
    checkKarpathyImage(im, `${file}: images[${i}]`);
    const rel = path.join(im.filepath ?? '', im.filename);
    const id = im.cocoid !== undefined ? String(im.cocoid) : rel;
    const split = parseSplitName(String(im.split));
    const captions = (im.sentences ?? []).map((s) => (s.raw ?? (s.tokens ?? []).join(' ')).trim()).filter(Boolean);
    const p = path.join(root, rel);
    if (!split) skipped.push({ id, reason: `unknown split "${im.split}"` });
    else if (seen.has(id)) skipped.push({ id, reason: 'image listed twice; kept the first' });
    else if (captions.length === 0) skipped.push({ id, reason: 'image has no sentence' });
    else if (!fs.existsSync(p)) skipped.push({ id, reason: `image file not found under ${root}` });
    else {
      seen.add(id);
      images.push({ id, path: p, captions, split });
    }
  }
  return { kind: 'karpathy', images, skipped };
}

/** An image entry has a string filename (and filepath if any) and a list of sentence objects; otherwise its index is named. */
function checkKarpathyImage(im: unknown, where: string): asserts im is KarpathyJson['images'][number] {
  const o = im as Record<string, unknown> | null;
  const fix = 'each image needs {"filename", "split", "sentences": [{"raw"}]}';
  if (
    typeof o !== 'object' ||
    o === null ||
    typeof o.filename !== 'string' ||
    (o.filepath !== undefined && typeof o.filepath !== 'string')
  ) {
    throw new UserError(`${where} is ${JSON.stringify(im)?.slice(0, 120)}; ${fix}.`);
  }
  const sentences = o.sentences;
  if (
    sentences !== undefined &&
    (!Array.isArray(sentences) ||
      !sentences.every(
        (s) =>
          typeof s === 'object' &&
          s !== null &&
          (s.raw === undefined || typeof s.raw === 'string') &&
          (s.tokens === undefined ||
            (Array.isArray(s.tokens) && s.tokens.every((t: unknown) => typeof t === 'string'))),
      ))
  ) {
    throw new UserError(`${where} has sentences ${JSON.stringify(sentences)?.slice(0, 120)}; ${fix}.`);
  }
}
