/**
 * Seeded, by-image splitting and caption limiting shared by the readers. Everything here works on
 * whole images: an image and all of its captions always land in the same split, so no caption of a
 * dev/test image can leak into training.
 */
import { Rng } from '../util/rng.js';
import type { Dataset, DatasetImage, Split } from './types.js';

/** Split fractions, e.g. {train: 0.8, dev: 0.2} or {train: 0.8, dev: 0.1, test: 0.1}. */
export type SplitFractions = Partial<Record<Split, number>>;

/**
 * Assign splits to images (in place) after a seeded shuffle of the images. Counts are rounded so
 * that they sum to the number of images; train takes the remainder.
 */
export function splitByImage<T extends { split: Split }>(images: T[], fractions: SplitFractions, seed: number): T[] {
  const order = new Rng(seed).shuffle(images.map((_, i) => i));
  const n = images.length;
  const nDev = Math.round(n * (fractions.dev ?? 0));
  const nTest = Math.round(n * (fractions.test ?? 0));
  // Never let dev/test eat the whole (tiny) dataset: train keeps at least one image when it can.
  const nTrain = Math.max(Math.min(n, 1), n - nDev - nTest);
  const devEnd = nTrain + Math.min(nDev, n - nTrain);
  order.forEach((imageIndex, rank) => {
    images[imageIndex].split = rank < nTrain ? 'train' : rank < devEnd ? 'dev' : 'test';
  });
  return images;
}

/**
 * Keep only `limit` captions, chosen by a seeded shuffle of all (image, caption) pairs, the way the
 * TF tutorial keeps the first 30,000 captions of its shuffled COCO list. Images left with no caption are
 * dropped; image order and caption order inside an image are preserved.
 */
export function limitCaptions(images: DatasetImage[], limit: number, seed: number): DatasetImage[] {
  const pairs: [number, number][] = [];
  images.forEach((img, i) => img.captions.forEach((_, j) => pairs.push([i, j])));
  if (limit >= pairs.length) return images;
  const keep = new Rng(seed).shuffle(pairs).slice(0, limit);
  const kept = images.map(() => [] as number[]);
  for (const [i, j] of keep) kept[i].push(j);
  const out: DatasetImage[] = [];
  images.forEach((img, i) => {
    if (kept[i].length === 0) return;
    kept[i].sort((a, b) => a - b);
    out.push({ ...img, captions: kept[i].map((j) => img.captions[j]) });
  });
  return out;
}

/** Images and captions per split. */
export function splitCounts(dataset: Dataset): Record<Split, { images: number; captions: number }> {
  const counts = {
    train: { images: 0, captions: 0 },
    dev: { images: 0, captions: 0 },
    test: { images: 0, captions: 0 },
  };
  for (const img of dataset.images) {
    counts[img.split].images++;
    counts[img.split].captions += img.captions.length;
  }
  return counts;
}

/** Normalise a user-given split name ("val", "validation", "restval" ...) or return undefined. */
export function parseSplitName(name: string): Split | undefined {
  switch (name.trim().toLowerCase()) {
    case 'train':
    case 'training':
    case 'restval':
      return 'train';
    case 'dev':
    case 'val':
    case 'valid':
    case 'validation':
      return 'dev';
    case 'test':
    case 'testing':
      return 'test';
    default:
      return undefined;
  }
}
