/**
 * Training examples and batches. As in the tutorial, every (image, caption) pair of a split is one example.
 * Each epoch shuffles the examples with the seeded Rng; with length bucketing on, the shuffled list is cut
 * into chunks of `bucketBatches` batches, each chunk is sorted by caption length and cut into batches, and
 * the batches of the whole epoch are shuffled again. A batch is padded only to its own longest caption, so
 * little compute goes to padding, while every epoch still sees a different mix.
 *
 * Features are read from the store per batch (only this batch's images), so RAM does not grow with the
 * dataset; the batch buffers are reused from batch to batch.
 */
import type { PreparedImage } from '../dataset/run.js';
import type { Split } from '../dataset/types.js';
import type { FeatureStoreReader } from '../features/types.js';
import type { TrainBatch } from '../model/types.js';
import type { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import { ExampleTable, ExampleTableBuilder } from './examples.js';

/**
 * Add one image's captions as examples, if it belongs to `split`. `maxLength` > 0 cuts longer captions to that
 * many tokens, keeping the final <end> so the model still learns to stop; captions of fewer than 2 tokens
 * (nothing to predict) are left out.
 */
export function addImageExamples(
  table: ExampleTableBuilder,
  image: Pick<PreparedImage, 'id' | 'split' | 'tokens'>,
  split: Split,
  maxLength = 0,
): void {
  if (image.split !== split) return;
  for (const caption of image.tokens) {
    if (caption.length < 2) continue;
    const toks =
      maxLength > 0 && caption.length > maxLength ? [...caption.slice(0, maxLength - 1), caption.at(-1)!] : caption;
    table.add(image.id, toks);
  }
}

/** All (image, caption) pairs of one split (see addImageExamples). */
export function splitExamples(images: Iterable<PreparedImage>, split: Split, maxLength = 0): ExampleTable {
  const table = new ExampleTableBuilder();
  for (const img of images) addImageExamples(table, img, split, maxLength);
  return table.build();
}

/**
 * One epoch's batches as lists of example indices. Consumes `rng` (its state after this call is the
 * next epoch's starting state). `bucketBatches` = 0 gives the tutorial's plain shuffled batches.
 */
export function epochBatches(examples: ExampleTable, batchSize: number, bucketBatches: number, rng: Rng): number[][] {
  const order = rng.shuffle(Array.from({ length: examples.length }, (_, i) => i));
  const batches: number[][] = [];
  if (bucketBatches <= 0) {
    for (let i = 0; i < order.length; i += batchSize) batches.push(order.slice(i, i + batchSize));
    return batches;
  }
  const chunk = bucketBatches * batchSize;
  for (let c = 0; c < order.length; c += chunk) {
    // Sort by length, ties by position in the shuffle, so the result depends on nothing but the rng.
    const part = order.slice(c, c + chunk).map((idx, pos) => ({ idx, pos }));
    part.sort((a, b) => examples.tokenCount(a.idx) - examples.tokenCount(b.idx) || a.pos - b.pos);
    for (let i = 0; i < part.length; i += batchSize) batches.push(part.slice(i, i + batchSize).map((p) => p.idx));
  }
  return rng.shuffle(batches);
}

/**
 * One epoch's batches with every caption of an image in the same batch (ruotianluo's seq_per_img): the images
 * are shuffled, and a batch takes whole images while their captions fit in `batchSize` (at least one image).
 * With `bucketBatches` > 0, images are sorted by their longest caption within shuffled chunks of that many
 * batches, as epochBatches does for captions. Within a batch, rows go longest first, so the native recurrence
 * skips the padding. Consumes `rng` as epochBatches does.
 */
export function epochImageBatches(
  examples: ExampleTable,
  batchSize: number,
  bucketBatches: number,
  rng: Rng,
): number[][] {
  const byImage: number[][] = []; // rows per image, in order of first appearance
  const groupOf = new Int32Array(examples.imageCount).fill(-1);
  for (let i = 0; i < examples.length; i++) {
    const image = examples.imageIndex(i);
    if (groupOf[image] < 0) {
      groupOf[image] = byImage.length;
      byImage.push([]);
    }
    byImage[groupOf[image]].push(i);
  }
  const longest = (g: number[]) => Math.max(...g.map((i) => examples.tokenCount(i)));
  let groups = rng.shuffle(byImage);
  if (bucketBatches > 0) {
    const perChunk = Math.max(1, Math.round((bucketBatches * batchSize * byImage.length) / examples.length));
    const sorted: number[][] = [];
    for (let c = 0; c < groups.length; c += perChunk) {
      const part = groups.slice(c, c + perChunk).map((g, pos) => ({ g, pos, len: longest(g) }));
      part.sort((a, b) => a.len - b.len || a.pos - b.pos);
      sorted.push(...part.map((p) => p.g));
    }
    groups = sorted;
  }
  const batches: number[][] = [];
  let batch: number[] = [];
  for (const g of groups) {
    if (batch.length > 0 && batch.length + g.length > batchSize) {
      batches.push(batch);
      batch = [];
    }
    batch.push(...g);
  }
  if (batch.length > 0) batches.push(batch);
  for (const b of batches) b.sort((x, y) => examples.tokenCount(y) - examples.tokenCount(x) || x - y);
  return rng.shuffle(batches);
}

/** Validation batches: no shuffle, sorted by length for little padding (the loss does not depend on order). */
export function fixedBatches(examples: ExampleTable, batchSize: number): number[][] {
  const order = Array.from({ length: examples.length }, (_, i) => i).sort(
    (a, b) => examples.tokenCount(a) - examples.tokenCount(b) || a - b,
  );
  const batches: number[][] = [];
  for (let i = 0; i < order.length; i += batchSize) batches.push(order.slice(i, i + batchSize));
  return batches;
}

/**
 * Decoded features of recently used images, least recently used evicted first, at most `capBytes`.
 * Each image is read and converted from fp16 once per epoch per caption otherwise (5 times per epoch on
 * Flickr8k/COCO/shapes); when the whole training set fits (the demo) reads stop after the first epoch.
 * The cap keeps RAM bounded whatever the dataset size.
 */
export class FeatureCache {
  private readonly map = new Map<string, Float32Array>(); // Map iteration order = least recently used first
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(private readonly capBytes: number) {}

  get(id: string): Float32Array | undefined {
    const f = this.map.get(id);
    if (f) {
      this.map.delete(id);
      this.map.set(id, f);
      this.hits++;
    } else {
      this.misses++;
    }
    return f;
  }

  put(id: string, features: Float32Array): void {
    if (features.byteLength > this.capBytes || this.map.has(id)) return;
    for (const [old, f] of this.map) {
      if (this.bytes + features.byteLength <= this.capBytes) break;
      this.map.delete(old);
      this.bytes -= f.byteLength;
    }
    this.map.set(id, features);
    this.bytes += features.byteLength;
  }
}

/** Fills TrainBatch objects from a feature store, reusing one feature buffer of [batchSize, L, C]. */
export class BatchAssembler {
  private readonly features: Float32Array;
  private readonly perImage: number;
  /** Milliseconds spent reading features, to show whether prefetching would pay off. */
  readMs = 0;

  constructor(
    private readonly store: FeatureStoreReader,
    private readonly examples: ExampleTable,
    batchSize: number,
    private readonly cache: FeatureCache = new FeatureCache(0),
  ) {
    this.perImage = store.locations * store.channels;
    this.features = new Float32Array(batchSize * this.perImage);
  }

  /**
   * The returned batch views internal buffers: it is valid until the next call. `shareImages`: features hold each
   * distinct image once and imageOfRow says which row uses which (the projection then runs once per image);
   * otherwise every row has its own copy. `storeKey` says which features a row reads (default: its image's), e.g.
   * the image's mirrored view.
   */
  assemble(indices: number[], shareImages = false, storeKey?: (row: number, image: string) => string): TrainBatch {
    const size = indices.length;
    let longest = 0;
    for (const i of indices) longest = Math.max(longest, this.examples.tokenCount(i));
    const tokens = new Int32Array(size * longest); // [B, T+1], 0 = <pad>
    const t0 = performance.now();
    const rowOf = new Map<string, number>(); // an image twice in one batch is read once
    const imageOfRow = shareImages ? new Int32Array(size) : undefined;
    indices.forEach((exampleIndex, row) => {
      const own = this.examples.image(exampleIndex);
      const image = storeKey ? storeKey(row, own) : own;
      tokens.set(this.examples.tokens(exampleIndex), row * longest);
      const earlier = rowOf.get(image);
      if (imageOfRow) {
        if (earlier !== undefined) {
          imageOfRow[row] = earlier;
          return;
        }
        imageOfRow[row] = rowOf.size;
      }
      const slot = imageOfRow ? imageOfRow[row] : row;
      const at = slot * this.perImage;
      if (earlier !== undefined) {
        this.features.copyWithin(at, earlier * this.perImage, (earlier + 1) * this.perImage);
        return;
      }
      rowOf.set(image, slot);
      const cached = this.cache.get(image);
      if (cached) {
        this.features.set(cached, at);
        return;
      }
      if (!this.store.has(image)) {
        throw new UserError(
          `Image "${image}" has no features in the store (${this.store.encoderId}). ` +
            'Run `sat features` on this run again to extract the missing images.',
        );
      }
      this.store.read(image, this.features, at);
      this.cache.put(image, this.features.slice(at, at + this.perImage));
    });
    this.readMs += performance.now() - t0;
    const images = imageOfRow ? rowOf.size : size;
    const features = this.features.subarray(0, images * this.perImage);
    return { size, steps: longest - 1, features, tokens, ...(imageOfRow ? { imageOfRow } : {}) };
  }
}
