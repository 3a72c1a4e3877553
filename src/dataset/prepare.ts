/**
 * `sat prepare` as a library: read a dataset, build the vocabulary on its train captions, tokenise every
 * caption and write the run directory (see src/dataset/run.ts):
 *
 *   run.json      RunInfo below: source, options, per-split counts, caption length stats, skipped items
 *   vocab.json    src/vocab/vocabulary.ts
 *   images.jsonl  one PreparedImage per line (absolute image path, raw captions, split, token ids)
 *
 * Other stages read it back with `loadRun(dir)`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readCoco } from './coco.js';
import { downloadDataset } from './download.js';
import { readFlickr8k } from './flickr8k.js';
import { readFolder } from './folder.js';
import { readKarpathy } from './karpathy.js';
import { generateShapesDataset, readShapes } from './shapes.js';
import { limitCaptions, splitCounts } from './split.js';
import { SPLITS, type Dataset, type Split } from './types.js';
import { runPaths, type PreparedImage } from './run.js';
import { writeFilesAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import { forEachLine } from '../util/read-lines.js';
import { tokenize, Vocabulary } from '../vocab/vocabulary.js';

export const DATASET_KINDS = ['flickr8k', 'coco', 'karpathy', 'folder', 'shapes'] as const;
export type DatasetKind = (typeof DATASET_KINDS)[number];

export interface PrepareOptions {
  dataset: DatasetKind;
  /** Dataset folder. For shapes it is where the images are generated (default OUT/shapes). */
  root?: string;
  /** The run directory to write. */
  out: string;
  /** Caption file overriding the reader's default (token file, captions_*.json, dataset_*.json, CSV/JSONL). */
  captionsFile?: string;
  topK?: number;
  maxLength?: number;
  /** Keep only this many captions, chosen by a seeded shuffle (the tutorial trains COCO on 30,000). */
  limitCaptions?: number;
  seed?: number;
  /** Download (and extract) the dataset into root first: coco and flickr8k only. */
  download?: boolean;
  downloadBaseUrl?: string;
  /** Shapes only: number of images and their side in pixels. */
  images?: number;
  imageSize?: number;
  /** Overwrite a run directory that already has features or checkpoints. */
  force?: boolean;
  silent?: boolean;
}

export interface LengthStats {
  min: number;
  median: number;
  p95: number;
  max: number;
}

export interface RunInfo {
  format: 'sat-run';
  version: 1;
  createdAt: string;
  dataset: {
    kind: DatasetKind;
    root: string;
    captionsFile?: string;
    limitCaptions?: number;
    images?: number;
    imageSize?: number;
  };
  seed: number;
  vocab: { topK: number; size: number; maxLength: number; distinctTrainTokens: number };
  counts: Record<Split, { images: number; captions: number }>;
  /** Train caption lengths in tokens, <start>/<end> included, before truncation to maxLength. */
  captionLength: LengthStats;
  /** Captions (all splits) cut to maxLength. */
  truncatedCaptions: number;
  skippedCount: number;
  /** The first 1000 skipped items. */
  skipped: Dataset['skipped'];
}

export interface LoadedRun {
  dir: string;
  info: RunInfo;
  vocab: Vocabulary;
  images: PreparedImage[];
}

export async function readDataset(opts: PrepareOptions): Promise<Dataset> {
  const seed = opts.seed ?? 42;
  const root = path.resolve(opts.root ?? (opts.dataset === 'shapes' ? path.join(opts.out, 'shapes') : ''));
  if (!opts.root && opts.dataset !== 'shapes')
    throw new UserError(
      `--root is required for --dataset ${opts.dataset}: the folder holding the dataset (or where --download puts it).`,
    );
  if (opts.download) {
    if (opts.dataset !== 'coco' && opts.dataset !== 'flickr8k')
      throw new UserError(`--download works for coco and flickr8k, not ${opts.dataset}.`);
    await downloadDataset(opts.dataset, root, { baseUrl: opts.downloadBaseUrl, silent: opts.silent });
  }
  switch (opts.dataset) {
    case 'flickr8k':
      return readFlickr8k({ root, captionsFile: opts.captionsFile });
    case 'coco':
      return readCoco({ root, captionsFile: opts.captionsFile, limitCaptions: opts.limitCaptions, seed });
    case 'karpathy':
      return readKarpathy({ root, captionsFile: opts.captionsFile });
    case 'folder':
      return readFolder({ root, captionsFile: opts.captionsFile, seed });
    case 'shapes':
      await generateShapesDataset({
        dir: root,
        count: opts.images ?? 1000,
        seed,
        size: opts.imageSize ?? 224,
        silent: opts.silent,
      });
      return readShapes({ root });
    default:
      throw new UserError(`unknown --dataset "${String(opts.dataset)}"; use one of ${DATASET_KINDS.join(', ')}.`);
  }
}

