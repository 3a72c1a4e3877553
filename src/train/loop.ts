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
import { NonFiniteLossError, type CaptionModel, type StepStats } from '../model/types.js';
import type { FeatureStoreReader } from '../features/types.js';
import { Rng } from '../util/rng.js';
import { ProgressBar } from '../util/progress.js';
import { UserError } from '../util/errors.js';
import type { TrainConfig } from './config.js';
import { BatchAssembler, FeatureCache, epochBatches, fixedBatches, targetTokens, type Example } from './batches.js';
import {
  CHECKPOINT_FORMAT, checkpointFiles, copyVocab, promoteLatestToBest, saveCheckpoint,
  type CheckpointMeta, type EpochRecord, type TrainProgress,
} from '../checkpoint/checkpoint.js';
import { writeLossCurve } from './loss-curve.js';
import type { BatchObjective } from './self-critical.js';
import { yieldToEventLoop } from '../util/event-loop.js';

/**
 * A validation metric computed on the model after each epoch (higher is better, e.g. CIDEr or BLEU-4).
 * A long hook should let the event loop run now and then and give up (return null) once `shouldStop()` is
 * true: that is how Ctrl-C during validation is heard (see src/eval/validation.ts).
 */
export type ValidateHook = (model: CaptionModel, epoch: number, shouldStop?: () => boolean) =>
  Promise<{ metric: string; value: number } | null> | { metric: string; value: number } | null;

export interface TrainLoopOptions {
  config: TrainConfig;
  model: CaptionModel;
  store: FeatureStoreReader;
  train: Example[];
  dev: Example[];
  checkpointDir: string;
  vocabFile: string;
  runDir?: string | null;
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
  quiet?: boolean;  // no progress bars
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
    epoch: 0, batchInEpoch: 0, step: 0, epochRngState: new Rng(config.seed).state(),
    partial: { lossSum: 0, tokens: 0, seconds: 0 }, learningRate: config.learningRate, lastDecayEpoch: 0,
    history: [], best: null,
  };
}

/**
 * Token-weighted mean loss of `examples` in fixed batches, forward only. The event loop runs between
 * batches (a SIGINT handler can set `stop`); null when stopped that way before the end.
 */
export async function evaluateLoss(model: CaptionModel, assembler: BatchAssembler, batches: number[][],
                                   stop?: { requested: boolean }): Promise<number | null> {
  let sum = 0, tokens = 0;
  for (const b of batches) {
    const s = model.evalLoss(assembler.assemble(b));
    sum += s.loss * s.tokens;
    tokens += s.tokens;
    await yieldToEventLoop();
    if (stop?.requested) return null;
  }
  return tokens > 0 ? sum / tokens : NaN;
}

