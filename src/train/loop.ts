/**
 * The training loop, independent of where its pieces come from (src/train/train.ts wires it to a run
 * directory; tests give it a small model and an in-memory feature store).
 *
 * Per epoch: shuffle + bucket the training examples, one Adam step per batch, validation loss on the dev
 * split, the optional `validate` hook (a metric such as CIDEr), learning-rate schedule, checkpoint
 * "latest" (and "best" when the validation score improved), loss plot, early stopping.
 *
 * Resuming continues exactly: the checkpoint holds weights, Adam moments and step, the shuffle Rng state
 * at the start of the current epoch, how many of its batches are done and the epoch's partial loss sums.
 * Dropout masks are seeded from (seed, step), so they need no state of their own.
 */
import type { EncoderOptions } from '../encoders/registry.js';
import { NonFiniteLossError, type CaptionModel, type StepStats } from '../model/types.js';
import type { TrainingPrecision } from '../model/precision.js';
import { mirroredId, type FeatureStoreReader } from '../features/types.js';
import { Rng, type RngState } from '../util/rng.js';
import { ProgressBar } from '../util/progress.js';
import { UserError } from '../util/errors.js';
import type { TrainConfig } from './config.js';
import { BatchAssembler, FeatureCache, epochBatches, epochImageBatches, fixedBatches } from './batches.js';
import type { ExampleTable } from './examples.js';
import {
  CHECKPOINT_FORMAT,
  checkpointTagPaths,
  copyVocab,
  promoteLatestToBest,
  saveCheckpoint,
  type CheckpointMeta,
  type EpochRecord,
  type TrainProgress,
} from '../checkpoint/checkpoint.js';
import { writeLossCurve } from './loss-curve.js';
import type { BatchObjective } from './self-critical.js';
import { yieldToEventLoop } from '../util/event-loop.js';

/**
 * A validation metric computed on the model after each epoch (higher is better, e.g. CIDEr or BLEU-4).
 * A long hook should let the event loop run now and then and give up (return null) once `shouldStop()` is
 * true: that is how Ctrl-C during validation is heard (see makeValidateHook in src/train/validation.ts).
 */
export type ValidateHook = (
  model: CaptionModel,
  epoch: number,
  shouldStop?: () => boolean,
) => Promise<{ metric: string; value: number } | null> | { metric: string; value: number } | null;

export interface TrainLoopOptions {
  /** Its precision is the one the model's steps run in: fp32 or bf16 (resolvePrecision), never 'auto'. */
  config: TrainConfig;
  model: CaptionModel;
  /** What was asked for the precision and why config.precision was chosen (recorded in every checkpoint); default: as asked. */
  precision?: TrainingPrecision;
  store: FeatureStoreReader;
  train: ExampleTable;
  dev: ExampleTable;
  checkpointDir: string;
  vocabFile: string;
  runDir?: string | null;
  /** The options the store's encoder was built from (src/features/run-features.ts); recorded in every checkpoint. */
  encoderOptions?: EncoderOptions;
  /** Progress from a checkpoint to continue from (its weights must already be in `model`). */
  resume?: TrainProgress;
  validate?: ValidateHook;
  /**
   * Replaces the teacher-forced cross-entropy step (src/train/self-critical.ts). `train` then holds one example
   * per image, batches have objective.examplesPerBatch of them, unbucketed, and the bar counts examples.
   */
  objective?: BatchObjective;
  /** Stop at the next batch boundary (saving "latest") once this many seconds of training have passed. */
  timeBudgetSeconds?: number;
  /**
   * With a time budget: train whole epochs only (at least one), stopping when the next epoch, as long as the
   * last one, would not fit. Every epoch then has its validation score and the plot is complete (sat demo).
   */
  wholeEpochs?: boolean;
  /** Set `requested` (e.g. from a SIGINT handler) to save at the next batch boundary and return. */
  stop?: { requested: boolean };
  log?: (line: string) => void;
  quiet?: boolean; // no progress bars
}

export type StopReason = 'completed' | 'early-stopped' | 'interrupted' | 'time-budget';

export interface TrainResult {
  reason: StopReason;
  progress: TrainProgress;
  checkpointDir: string;
  /** Milliseconds reading features vs total training milliseconds, summed over this call. */
  featureReadMs: number;
  trainMs: number;
}