function lengthStats(lengths: number[]): LengthStats {
  const s = [...lengths].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * (s.length - 1) + 0.5))];
  return { min: s[0], median: at(0.5), p95: at(0.95), max: s[s.length - 1] };
}

export async function prepareRun(opts: PrepareOptions): Promise<LoadedRun & { dataset: Dataset }> {
  const seed = opts.seed ?? 42;
  const paths = runPaths(path.resolve(opts.out));
  if (
    !opts.force &&
    fs.existsSync(paths.runJson) &&
    (fs.existsSync(paths.checkpoints) || fs.existsSync(path.join(paths.dir, 'features')))
  ) {
    throw new UserError(
      `${paths.dir} already holds features or checkpoints built on its vocabulary; use a new --out or pass --force to overwrite.`,
    );
  }
  let dataset = await readDataset(opts);
  // COCO applies the limit itself, before its 80/20 split; everyone else keeps their split.
  if (opts.limitCaptions !== undefined && opts.dataset !== 'coco') {
    dataset = { ...dataset, images: limitCaptions(dataset.images, opts.limitCaptions, seed) };
  }
  const train = dataset.images.filter((im) => im.split === 'train').flatMap((im) => im.captions);
  const vocab = Vocabulary.build(train, { topK: opts.topK, maxLength: opts.maxLength });

  let truncated = 0;
  const images: PreparedImage[] = dataset.images.map((im) => ({
    ...im,
    tokens: im.captions.map((c) => {
      if (tokenize(c).length + 2 > vocab.maxLength) truncated++;
      return vocab.encode(c);
    }),
  }));
  const info: RunInfo = {
    format: 'sat-run',
    version: 1,
    createdAt: new Date().toISOString(),
    dataset: {
      kind: opts.dataset,
      root: path.resolve(opts.root ?? path.join(opts.out, 'shapes')),
      ...(opts.captionsFile ? { captionsFile: path.resolve(opts.captionsFile) } : {}),
      ...(opts.limitCaptions !== undefined ? { limitCaptions: opts.limitCaptions } : {}),
      ...(opts.dataset === 'shapes' ? { images: opts.images ?? 1000, imageSize: opts.imageSize ?? 224 } : {}),
    },
    seed,
    vocab: {
      topK: vocab.topK,
      size: vocab.size,
      maxLength: vocab.maxLength,
      distinctTrainTokens: vocab.distinctTrainTokens,
    },
    counts: splitCounts(dataset),
    captionLength: lengthStats(train.map((c) => tokenize(c).length + 2)),
    truncatedCaptions: truncated,
    skippedCount: dataset.skipped.length,
    skipped: dataset.skipped.slice(0, 1000),
  };
  fs.mkdirSync(paths.dir, { recursive: true });
  // All three written and checked before any replaces its old version (a full disk keeps a previous run whole);
  // run.json renamed last: its presence means the run directory is complete.
  writeFilesAtomic(
    [
      { file: paths.vocab, data: JSON.stringify(vocab.toJSON()) + '\n' },
      { file: paths.images, data: jsonLines(images) },
      { file: paths.runJson, data: JSON.stringify(info, null, 2) + '\n' },
    ],
    'the prepared run (vocab.json, images.jsonl, run.json)',
  );
  return { dir: paths.dir, info, vocab, images, dataset };
}

/** Read a run directory written by `sat prepare`. */
export function loadRun(dir: string): LoadedRun {
  const run = loadRunInfo(dir);
  const images: PreparedImage[] = [];
  forEachPreparedImage(run.dir, (im) => images.push(im));
  return { ...run, images };
}