export async function trainLoop(opts: TrainLoopOptions): Promise<TrainResult> {
  const { config, model, store, train, dev, checkpointDir } = opts;
  const log = opts.log ?? ((l: string) => console.error(l));
  if (train.length === 0) throw new UserError('The training split has no captions: check the run\'s splits (`sat prepare`).');
  const progress: TrainProgress = structuredClone(opts.resume ?? initialProgress(config));
  if (progress.epoch >= config.epochs) {
    throw new UserError(`This run has already trained ${progress.epoch} epochs (epochs = ${config.epochs}). ` +
      `Pass a larger --epochs to continue it.`);
  }
  const vocabName = copyVocab(opts.vocabFile, checkpointDir);
  // One cache for training and validation batches; ?? 0 for checkpoints made before the option existed.
  const cache = new FeatureCache((config.featureCacheMB ?? 0) * 1024 * 1024);
  const objective = opts.objective;
  const batchSize = objective ? objective.examplesPerBatch : config.batchSize;
  const assembler = new BatchAssembler(store, train, batchSize, cache);
  // What the progress bar counts: target tokens, or examples (images) with an objective.
  const units = (b: number[]) => (objective ? b.length : b.reduce((t, i) => t + targetTokens(train[i]), 0));
  const devSet = config.maxValExamples > 0 && dev.length > config.maxValExamples
    ? new Rng(config.seed ^ 0x5eed).shuffle([...dev]).slice(0, config.maxValExamples) : dev;
  const devAssembler = new BatchAssembler(store, devSet, config.batchSize, cache);
  const devBatches = fixedBatches(devSet, config.batchSize);
  const higherIsBetter = Boolean(opts.validate);
  const meta = (): CheckpointMeta<TrainConfig> => ({
    format: CHECKPOINT_FORMAT, createdAt: new Date().toISOString(), config, model: model.config,
    encoder: { id: store.encoderId, locations: store.locations, channels: store.channels },
    vocab: vocabName, run: opts.runDir ?? null, progress,
  });
  const started = performance.now();
  let trainMs = 0;
  let lastSave = performance.now();

  while (progress.epoch < config.epochs) {
    const epoch = progress.epoch + 1;
    const rng = new Rng(progress.epochRngState);
    const batches = epochBatches(train, batchSize, objective ? 0 : config.bucketBatches, rng);
    const nextEpochRng = rng.state();
    const epochUnits = batches.reduce((s, b) => s + units(b), 0);
    // A resumed checkpoint already trained the first batchInEpoch batches of this epoch.
    const doneUnits = batches.slice(0, progress.batchInEpoch).reduce((s, b) => s + units(b), 0);
    const bar = new ProgressBar({ total: epochUnits, initial: doneUnits, label: `epoch ${epoch}/${config.epochs}`, unit: objective?.unit ?? 'tok', silent: opts.quiet });
    const epochStart = performance.now() - progress.partial.seconds * 1000;

    for (let bi = progress.batchInEpoch; bi < batches.length; bi++) {
      const t0 = performance.now();
      const batch = assembler.assemble(batches[bi]);
      const optimizer = { learningRate: progress.learningRate, clipNorm: config.clipNorm || undefined };
      // One seed per step for dropout masks and sampling, so --resume repeats the same randomness.
      const stepSeed = dropoutSeed(config.seed, progress.step);
      const stats = guardDivergence(() => objective
        ? objective.step(model, batch, batches[bi].map((i) => train[i]), optimizer, stepSeed)
        : model.trainStep(batch, optimizer, config.dropout > 0 ? stepSeed : undefined));
      trainMs += performance.now() - t0;
      if (!Number.isFinite(stats.loss)) {
        const last = progress.step > 0 ? checkpointFiles(checkpointDir, 'latest').weights : null;
        throw new DivergedError(`The training loss became ${stats.loss} at epoch ${epoch}, batch ${bi + 1}/${batches.length} ` +
          `(optimizer step ${progress.step + 1}, learning rate ${progress.learningRate}). Training stopped; ` +
          (last ? `the last good checkpoint (${last}) was kept. ` : 'no checkpoint had been saved yet. ') +
          'Lower the learning rate (--lr) or clip gradients (--clip 5), then start again' + (last ? ' or --resume.' : '.'));
      }
      progress.step++;
      progress.batchInEpoch = bi + 1;
      progress.partial.lossSum += stats.loss * stats.tokens;
      progress.partial.tokens += stats.tokens;
      progress.partial.seconds = (performance.now() - epochStart) / 1000;
      if (stats.reward !== undefined) {
        progress.partial.rewardSum = (progress.partial.rewardSum ?? 0) + stats.reward * batches[bi].length;
        progress.partial.rewardCount = (progress.partial.rewardCount ?? 0) + batches[bi].length;
      }
      bar.tick(objective ? batches[bi].length : stats.tokens, progress.partial.rewardCount
        ? `reward ${(progress.partial.rewardSum! / progress.partial.rewardCount).toFixed(4)}`
        : `loss ${(progress.partial.lossSum / progress.partial.tokens).toFixed(4)}`);
      // The batch loop is otherwise synchronous: without this the SIGINT handler (Ctrl-C) would never run.
      // setImmediate has no timer delay; it is microseconds against a batch's 0.1-0.5 s.
      await yieldToEventLoop();

      const outOfTime = opts.timeBudgetSeconds !== undefined && !opts.wholeEpochs && (performance.now() - started) / 1000 >= opts.timeBudgetSeconds;
      const interrupted = opts.stop?.requested === true;
      const periodic = config.checkpointMinutes > 0 && performance.now() - lastSave >= config.checkpointMinutes * 60_000;
      if ((outOfTime || interrupted || periodic) && bi + 1 < batches.length) {
        saveCheckpoint(checkpointDir, 'latest', model, meta());
        lastSave = performance.now();
        if (outOfTime || interrupted) {
          bar.finish();
          log(`${interrupted ? 'Interrupted' : 'Time budget reached'}: saved ${checkpointFiles(checkpointDir, 'latest').weights} ` +
            `at epoch ${epoch}, batch ${bi + 1}/${batches.length}. Continue with --resume.`);
          return { reason: interrupted ? 'interrupted' : 'time-budget', progress, checkpointDir, featureReadMs: assembler.readMs, trainMs };
        }
      }
    }
    const seconds = (performance.now() - epochStart) / 1000;
    bar.finish();

    // Validation: loss always (when there is a dev split), metric when a hook is given. Ctrl-C before or
    // during it saves "latest" with all of the epoch's batches done: --resume then starts with this validation.
    const interruptedBeforeValidation = () => {
      saveCheckpoint(checkpointDir, 'latest', model, meta());
      log(`Interrupted: saved ${checkpointFiles(checkpointDir, 'latest').weights} after the last batch of epoch ${epoch}, ` +
        'before its validation. Continue with --resume.');
      return { reason: 'interrupted' as const, progress, checkpointDir, featureReadMs: assembler.readMs, trainMs };
    };
    if (opts.stop?.requested) return interruptedBeforeValidation();
    const valLoss = devBatches.length > 0 ? await evaluateLoss(model, devAssembler, devBatches, opts.stop) : null;
    if (opts.stop?.requested) return interruptedBeforeValidation();
    const metric = opts.validate ? await opts.validate(model, epoch, () => opts.stop?.requested === true) : undefined;
    if (metric === null || opts.stop?.requested) return interruptedBeforeValidation();
    const record: EpochRecord = {
      epoch, trainLoss: progress.partial.lossSum / progress.partial.tokens, valLoss,
      ...(metric ? { metric: { name: metric.metric, value: metric.value } } : {}),
      learningRate: progress.learningRate, steps: progress.step, seconds,
      tokensPerSecond: progress.partial.tokens / seconds,
      ...(progress.partial.rewardCount ? { trainReward: progress.partial.rewardSum! / progress.partial.rewardCount } : {}),
    };
    progress.history.push(record);
    progress.epoch = epoch;
    progress.batchInEpoch = 0;
    progress.epochRngState = nextEpochRng;
    progress.partial = { lossSum: 0, tokens: 0, seconds: 0 };

    // The score that picks "best", drives the plateau schedule and early stopping.
    const by = metric ? metric.metric : valLoss !== null ? 'valLoss' : 'trainLoss';
    const score = metric ? metric.value : valLoss ?? record.trainLoss;
    const improved = progress.best === null || (higherIsBetter ? score > progress.best.score : score < progress.best.score);
    if (improved) progress.best = { epoch, score, by };
    const sinceBest = epoch - (progress.best?.epoch ?? epoch);

    // Learning rate for the next epoch.
    const decay = config.lrSchedule === 'step' ? epoch % config.lrStepEpochs === 0
      : config.lrSchedule === 'plateau' ? epoch - Math.max(progress.best?.epoch ?? 0, progress.lastDecayEpoch) >= config.lrPatience && config.lrPatience > 0
        : false;
    if (decay && progress.learningRate > config.minLearningRate) {
      progress.learningRate = Math.max(config.minLearningRate, progress.learningRate * config.lrDecayFactor);
      progress.lastDecayEpoch = epoch;
    }

    saveCheckpoint(checkpointDir, 'latest', model, meta());
    lastSave = performance.now();
    if (improved) promoteLatestToBest(checkpointDir);
    await writeLossCurve(checkpointDir, progress.history);
    log(`epoch ${epoch}: ` + (record.trainReward !== undefined ? `train reward (CIDEr-D of samples) ${record.trainReward.toFixed(4)}` : `train loss ${record.trainLoss.toFixed(4)}`) +
      (valLoss !== null ? `, val loss ${valLoss.toFixed(4)}` : '') +
      (metric ? `, ${metric.metric} ${metric.value.toFixed(4)}` : '') +
      `, ${record.tokensPerSecond.toFixed(0)} tok/s, ${seconds.toFixed(1)} s` + (improved ? ' (best)' : '') +
      (decay && progress.lastDecayEpoch === epoch ? `; learning rate -> ${progress.learningRate}` : ''));

    if (config.earlyStopPatience > 0 && epoch >= config.minEpochs && sinceBest >= config.earlyStopPatience) {
      log(`Early stop: no improvement of ${by} for ${sinceBest} epochs (best ${progress.best!.score.toFixed(4)} at epoch ${progress.best!.epoch}).`);
      return { reason: 'early-stopped', progress, checkpointDir, featureReadMs: assembler.readMs, trainMs };
    }
    const used = (performance.now() - started) / 1000;
    const wholeEpochSeconds = (performance.now() - epochStart) / 1000; // training + validation of this epoch
    const budgetLeft = opts.timeBudgetSeconds === undefined ? Infinity : opts.timeBudgetSeconds - used;
    if (epoch < config.epochs && (opts.stop?.requested || budgetLeft <= 0 || (opts.wholeEpochs && budgetLeft < wholeEpochSeconds))) {
      log(opts.stop?.requested ? `Interrupted: saved ${checkpointFiles(checkpointDir, 'latest').weights} at the end of epoch ${epoch}. Continue with --resume.`
        : `Time budget: stopping after epoch ${epoch} (${used.toFixed(0)} s of ${opts.timeBudgetSeconds?.toFixed(0)} s used).`);
      return { reason: opts.stop?.requested ? 'interrupted' : 'time-budget', progress, checkpointDir, featureReadMs: assembler.readMs, trainMs };
    }
  }
  return { reason: 'completed', progress, checkpointDir, featureReadMs: assembler.readMs, trainMs };
}
