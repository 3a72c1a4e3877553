/**
 * The validation metric computed after every training epoch: greedy captions for the dev images (all of
 * them, or a seeded subset), scored with CIDEr-D or BLEU-4 exactly as `sat score` / pycocoevalcap do.
 * The trainer uses the value to keep the `best` checkpoint, to decay the learning rate on a plateau and
 * to stop early (src/train/loop.ts, `validate` hook).
 *
 * The references are PTB-tokenised once when the hook is made; each epoch only tokenises the new
 * hypotheses, so an epoch's metric costs one greedy decoding pass plus a few hundred milliseconds.
 */
import type { FeatureStoreReader } from '../features/types.js';
import type { CaptionModel } from '../model/types.js';
import type { PreparedImage } from '../dataset/run.js';
import type { ValMetric } from '../train/config.js';
import type { ValidateHook } from '../train/loop.js';
import { decodeStoreImagesInterruptible } from '../decode/store.js';
import { decodeVocab } from '../decode/index.js';
import { bleu } from '../metrics/bleu.js';
import { ciderD } from '../metrics/cider.js';
import { tokenizeCaption } from '../metrics/ptb-tokenizer.js';
import { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import type { Vocabulary } from '../vocab/vocabulary.js';

export type { ValMetric };

/** The metric's name as it appears in logs, checkpoint history and metrics.json. */
export const METRIC_LABEL: Record<Exclude<ValMetric, 'loss'>, 'CIDEr' | 'BLEU-4'> = { cider: 'CIDEr', bleu4: 'BLEU-4' };

/** Tokens generated per image, <end> included: the vocabulary's longest sequence minus <start>. */
export const defaultMaxLength = (vocab: Vocabulary) => Math.max(1, vocab.maxLength - 1);

/**
 * `count` images picked by a seeded shuffle (all of them, in their original order, when count is 0 or
 * at least the number of images). The same seed always picks the same images.
 */
export function seededSubset<T>(items: readonly T[], count: number, seed: number): T[] {
  if (count <= 0 || count >= items.length) return [...items];
  const order = new Rng(seed).shuffle(items.map((_, i) => i)).slice(0, count).sort((a, b) => a - b);
  return order.map((i) => items[i]);
}

/** Corpus score of already PTB-tokenised hypotheses against tokenised references (same order). */
export function metricValue(metric: Exclude<ValMetric, 'loss'>, hyps: readonly string[], refs: readonly (readonly string[])[]): number {
  return metric === 'cider' ? ciderD(hyps, refs) : bleu(hyps, refs)[3];
}

export interface ValidationOptions {
  store: FeatureStoreReader;
  /** The dev images (their raw captions are the references). */
  images: readonly PreparedImage[];
  vocab: Vocabulary;
  metric: Exclude<ValMetric, 'loss'>;
  /** Decode only this many dev images, picked by `seed` (0 = all). */
  maxImages: number;
  seed: number;
  /** Tokens generated per image (default: the vocabulary's max length - 1). */
  maxLength?: number;
  /** Images per decoding batch (default 64). */
  batchSize?: number;
  quiet?: boolean;
}

/** A ValidateHook for the training loop; throws a UserError up front if no dev image can be scored. */
export function makeValidateHook(opts: ValidationOptions): ValidateHook {
  const usable = opts.images.filter((im) => im.captions.length > 0 && opts.store.has(im.id));
  if (usable.length === 0) {
    throw new UserError(`validation by ${METRIC_LABEL[opts.metric]} needs dev images with captions and stored features, and there are none ` +
      `(${opts.images.length} dev images). Extract features for the dev split (\`sat features\`) or pass --val-metric loss.`);
  }
  const chosen = seededSubset(usable, opts.maxImages, opts.seed);
  const ids = chosen.map((im) => im.id);
  const refs = chosen.map((im) => im.captions.map(tokenizeCaption));
  const vocab = decodeVocab(opts.vocab);
  const maxLength = opts.maxLength ?? defaultMaxLength(opts.vocab);
  const label = METRIC_LABEL[opts.metric];
  return async (model: CaptionModel, epoch: number, shouldStop = () => false) => {
    // Interruptible: the event loop runs between decoding batches, so Ctrl-C during a long pass is heard.
    const captions = await decodeStoreImagesInterruptible(model, opts.store, ids, vocab, {
      strategy: { kind: 'greedy' }, maxLength, batchSize: opts.batchSize,
      progress: opts.quiet ? false : `validate ${label} e${epoch}`, shouldStop,
    });
    if (captions === null) return null;
    const hyps = captions.map((c) => tokenizeCaption(c.words.join(' ')));
    return { metric: label, value: metricValue(opts.metric, hyps, refs) };
  };
}