/** A run's run.json and vocabulary, without its images (forEachPreparedImage streams those). */
export function loadRunInfo(dir: string): Omit<LoadedRun, 'images'> {
  const paths = runPaths(path.resolve(dir));
  if (!fs.existsSync(paths.runJson)) {
    throw new UserError(
      `${paths.dir} is not a prepared run (no run.json). Create it with \`sat prepare --dataset ... --out ${dir}\`.`,
    );
  }
  const info = JSON.parse(fs.readFileSync(paths.runJson, 'utf8')) as RunInfo;
  if (info.format !== 'sat-run') throw new UserError(`${paths.runJson} is not a sat run file; rerun \`sat prepare\`.`);
  return { dir: paths.dir, info, vocab: Vocabulary.load(paths.vocab) };
}

/**
 * Each image of a run's images.jsonl, in file order, read line by line: memory holds only what `visit` keeps.
 * A line that is not a prepared image is an error naming the file and line.
 */
export function forEachPreparedImage(dir: string, visit: (image: PreparedImage) => void): void {
  const file = runPaths(path.resolve(dir)).images;
  forEachLine(file, (line, lineNumber) => {
    if (line.trim() === '') return;
    let image: unknown;
    try {
      image = JSON.parse(line);
    } catch (e) {
      throw new UserError(`${file}, line ${lineNumber}: not JSON (${(e as Error).message}). Rerun \`sat prepare\`.`);
    }
    if (!isPreparedImage(image))
      throw new UserError(
        `${file}, line ${lineNumber}: not a prepared image (needs id, path, split, captions and tokens). Rerun \`sat prepare\`.`,
      );
    visit(image);
  });
}

function isPreparedImage(x: unknown): x is PreparedImage {
  if (typeof x !== 'object' || x === null) return false;
  const im = x as Record<string, unknown>;
  return (
    typeof im.id === 'string' &&
    typeof im.path === 'string' &&
    typeof im.split === 'string' &&
    Array.isArray(im.captions) &&
    Array.isArray(im.tokens)
  );
}

/** The images of one split, in file order. */
export function imagesOf(run: { images: PreparedImage[] }, split: Split): PreparedImage[] {
  return run.images.filter((im) => im.split === split);
}

/** The human-readable report `sat prepare` prints. */
export function formatReport(info: RunInfo): string {
  const lines = [`dataset ${info.dataset.kind} (${info.dataset.root}), seed ${info.seed}`];
  for (const s of SPLITS) {
    const c = info.counts[s];
    if (c.images > 0)
      lines.push(`  ${s.padEnd(5)} ${String(c.images).padStart(7)} images ${String(c.captions).padStart(8)} captions`);
  }
  const v = info.vocab;
  lines.push(
    `vocabulary: V = ${v.size} (<pad>, <unk> + ${v.size - 2} of ${v.distinctTrainTokens} distinct train tokens incl. <start>/<end>; top-k ${v.topK})`,
  );
  const l = info.captionLength;
  lines.push(
    `train caption length (tokens incl. <start>/<end>): min ${l.min}, median ${l.median}, p95 ${l.p95}, max ${l.max}; ` +
      `max length ${v.maxLength}, ${info.truncatedCaptions} captions truncated`,
  );
  if (info.skippedCount === 0) lines.push('skipped: nothing');
  else {
    // Group by reason so thousands of missing files read as one line with examples.
    const byReason = new Map<string, string[]>();
    for (const s of info.skipped) byReason.set(s.reason, [...(byReason.get(s.reason) ?? []), s.id]);
    lines.push(
      `skipped: ${info.skippedCount} item(s)${info.skippedCount > info.skipped.length ? ` (first ${info.skipped.length} listed in run.json)` : ''}`,
    );
    for (const [reason, ids] of byReason) {
      lines.push(`  ${ids.length} x ${reason}: ${ids.slice(0, 3).join(', ')}${ids.length > 3 ? ', ...' : ''}`);
    }
  }
  return lines.join('\n');
}

/** One JSON line per item, as chunks of about 1 MB (no single string of a COCO-size list). */
function jsonLines(items: readonly unknown[]): Buffer[] {
  const chunks: Buffer[] = [];
  let lines: string[] = [];
  let size = 0;
  for (const item of items) {
    const line = JSON.stringify(item) + '\n';
    lines.push(line);
    size += line.length;
    if (size >= 1 << 20) {
      chunks.push(Buffer.from(lines.join(''), 'utf8'));
      lines = [];
      size = 0;
    }
  }
  if (lines.length > 0) chunks.push(Buffer.from(lines.join(''), 'utf8'));
  return chunks;
}
