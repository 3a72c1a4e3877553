/**
 * Self-critical sequence training (SCST; Rennie et al. 2017), the step that follows cross-entropy training in
 * most captioning systems since: it optimises the CIDEr-D the model is judged by, on its own samples.
 *
 * Per batch of images: sample K captions per image from the model (temperature 1), reward each with its
 * CIDEr-D against the image's training references (document frequencies from the whole training corpus),
 * and use the mean reward of the image's *other* K-1 samples as the baseline (Luo 2020, "A Better Variant of
 * Self-Critical Sequence Training": no greedy decode needed). The policy gradient
 *     sum_k (r_k - b_k) * grad(-log p(caption_k | image))
 * is exactly a teacher-forced cross-entropy step over the sampled captions, each weighted by its advantage:
 * the native trainStep with batch.weights (native/train.cc).
 *
 * The samples come from the model without dropout, so the step that recomputes their log-probabilities should
 * run without dropout too (configs/scst.json sets dropout 0): with dropout the gradient is for another policy.
 */
import type { CaptionModel, OptimizerOptions, StepStats, TrainBatch } from '../model/types.js';
import type { PreparedImage } from '../dataset/run.js';
import type { Vocabulary } from '../vocab/vocabulary.js';
import { decodeImages, decodeVocab } from '../decode/index.js';
import { bleuFromStats, bleuImageStats } from '../metrics/bleu.js';
import { CiderD } from '../metrics/cider.js';
import { tokenizeCaption } from '../metrics/ptb-tokenizer.js';
import { UserError } from '../util/errors.js';
import type { DecodedCaption } from '../decode/types.js';
import { ExampleTable } from './examples.js';

/** One optimiser step on a batch of examples; replaces the teacher-forced step in trainLoop. */
export interface BatchObjective {
  /** Examples (here: images) per batch. */
  readonly examplesPerBatch: number;
  /** What the progress bar counts per example. */
  readonly unit: string;
  /** `imageIds`: the image of each example of the batch, in row order. */
  step(
    model: CaptionModel,
    batch: TrainBatch,
    imageIds: readonly string[],
    opt: OptimizerOptions,
    seed: number,
  ): StepStats;
}

export interface SelfCriticalOptions {
  /** The training images; their raw captions are the references (PTB-tokenised here, as evaluation does). */
  images: readonly PreparedImage[];
  vocab: Vocabulary;
  /** K: captions sampled per image (>= 2, for the leave-one-out baseline). */
  samples: number;
  /** Images per step: ceil(captions per batch / K), so a step sees about as many captions as a cross-entropy one. */
  captionsPerBatch: number;
  /** Tokens sampled per caption at most, <end> included. */
  maxLength: number;
  /** The reward is CIDEr-D + bleuWeight x sentence BLEU-4 against the same references (default 0: CIDEr-D alone). */
  bleuWeight?: number;
}

/** Leave-one-out baselines: b_k = mean of the other rewards of the same image (groups of `k` in order). */
export function leaveOneOutAdvantages(rewards: ArrayLike<number>, k: number): Float32Array {
  if (k < 2 || rewards.length % k !== 0)
    throw new Error(`leaveOneOutAdvantages: ${rewards.length} rewards in groups of ${k}`);
  const out = new Float32Array(rewards.length);
  for (let g = 0; g < rewards.length; g += k) {
    let sum = 0;
    for (let j = 0; j < k; j++) sum += rewards[g + j];
    for (let j = 0; j < k; j++) out[g + j] = rewards[g + j] - (sum - rewards[g + j]) / (k - 1);
  }
  return out;
}

export interface SelfCriticalObjective extends BatchObjective {
  /** K sampled captions per image of the batch and their rewards (rows b*K + k), without a training step. */
  sample(
    model: CaptionModel,
    batch: TrainBatch,
    imageIds: readonly string[],
    seed: number,
  ): { captions: DecodedCaption[]; rewards: number[] };
}

