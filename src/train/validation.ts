/**
 * The validation metric computed after every training epoch: greedy captions for the dev images (all of
 * them, or a seeded subset), scored with CIDEr-D or BLEU-4 exactly as `sat score` / pycocoevalcap do.
 * The trainer uses the value to keep the `best` checkpoint, to decay the learning rate on a plateau and
 * to stop early (src/train/loop.ts, `validate` hook). `sat eval` scores whole splits the same way
 * (src/eval/evaluate.ts).
 *
 * The references are PTB-tokenised once when the hook is made; each epoch only tokenises the new
 * hypotheses, so an epoch's metric costs one greedy decoding pass plus a few hundred milliseconds.
 */
import type { FeatureStoreReader } from '../features/types.js';
import type { CaptionModel } from '../model/types.js';
import type { PreparedImage } from '../dataset/run.js';
import type { TrainConfig, ValMetric } from './config.js';
import type { ValidateHook } from './loop.js';
import { decodeStoreImagesInterruptible } from '../decode/store.js';
import { decodeVocab } from '../decode/index.js';
import { bleu } from '../metrics/bleu.js';
import { ciderD } from '../metrics/cider.js';
import { tokenizeCaption } from '../metrics/ptb-tokenizer.js';
import { seededSubset } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import { defaultMaxLength, type Vocabulary } from '../vocab/vocabulary.js';

export type { ValMetric };

/** The metric's name as it appears in logs, checkpoint history and metrics.json. */
export const METRIC_LABEL: Record<Exclude<ValMetric, 'loss'>, 'CIDEr' | 'BLEU-4'> = { cider: 'CIDEr', bleu4: 'BLEU-4' };

/** Corpus score of already PTB-tokenised hypotheses against tokenised references (same order). */
export function metricValue(
  metric: Exclude<ValMetric, 'loss'>,
  hyps: readonly string[],
  refs: readonly (readonly string[])[],
): number {
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
    throw new UserError(
      `validation by ${METRIC_LABEL[opts.metric]} needs dev images with captions and stored features, and there are none ` +
        `(${opts.images.length} dev images). Extract features for the dev split (\`sat features\`) or pass --val-metric loss.`,
    );
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
      maxLength,
      batchSize: opts.batchSize,
      progress: opts.quiet ? false : `validate ${label} e${epoch}`,
      shouldStop,
    });
    if (captions === null) return null;
    const hyps = captions.map((c) => tokenizeCaption(c.words.join(' ')));
    return { metric: label, value: metricValue(opts.metric, hyps, refs) };
  };
}

/** The per-epoch metric hook for config.valMetric (none for 'loss', or when the run has no dev captions). */
export function validationHook(
  config: TrainConfig,
  images: readonly PreparedImage[],
  vocab: Vocabulary,
  store: FeatureStoreReader,
  quiet: boolean | undefined,
  log: (line: string) => void,
): ValidateHook | undefined {
  if (config.valMetric === 'loss') return undefined;
  const dev = images.filter((im) => im.split === 'dev' && im.captions.length > 0);
  if (dev.length === 0) {
    log(`  no dev captions: best epoch by training loss instead of ${config.valMetric} (val-metric).`);
    return undefined;
  }
  const n = config.valImages > 0 ? Math.min(config.valImages, dev.length) : dev.length;
  log(
    `  validation: ${METRIC_LABEL[config.valMetric]} of greedy captions for ${n} of ${dev.length} dev images each epoch`,
  );
  return makeValidateHook({
    store,
    images: dev,
    vocab,
    metric: config.valMetric,
    maxImages: config.valImages,
    seed: config.seed,
    quiet,
  });
}