/** Training stopped because the loss stopped being a number. The last good checkpoint is untouched. */
export class DivergedError extends UserError {}

/** Dropout seed for one optimizer step: a 32-bit hash of (seed, step). */
export function dropoutSeed(seed: number, step: number): number {
  let z = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(step, 0xc2b2ae35)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * The loop decides what a non-finite loss means (stop, name the step, keep the last checkpoint). A model
 * may report it as a NaN loss, or refuse the step with a NonFiniteLossError (the native model does, before
 * its Adam update, so its weights stay finite); both come out of here as a NaN loss.
 */
function guardDivergence(step: () => StepStats): StepStats {
  try {
    return step();
  } catch (e) {
    if (e instanceof NonFiniteLossError) return { loss: NaN, tokens: 0 };
    throw e;
  }
}

export function initialProgress(config: TrainConfig): TrainProgress {
  return {
    epoch: 0,
    batchInEpoch: 0,
    step: 0,
    epochRngState: new Rng(config.seed).state(),
    partial: { lossSum: 0, tokens: 0, seconds: 0 },
    learningRate: config.learningRate,
    lastDecayEpoch: 0,
    history: [],
    best: null,
  };
}

/**
 * Token-weighted mean loss of `examples` in fixed batches, forward only. The event loop runs between
 * batches (a SIGINT handler can set `stop`); null when stopped that way before the end.
 */
export async function evaluateLoss(
  model: CaptionModel,
  assembler: BatchAssembler,
  batches: number[][],
  stop?: { requested: boolean },
): Promise<number | null> {
  let sum = 0,
    tokens = 0;
  for (const b of batches) {
    const s = model.evalLoss(assembler.assemble(b));
    sum += s.loss * s.tokens;
    tokens += s.tokens;
    await yieldToEventLoop();
    if (stop?.requested) return null;
  }
  return tokens > 0 ? sum / tokens : NaN;
}

/** What one call of trainLoop shares between its steps. */
interface Loop {
  opts: TrainLoopOptions;
  log: (line: string) => void;
  progress: TrainProgress;
  /** Examples per batch: config.batchSize, or objective.examplesPerBatch. */
  batchSize: number;
  assembler: BatchAssembler;
  dev: { assembler: BatchAssembler; batches: number[][] };
  /** The vocabulary's file name beside the checkpoints. */
  vocabName: string;
  started: number;
  lastSave: number;
  /** Milliseconds in training steps (batch assembly included), summed over this call. */
  trainMs: number;
}

/** How an epoch's batches went: trained to the end, or stopped (checkpoint saved) with a reason. */
type EpochTraining = { epochStart: number; seconds: number; nextEpochRng: RngState } | { stopped: StopReason };

export async function trainLoop(opts: TrainLoopOptions): Promise<TrainResult> {
  const loop = startLoop(opts);
  const result = (reason: StopReason): TrainResult => ({
    reason,
    progress: loop.progress,
    checkpointDir: opts.checkpointDir,
    featureReadMs: loop.assembler.readMs,
    trainMs: loop.trainMs,
  });
  while (loop.progress.epoch < opts.config.epochs) {
    const epoch = loop.progress.epoch + 1;
    const training = await trainEpochBatches(loop, epoch);
    if ('stopped' in training) return result(training.stopped);
    const validation = await validateEpoch(loop, epoch);
    if (validation === null) {
      // Ctrl-C before or during validation: "latest" has all of the epoch's batches, and --resume starts with this validation.
      const file = saveLatest(loop);
      loop.log(
        `Interrupted: saved ${file} after the last batch of epoch ${epoch}, before its validation. Continue with --resume.`,
      );
      return result('interrupted');
    }
    const standing = await finishEpoch(loop, epoch, training.seconds, training.nextEpochRng, validation);
    const stop = stopAfterEpoch(loop, epoch, training.epochStart, standing);
    if (stop) return result(stop);
  }
  return result('completed');
}

/** Whether XE batches hold whole images (checkpoints made before the option existed batch by caption). */
const byImage = (config: TrainConfig): boolean => config.batchBy === 'image';

/** Check the inputs and set up batching, caches and the dev split. */
function startLoop(opts: TrainLoopOptions): Loop {
  const { config, store, train, dev, checkpointDir } = opts;
  if (config.precision !== 'fp32' && config.precision !== 'bf16') {
    throw new Error(
      `trainLoop: config.precision must be the precision the steps run in (fp32 or bf16), got ${config.precision}: resolve it first (resolvePrecision).`,
    );
  }
  if (opts.precision && opts.precision.used !== config.precision) {
    throw new Error(
      `trainLoop: precision.used (${opts.precision.used}) and config.precision (${config.precision}) differ.`,
    );
  }
  if (train.length === 0)
    throw new UserError("The training split has no captions: check the run's splits (`sat prepare`).");
  checkMirroredFeatures(config, store, train);
  const progress: TrainProgress = structuredClone(opts.resume ?? initialProgress(config));
  if (progress.epoch >= config.epochs) {
    throw new UserError(
      `This run has already trained ${progress.epoch} epochs (epochs = ${config.epochs}). ` +
        `Pass a larger --epochs to continue it.`,
    );
  }
  const vocabName = copyVocab(opts.vocabFile, checkpointDir);
  // One cache for training and validation batches; ?? 0 for checkpoints made before the option existed.
  const cache = new FeatureCache((config.featureCacheMB ?? 0) * 1024 * 1024);
  const batchSize = opts.objective ? opts.objective.examplesPerBatch : config.batchSize;
  const devSet =
    config.maxValExamples > 0 && dev.length > config.maxValExamples
      ? dev.select(
          new Rng(config.seed ^ 0x5eed)
            .shuffle(Array.from({ length: dev.length }, (_, i) => i))
            .slice(0, config.maxValExamples),
        )
      : dev;
  const now = performance.now();
  return {
    opts,
    log: opts.log ?? ((l: string) => console.error(l)),
    progress,
    batchSize,
    assembler: new BatchAssembler(store, train, batchSize, cache),
    dev: {
      assembler: new BatchAssembler(store, devSet, config.batchSize, cache),
      batches: fixedBatches(devSet, config.batchSize),
    },
    vocabName,
    started: now,
    lastSave: now,
    trainMs: 0,
  };
}

function checkpointMeta(loop: Loop): CheckpointMeta<TrainConfig> {
  const { config, model, store } = loop.opts;
  const used = config.precision as TrainingPrecision['used']; // checked in startLoop
  return {
    format: CHECKPOINT_FORMAT,
    createdAt: new Date().toISOString(),
    config,
    model: model.config,
    encoder: {
      id: store.encoderId,
      locations: store.locations,
      channels: store.channels,
      ...(loop.opts.encoderOptions ? { options: loop.opts.encoderOptions } : {}),
    },
    vocab: loop.vocabName,
    run: loop.opts.runDir ?? null,
    progress: loop.progress,
    precision: loop.opts.precision ?? { asked: used, used, reason: 'as asked' },
  };
}

/** Save the model and progress as "latest"; returns the weights file. */
function saveLatest(loop: Loop): string {
  saveCheckpoint(loop.opts.checkpointDir, 'latest', loop.opts.model, checkpointMeta(loop));
  loop.lastSave = performance.now();
  return checkpointTagPaths(loop.opts.checkpointDir, 'latest').weights;
}

/** What the progress bar counts for a batch: target tokens, or examples (images) with an objective. */
function batchUnits(loop: Loop, batch: number[]): number {
  return loop.opts.objective ? batch.length : batch.reduce((t, i) => t + loop.opts.train.targetTokens(i), 0);
}

/**
 * Train the rest of epoch `epoch` (all of it, or what a resumed checkpoint left), one optimizer step per batch.
 * Between batches the event loop runs (Ctrl-C), and "latest" is saved when stopping or when checkpointMinutes are up.
 */
async function trainEpochBatches(loop: Loop, epoch: number): Promise<EpochTraining> {
  const { config, objective, train } = loop.opts;
  const progress = loop.progress;
  const rng = new Rng(progress.epochRngState);
  const batches = objective
    ? epochBatches(train, loop.batchSize, 0, rng)
    : byImage(config)
      ? epochImageBatches(train, loop.batchSize, config.bucketBatches, rng)
      : epochBatches(train, loop.batchSize, config.bucketBatches, rng);
  const nextEpochRng = rng.state();
  // A resumed checkpoint already trained the first batchInEpoch batches of this epoch.
  const bar = new ProgressBar({
    total: batches.reduce((s, b) => s + batchUnits(loop, b), 0),
    initial: batches.slice(0, progress.batchInEpoch).reduce((s, b) => s + batchUnits(loop, b), 0),
    label: `epoch ${epoch}/${config.epochs}`,
    unit: objective?.unit ?? 'tok',
    silent: loop.opts.quiet,
  });
  const epochStart = performance.now() - progress.partial.seconds * 1000;

  for (let bi = progress.batchInEpoch; bi < batches.length; bi++) {
    const stats = trainBatch(loop, batches[bi], `epoch ${epoch}, batch ${bi + 1}/${batches.length}`);
    progress.batchInEpoch = bi + 1;
    progress.partial.seconds = (performance.now() - epochStart) / 1000;
    bar.tick(
      objective ? batches[bi].length : stats.tokens,
      progress.partial.rewardCount
        ? `reward ${(progress.partial.rewardSum! / progress.partial.rewardCount).toFixed(4)}`
        : `loss ${(progress.partial.lossSum / progress.partial.tokens).toFixed(4)}`,
    );
    // The batch loop is otherwise synchronous: without this the SIGINT handler (Ctrl-C) would never run. It must
    // stay a setImmediate turn (no timer delay), so that it costs next to nothing against a batch.
    await yieldToEventLoop();
    if (bi + 1 < batches.length) {
      const stopped = checkpointMidEpoch(loop);
      if (stopped) {
        bar.finish();
        loop.log(
          `${stopped === 'interrupted' ? 'Interrupted' : 'Time budget reached'}: saved ${checkpointTagPaths(loop.opts.checkpointDir, 'latest').weights} ` +
            `at epoch ${epoch}, batch ${bi + 1}/${batches.length}. Continue with --resume.`,
        );
        return { stopped };
      }
    }
  }
  const seconds = (performance.now() - epochStart) / 1000;
  bar.finish();
  return { epochStart, seconds, nextEpochRng };
}

/**
 * One optimizer step on the examples `batch` (indices into the training set), added to the epoch's partial
 * sums. A non-finite loss stops training with a DivergedError naming `where`; the last checkpoint is kept.
 */
function trainBatch(loop: Loop, batch: number[], where: string): StepStats {
  const { config, model, objective, train, checkpointDir } = loop.opts;
  const progress = loop.progress;
  const t0 = performance.now();
  // One seed per step for dropout masks, sampling and mirrored views, so --resume repeats the same randomness.
  const stepSeed = dropoutSeed(config.seed, progress.step);
  const assembled = loop.assembler.assemble(
    batch,
    !objective && byImage(config),
    mirroredViews(config.mirrorProbability ?? 0, stepSeed),
  );
  const optimizer = { learningRate: progress.learningRate, clipNorm: config.clipNorm || undefined };
  const stats = guardDivergence(() =>
    objective
      ? objective.step(
          model,
          assembled,
          batch.map((i) => train.image(i)),
          optimizer,
          stepSeed,
        )
      : model.trainStep(assembled, optimizer, config.dropout > 0 ? stepSeed : undefined),
  );
  loop.trainMs += performance.now() - t0;
  if (!Number.isFinite(stats.loss)) {
    const last = progress.step > 0 ? checkpointTagPaths(checkpointDir, 'latest').weights : null;
    throw new DivergedError(
      `The training loss became ${stats.loss} at ${where} ` +
        `(optimizer step ${progress.step + 1}, learning rate ${progress.learningRate}). Training stopped; ` +
        (last ? `the last good checkpoint (${last}) was kept. ` : 'no checkpoint had been saved yet. ') +
        'Lower the learning rate (--learning-rate) or clip gradients (--clip-norm 5), then start again' +
        (last ? ' or --resume.' : '.'),
    );
  }
  progress.step++;
  progress.partial.lossSum += stats.loss * stats.tokens;
  progress.partial.tokens += stats.tokens;
  if (stats.reward !== undefined) {
    progress.partial.rewardSum = (progress.partial.rewardSum ?? 0) + stats.reward * batch.length;
    progress.partial.rewardCount = (progress.partial.rewardCount ?? 0) + batch.length;
  }
  return stats;
}

/**
 * Which features each row of a step reads with mirrorProbability p: its image's mirrored view when a hash of the
 * step's seed and the row falls below p (undefined for p = 0: every row its image's own features).
 */
export function mirroredViews(p: number, stepSeed: number): ((row: number, image: string) => string) | undefined {
  if (!(p > 0)) return undefined;
  const seed = stepSeed ^ 0x6d697272;
  return (row, image) => (dropoutSeed(seed, row) / 4294967296 < p ? mirroredId(image) : image);
}

/** Refuse mirrored views the store does not hold, before the first step. */
function checkMirroredFeatures(config: TrainConfig, store: FeatureStoreReader, train: ExampleTable): void {
  if (!((config.mirrorProbability ?? 0) > 0)) return;
  const missing = new Set<string>();
  for (let i = 0; i < train.length; i++) if (!store.has(mirroredId(train.image(i)))) missing.add(train.image(i));
  if (missing.size > 0)
    throw new UserError(
      `mirrorProbability ${config.mirrorProbability}: ${missing.size} training images (e.g. ${[...missing][0]}) have no ` +
        `mirrored features in the store (${store.encoderId}). Extract them with \`sat features --mirror\` ` +
        '(the same encoder flags), or train with --mirror-probability 0.',
    );
}

/**
 * Between two batches of an epoch: save "latest" when Ctrl-C was pressed, the time budget is used up (whole
 * epochs only: never mid-epoch) or checkpointMinutes have passed since the last save. Returns why to stop now, if so.
 */
function checkpointMidEpoch(loop: Loop): StopReason | null {
  const { opts } = loop;
  const now = performance.now();
  const outOfTime =
    opts.timeBudgetSeconds !== undefined && !opts.wholeEpochs && (now - loop.started) / 1000 >= opts.timeBudgetSeconds;
  const interrupted = opts.stop?.requested === true;
  const periodic = opts.config.checkpointMinutes > 0 && now - loop.lastSave >= opts.config.checkpointMinutes * 60_000;
  if (!outOfTime && !interrupted && !periodic) return null;
  saveLatest(loop);
  return interrupted ? 'interrupted' : outOfTime ? 'time-budget' : null;
}

interface Validation {
  valLoss: number | null;
  metric?: { metric: string; value: number };
}

/**
 * The epoch's validation: the dev loss (when there is a dev split) and the validate hook's metric (when given).
 * Null when Ctrl-C came before or during it.
 */
async function validateEpoch(loop: Loop, epoch: number): Promise<Validation | null> {
  const { opts } = loop;
  if (opts.stop?.requested) return null;
  const valLoss =
    loop.dev.batches.length > 0
      ? await evaluateLoss(opts.model, loop.dev.assembler, loop.dev.batches, opts.stop)
      : null;
  if (opts.stop?.requested) return null;
  const metric = opts.validate
    ? await opts.validate(opts.model, epoch, () => opts.stop?.requested === true)
    : undefined;
  if (metric === null || opts.stop?.requested) return null;
  return { valLoss, metric };
}

/**
 * Close epoch `epoch`: its record in the history, the best epoch so far (by the metric, else the dev loss, else
 * the training loss), the learning rate for the next epoch, checkpoints ("latest", and "best" when it improved),
 * the loss plot and the log line. Returns what the score is (`by`) and the epochs since the best one.
 */
async function finishEpoch(
  loop: Loop,
  epoch: number,
  seconds: number,
  nextEpochRng: RngState,
  { valLoss, metric }: Validation,
): Promise<{ by: string; sinceBest: number }> {
  const { config, checkpointDir } = loop.opts;
  const progress = loop.progress;
  const record: EpochRecord = {
    epoch,
    trainLoss: progress.partial.lossSum / progress.partial.tokens,
    valLoss,
    ...(metric ? { metric: { name: metric.metric, value: metric.value } } : {}),
    learningRate: progress.learningRate,
    steps: progress.step,
    seconds,
    tokensPerSecond: progress.partial.tokens / seconds,
    ...(progress.partial.rewardCount
      ? { trainReward: progress.partial.rewardSum! / progress.partial.rewardCount }
      : {}),
  };
  progress.history.push(record);
  progress.epoch = epoch;
  progress.batchInEpoch = 0;
  progress.epochRngState = nextEpochRng;
  progress.partial = { lossSum: 0, tokens: 0, seconds: 0 };

  // The score that picks "best", drives the plateau schedule and early stopping.
  const by = metric ? metric.metric : valLoss !== null ? 'valLoss' : 'trainLoss';
  const score = metric ? metric.value : (valLoss ?? record.trainLoss);
  const higherIsBetter = Boolean(loop.opts.validate);
  const improved =
    progress.best === null || (higherIsBetter ? score > progress.best.score : score < progress.best.score);
  if (improved) progress.best = { epoch, score, by };
  const decayed = decayLearningRate(config, progress, epoch);

  saveLatest(loop);
  if (improved) promoteLatestToBest(checkpointDir);
  await writeLossCurve(checkpointDir, progress.history);
  loop.log(
    `epoch ${epoch}: ` +
      (record.trainReward !== undefined
        ? `train reward (CIDEr-D of samples) ${record.trainReward.toFixed(4)}`
        : `train loss ${record.trainLoss.toFixed(4)}`) +
      (valLoss !== null ? `, val loss ${valLoss.toFixed(4)}` : '') +
      (metric ? `, ${metric.metric} ${metric.value.toFixed(4)}` : '') +
      `, ${record.tokensPerSecond.toFixed(0)} tok/s, ${seconds.toFixed(1)} s` +
      (improved ? ' (best)' : '') +
      (decayed ? `; learning rate -> ${progress.learningRate}` : ''),
  );
  return { by, sinceBest: epoch - (progress.best?.epoch ?? epoch) };
}

/** The learning-rate schedule after epoch `epoch` ('step' or 'plateau'); true when it lowered the rate. */
function decayLearningRate(config: TrainConfig, progress: TrainProgress, epoch: number): boolean {
  const decay =
    config.lrSchedule === 'step'
      ? epoch % config.lrStepEpochs === 0
      : config.lrSchedule === 'plateau'
        ? epoch - Math.max(progress.best?.epoch ?? 0, progress.lastDecayEpoch) >= config.lrPatience &&
          config.lrPatience > 0
        : false;
  if (!decay || progress.learningRate <= config.minLearningRate) return false;
  progress.learningRate = Math.max(config.minLearningRate, progress.learningRate * config.lrDecayFactor);
  progress.lastDecayEpoch = epoch;
  return true;
}

/** After a finished epoch: stop early (no improvement), on Ctrl-C, or when the time budget is used up? */
function stopAfterEpoch(
  loop: Loop,
  epoch: number,
  epochStart: number,
  { by, sinceBest }: { by: string; sinceBest: number },
): StopReason | null {
  const { opts, progress } = loop;
  const { config } = opts;
  if (config.earlyStopPatience > 0 && epoch >= config.minEpochs && sinceBest >= config.earlyStopPatience) {
    loop.log(
      `Early stop: no improvement of ${by} for ${sinceBest} epochs (best ${progress.best!.score.toFixed(4)} at epoch ${progress.best!.epoch}).`,
    );
    return 'early-stopped';
  }
  if (epoch >= config.epochs) return null;
  const used = (performance.now() - loop.started) / 1000;
  const wholeEpochSeconds = (performance.now() - epochStart) / 1000; // training + validation of this epoch
  const budgetLeft = opts.timeBudgetSeconds === undefined ? Infinity : opts.timeBudgetSeconds - used;
  if (opts.stop?.requested) {
    loop.log(
      `Interrupted: saved ${checkpointTagPaths(opts.checkpointDir, 'latest').weights} at the end of epoch ${epoch}. Continue with --resume.`,
    );
    return 'interrupted';
  }
  if (budgetLeft <= 0 || (opts.wholeEpochs && budgetLeft < wholeEpochSeconds)) {
    loop.log(
      `Time budget: stopping after epoch ${epoch} (${used.toFixed(0)} s of ${opts.timeBudgetSeconds?.toFixed(0)} s used).`,
    );
    return 'time-budget';
  }
  return null;
}