/** SCST as a BatchObjective over one example per training image (see selfCriticalExamples). */
export function selfCriticalObjective(opts: SelfCriticalOptions): SelfCriticalObjective {
  const K = opts.samples;
  if (!Number.isInteger(K) || K < 2)
    throw new UserError(`scstSamples must be an integer >= 2 (the baseline is the other samples' mean), got ${K}.`);
  if (!Number.isInteger(opts.maxLength) || opts.maxLength < 1)
    throw new UserError(`scstMaxLength must be an integer >= 1, got ${opts.maxLength}.`);
  const withRefs = opts.images.filter((im) => im.captions.length > 0);
  const imageIndex = new Map(withRefs.map((im, i) => [im.id, i]));
  const tokenisedRefs = withRefs.map((im) => im.captions.map(tokenizeCaption));
  const scorer = new CiderD(tokenisedRefs);
  const bleuWeight = opts.bleuWeight ?? 0;
  const reward = (caption: string, image: number) => {
    const cider = scorer.score(caption, image);
    return bleuWeight > 0
      ? cider + bleuWeight * bleuFromStats([bleuImageStats(caption, tokenisedRefs[image])])[3]
      : cider;
  };
  const vocab = decodeVocab(opts.vocab);
  /** Row b*K + k of the sampled captions is sample k of image b: each image is encoded once, for sampling and training. */
  const sampleImages = (model: CaptionModel, batch: TrainBatch, imageIds: readonly string[], seed: number) => {
    const captions = decodeImages(model, batch.features, batch.size, vocab, {
      sample: true,
      temperature: 1,
      seed,
      maxLength: opts.maxLength,
      samplesPerImage: K,
      batchSize: batch.size,
    });
    // Scored as evaluation scores them: the words joined, PTB-tokenised, CIDEr-D against the image's references.
    const rewards = captions.map((c, i) => {
      const id = imageIds[Math.floor(i / K)];
      const image = imageIndex.get(id);
      if (image === undefined)
        throw new UserError(`self-critical training: image "${id}" is not a training image with captions.`);
      return reward(tokenizeCaption(c.words.join(' ')), image);
    });
    return { captions, rewards };
  };

  return {
    examplesPerBatch: Math.max(1, Math.ceil(opts.captionsPerBatch / K)),
    unit: 'img',
    sample: sampleImages,
    step(model, batch, imageIds, opt, seed) {
      const N = batch.size * K;
      const { captions, rewards } = sampleImages(model, batch, imageIds, seed);
      // The sampled captions as a teacher-forcing batch: <start> ids [<end> if reached], 0-padded, longest first
      // (the native recurrence then skips the rows that have ended: the longest sample sets T).
      const targets = captions.map((c) => c.ids.length + (c.finished ? 1 : 0));
      const order = Array.from({ length: N }, (_, i) => i).sort((a, b) => targets[b] - targets[a] || a - b);
      const width = 1 + targets[order[0]];
      const tokens = new Int32Array(N * width);
      const imageOfRow = new Int32Array(N);
      const advantages = leaveOneOutAdvantages(rewards, K);
      const weights = new Float32Array(N);
      order.forEach((i, row) => {
        const c = captions[i];
        tokens[row * width] = vocab.start;
        tokens.set(c.ids, row * width + 1);
        if (c.finished) tokens[row * width + 1 + c.ids.length] = vocab.end;
        imageOfRow[row] = Math.floor(i / K);
        weights[row] = advantages[i];
      });
      const stats = model.trainStep(
        { size: N, steps: width - 1, features: batch.features, imageOfRow, tokens, weights },
        opt,
      );
      return { ...stats, reward: rewards.reduce((a, r) => a + r, 0) / N };
    },
  };
}

/** One example per training image that has captions (its first caption; SCST uses only the image). */
export function selfCriticalExamples(images: readonly PreparedImage[]): ExampleTable {
  return ExampleTable.from(
    images
      .filter((im) => im.split === 'train' && im.tokens.length > 0 && im.captions.length > 0)
      .map((im) => ({ image: im.id, tokens: im.tokens[0] })),
  );
}
