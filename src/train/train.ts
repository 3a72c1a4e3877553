/**
 * `train(options)`: train (or resume) a captioning model on a prepared run directory (src/dataset/run.ts):
 * images.jsonl + vocab.json from `sat prepare`, features from `sat features`. Checkpoints go to
 * RUN/checkpoints unless told otherwise. The loop itself is src/train/loop.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { CaptionModel, ModelConfig } from '../model/types.js';
import {
  bf16Unavailable,
  createModel,
  resolvePrecision,
  type Precision,
  type PrecisionChoice,
  type TrainingPrecision,
} from '../model/index.js';
import type { FeatureStoreReader } from '../features/types.js';
import { openRunFeatures, recordedEncoderOptions } from '../features/run-feature-store.js';
import { runPaths } from '../dataset/run.js';
import { forEachPreparedImage, loadRunInfo } from '../dataset/prepare.js';
import type { Vocabulary } from '../vocab/vocabulary.js';
import { UserError } from '../util/errors.js';
import { lockFolder } from '../util/folder-lock.js';
import {
  checkpointTagPaths,
  loadCheckpoint,
  restoreModel,
  type CheckpointMeta,
  type LoadedCheckpoint,
} from '../checkpoint/checkpoint.js';
import { checkInitFeatures, describeRemap, initFromSource, loadInitSource, type InitSource } from './init-source.js';
import {
  FROZEN_ON_RESUME,
  formatConfig,
  readConfigFile,
  resolveConfig,
  upgradeSavedConfig,
  type TrainConfig,
} from './config.js';
import { addImageExamples } from './batches.js';
import { ExampleTableBuilder, type ExampleTable } from './examples.js';
import { selfCriticalExamples, selfCriticalObjective, type BatchObjective } from './self-critical.js';
import { trainLoop, type TrainResult, type ValidateHook } from './loop.js';
import type { PreparedImage } from '../dataset/run.js';
import { validationHook } from './validation.js';

export interface TrainOptions {
  runDir: string;
  /** JSON file with TrainConfig fields (`--config`). */
  configFile?: string;
  /** Explicit settings (CLI flags); they win over the file. */
  overrides?: Partial<TrainConfig>;
  /** Continue from CHECKPOINTS/latest.*: weights, Adam state, data order and loss history. */
  resume?: boolean;
  /**
   * Start over in a checkpoints folder that already holds checkpoints, removing them (latest.*, best.*, the loss
   * plot). Without it (or resume) such a folder is refused, so a trained run is never overwritten by accident.
   */
  force?: boolean;
  /**
   * Start a new run from a trained model's weights: a checkpoint (.safetensors, a checkpoints folder or a run
   * folder: its best) or a bundle folder (`sat export`). Fresh Adam state, schedule and history; the network shape
   * comes from the model; words of the run's vocabulary that the model knows keep their trained rows, new words
   * start fresh (src/train/init-source.ts). How self-critical training (objective 'scst') starts from a
   * cross-entropy model, and how a run fine-tunes a shipped model on its own images.
   */
  init?: string;
  checkpointDir?: string;
  /** Feature store folder; default: the one run.json names, or the only one under RUN/features. */
  featuresDir?: string;
  validate?: ValidateHook;
  timeBudgetSeconds?: number;
  /** With timeBudgetSeconds: whole epochs only, stopping when the next one would not fit (see trainLoop). */
  wholeEpochs?: boolean;
  /** Save and stop at the next batch boundary on Ctrl-C (default true). */
  handleSigint?: boolean;
  quiet?: boolean;
  log?: (line: string) => void;
}

export interface TrainOutcome extends TrainResult {
  config: TrainConfig;
  model: CaptionModel;
  vocab: Vocabulary;
  store: FeatureStoreReader;
}

/** Fields that shape the network: `--init` takes them from its checkpoint. */
const INIT_SHAPE = ['embedDim', 'units', 'attentionUnits', 'gruState', 'initState'] as const;

export async function train(opts: TrainOptions): Promise<TrainOutcome> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const runDir = path.resolve(opts.runDir);
  const paths = runPaths(runDir);
  const checkpointDir = path.resolve(opts.checkpointDir ?? paths.checkpoints);
  const { vocab } = loadRunInfo(runDir);
  // One trainer per checkpoints folder: two would interleave their latest and best.
  const lock = lockFolder(checkpointDir, { command: 'sat train' });
  try {
    refuseTrainedFolder(checkpointDir, opts);
    return await trainLocked(opts, log, runDir, checkpointDir, vocab);
  } finally {
    lock.release();
  }
}

async function trainLocked(
  opts: TrainOptions,
  log: (line: string) => void,
  runDir: string,
  checkpointDir: string,
  vocab: Vocabulary,
): Promise<TrainOutcome> {
  const paths = runPaths(runDir);
  const store = openRunFeatures(runDir, { explicit: opts.featuresDir });
  const initSource = opts.init ? await loadInitSource(opts.init) : null;
  const start = startingPoint(opts, checkpointDir, store, runDir, initSource);
  const { config, resumed, precision } = start;
  const model = buildModel(start, store, vocab);
  const remap = initSource
    ? describeRemap(initSource, initFromSource(model, initSource, vocab.words), vocab.size)
    : null;
  const { data, kept } = trainingData(start, runDir, vocab, log);
  const validate = opts.validate ?? validationHook(config, kept, vocab, store, opts.quiet, log);
  if (opts.force) removeCheckpoints(checkpointDir, log);

  // Everything up to the first batch runs synchronously, so Ctrl-C is heard from the first batch on.
  return withCtrlC(opts.handleSigint !== false, log, async (stop) => {
    // Printed only once Ctrl-C is handled, so whoever sees the config knows Ctrl-C saves from here on.
    log(
      `${describeRun(runDir, store, vocab, start, data, checkpointDir, remap)}\n  precision ${precision.used} (${precision.reason})`,
    );
    const result = await trainLoop({
      config,
      model,
      precision,
      store,
      train: data.train,
      dev: data.dev,
      checkpointDir,
      vocabFile: paths.vocab,
      runDir,
      encoderOptions: recordedEncoderOptions(store.dir),
      resume: resumed?.meta.progress,
      validate,
      objective: data.objective,
      timeBudgetSeconds: opts.timeBudgetSeconds,
      wholeEpochs: opts.wholeEpochs,
      stop,
      log,
      quiet: opts.quiet,
    });
    const readShare = result.trainMs > 0 ? (100 * result.featureReadMs) / result.trainMs : 0;
    log(
      `Done (${result.reason}). Checkpoints in ${checkpointDir}; loss plot ${path.join(checkpointDir, 'loss.png')}. ` +
        `Reading features took ${readShare.toFixed(1)}% of the training time.`,
    );
    return { ...result, config, model, vocab, store };
  });
}

/** The files of a trained run in a checkpoints folder: --force removes them, their presence refuses a plain start. */
const CHECKPOINT_FILES = ['latest.safetensors', 'latest.json', 'best.safetensors', 'best.json', 'loss.svg', 'loss.png'];

/**
 * Refuses to start a new run (neither --resume nor --force) in a folder holding checkpoints: it would overwrite
 * latest and then best. --force with --resume is refused as contradictory.
 */
function refuseTrainedFolder(checkpointDir: string, opts: TrainOptions): void {
  if (opts.force && opts.resume) {
    throw new UserError(`--force starts over in ${checkpointDir}, --resume continues it: use one of them.`);
  }
  if (opts.resume || opts.force) return;
  const found = ['latest', 'best']
    .map((tag) => checkpointTagPaths(checkpointDir, tag as 'latest' | 'best').weights)
    .filter((f) => fs.existsSync(f));
  if (found.length === 0) return;
  let progress = '';
  try {
    const meta = JSON.parse(fs.readFileSync(path.join(checkpointDir, 'latest.json'), 'utf8')) as CheckpointMeta;
    progress = ` (${meta.progress.epoch} epoch${meta.progress.epoch === 1 ? '' : 's'} trained, saved ${meta.createdAt})`;
  } catch {
    progress = '';
  }
  throw new UserError(
    `${checkpointDir} already holds checkpoints${progress}: ${found.map((f) => path.basename(f)).join(', ')}. ` +
      'Continue that run with --resume, train into another folder with --checkpoints DIR, or pass --force to start over (it deletes them).',
  );
}

/** --force: the previous run's checkpoints and loss plot go before the new run writes its own. */
function removeCheckpoints(checkpointDir: string, log: (line: string) => void): void {
  const removed = CHECKPOINT_FILES.filter((name) => fs.existsSync(path.join(checkpointDir, name)));
  for (const name of removed) fs.rmSync(path.join(checkpointDir, name), { force: true });
  if (removed.length > 0) log(`--force: removed ${removed.join(', ')} from ${checkpointDir}`);
}

/**
 * Where training starts: the effective config (its precision resolved: fp32 or bf16), the precision as asked and
 * why it resolved so, and the checkpoint it continues (--resume) or starts from (--init).
 */
interface StartingPoint {
  config: TrainConfig;
  precision: TrainingPrecision;
  resumed: LoadedCheckpoint<Partial<TrainConfig>> | null;
  initial: InitSource | null;
}

/**
 * defaults <- --config file <- flags, then: with --resume the checkpoint's config is the base and only
 * schedule-like settings may change; with --init the network's shape comes from the model. Both must have
 * been trained on this store's features (encoder and grid).
 */
function startingPoint(
  opts: TrainOptions,
  checkpointDir: string,
  store: FeatureStoreReader,
  runDir: string,
  initial: InitSource | null,
): StartingPoint {
  if (opts.init && opts.resume) {
    throw new UserError(
      `--init ${opts.init} starts a new run from a checkpoint's weights, --resume continues ${checkpointDir}: use one of them.`,
    );
  }
  const fromFile = opts.configFile ? readConfigFile(opts.configFile) : {};
  const asked = { ...fromFile, ...opts.overrides };
  let config = resolveConfig(fromFile, opts.overrides);

  const resumed = opts.resume ? loadCheckpoint<Partial<TrainConfig>>(checkpointDir, 'latest') : null;
  if (resumed) {
    const saved = upgradeSavedConfig(resumed.meta.config);
    for (const key of FROZEN_ON_RESUME) {
      if (asked[key] !== undefined && asked[key] !== saved[key]) {
        throw new UserError(
          `--resume: "${key}" was ${saved[key]} in ${resumed.file} and cannot change to ${asked[key]} ` +
            'when continuing a run. Drop that option, or train from scratch into another --checkpoints folder.',
        );
      }
    }
    config = { ...saved, ...asked };
    checkSameFeatures('--resume', resumed, store);
    // An explicit learning rate replaces the (possibly decayed) current one, e.g. to continue more gently after a divergence.
    if (asked.learningRate !== undefined) resumed.meta.progress.learningRate = asked.learningRate;
  }

  if (initial) {
    // The network's shape is the model's; asking for another one is a mistake worth stopping for.
    const saved = upgradeSavedConfig(initial.config);
    const differs = INIT_SHAPE.filter((key) => asked[key] !== undefined && asked[key] !== saved[key]);
    if (differs.length > 0) {
      throw new UserError(
        `--init ${initial.named}: the model's size is fixed by its weights, and it differs from what was asked: ` +
          `${differs.map((key) => `${key} ${saved[key]} (asked ${asked[key]})`).join(', ')}. Drop ${differs.map((k) => `--${flagName(k)}`).join(' ')} ` +
          '(and those keys of --config), or train from scratch without --init.',
      );
    }
    config = { ...config, ...Object.fromEntries(INIT_SHAPE.map((key) => [key, saved[key]])) };
    checkInitFeatures(initial, store, runDir);
  }
  const precision = trainingPrecision(config.precision, asked.precision, resumed);
  return { config: { ...config, precision: precision.used }, precision, resumed, initial };
}

/**
 * The precision of the training steps: the one asked ('auto': bf16 where this machine runs it natively), resolved
 * here; bf16 where it cannot run is refused with the reason. A resumed run keeps its checkpoint's, so that it stays
 * exact: another explicit precision is refused, and 'auto' (or none) means the recorded one, refused with the
 * reason where this machine cannot run it. --init starts a new run, which may take any precision.
 */
function trainingPrecision(
  choice: PrecisionChoice,
  explicit: PrecisionChoice | undefined,
  resumed: LoadedCheckpoint<Partial<TrainConfig>> | null,
): TrainingPrecision {
  const recorded = resumed ? recordedPrecision(resumed.meta) : null;
  if (resumed && recorded) {
    const { file } = resumed;
    if (explicit !== undefined && explicit !== 'auto' && explicit !== recorded) {
      throw new UserError(
        `--resume: ${file} was trained in ${recorded}, and a run keeps its precision when it continues ` +
          `(asked: ${explicit}). Drop --precision (or pass auto) to continue in ${recorded}, or start a new run (fresh Adam state ` +
          `and schedule) from these weights: --init ${file} --precision ${explicit} with another --checkpoints folder.`,
      );
    }
    const why = recorded === 'bf16' ? bf16Unavailable() : null;
    if (why) {
      throw new UserError(
        `--resume: ${file} was trained in bf16, which cannot run here: ${why}. Resume it where bf16 runs, ` +
          `or start a new run (fresh Adam state and schedule) from these weights: --init ${file} --precision fp32 with another --checkpoints folder.`,
      );
    }
    return {
      asked: explicit ?? resumed.meta.precision?.asked ?? recorded,
      used: recorded,
      reason: `resumed: ${path.basename(file)} was trained in ${recorded}`,
    };
  }
  const { precision, reason } = resolvePrecision(choice);
  return { asked: choice, used: precision, reason };
}

/**
 * The precision a checkpoint's steps ran in: as recorded, else its config's when that names one (none: fp32, the
 * only one before the option existed); null when its config says 'auto' without recording what that resolved to.
 */
function recordedPrecision(meta: CheckpointMeta<Partial<TrainConfig>>): Precision | null {
  if (meta.precision) return meta.precision.used;
  const saved = meta.config.precision;
  if (saved === undefined) return 'fp32';
  return saved === 'fp32' || saved === 'bf16' ? saved : null;
}

/** A config field's command-line flag (batchSize -> batch-size). */
const flagName = (field: string) => field.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();

function checkSameFeatures(flag: string, ckpt: LoadedCheckpoint<unknown>, store: FeatureStoreReader): void {
  if (ckpt.meta.encoder.id !== store.encoderId) {
    throw new UserError(
      `${flag}: ${ckpt.file} was trained on features "${ckpt.meta.encoder.id}" but this run's store is ` +
        `"${store.encoderId}". Pass --features with the matching store.`,
    );
  }
}

/** The model for the config, with the weights (and with --resume the Adam state) of the starting checkpoint. */
function buildModel(
  { config, precision, resumed }: StartingPoint,
  store: FeatureStoreReader,
  vocab: Vocabulary,
): CaptionModel {
  const modelConfig: ModelConfig = {
    locations: store.locations,
    channels: store.channels,
    vocabSize: vocab.size,
    embedDim: config.embedDim,
    units: config.units,
    attentionUnits: config.attentionUnits,
    dropout: config.dropout,
    attentionLambda: config.attentionLambda,
    labelSmoothing: config.labelSmoothing,
    gruState: config.gruState,
    initState: config.initState,
  };
  const model = createModel(modelConfig, { seed: config.seed, precision: precision.used });
  if (resumed) restoreModel(model, resumed, { optimizer: true });
  return model;
}

interface TrainingData {
  train: ExampleTable;
  dev: ExampleTable;
  /** Self-critical training's step; absent for cross-entropy. */
  objective?: BatchObjective;
}

/**
 * The run's images streamed from images.jsonl into packed example tables, keeping whole only the images that
 * need their raw captions: the dev images for a CIDEr or BLEU validation, the train images for self-critical
 * training (its references). Memory then grows with the dataset by its token ids, not by its JS objects.
 */
function readRunExamples(
  runDir: string,
  config: TrainConfig,
): { train: ExampleTable; dev: ExampleTable; kept: PreparedImage[] } {
  const train = new ExampleTableBuilder(),
    dev = new ExampleTableBuilder();
  const kept: PreparedImage[] = [];
  const keep = (im: PreparedImage) =>
    (im.split === 'dev' && config.valMetric !== 'loss') || (im.split === 'train' && config.objective === 'scst');
  forEachPreparedImage(runDir, (im) => {
    if (config.objective !== 'scst') addImageExamples(train, im, 'train', config.maxCaptionLength);
    addImageExamples(dev, im, 'dev', config.maxCaptionLength);
    if (keep(im)) kept.push(im);
  });
  return { train: train.build(), dev: dev.build(), kept };
}

/** Self-critical training steps over images (sampling its own captions); cross-entropy over (image, caption) pairs. */
function trainingData(
  { config, resumed, initial }: StartingPoint,
  runDir: string,
  vocab: Vocabulary,
  log: (line: string) => void,
): { data: TrainingData; kept: PreparedImage[] } {
  const { train, dev, kept } = readRunExamples(runDir, config);
  if (config.objective !== 'scst') return { data: { train, dev }, kept };
  const trainImages = kept.filter((im) => im.split === 'train');
  const objective = selfCriticalObjective({
    images: trainImages,
    vocab,
    samples: config.scstSamples,
    captionsPerBatch: config.batchSize,
    maxLength: config.scstMaxLength,
    bleuWeight: config.scstBleuWeight,
  });
  if (!initial && !resumed)
    log(
      '  note: self-critical training from random weights rarely learns; start from a cross-entropy checkpoint with --init.',
    );
  if (config.dropout > 0)
    log(
      `  note: dropout ${config.dropout} with self-critical training scores the samples under another policy than drew them; configs/scst.json uses 0.`,
    );
  return { data: { train: selfCriticalExamples(trainImages), dev, objective }, kept };
}

/** The lines printed before the first batch: data, starting point, checkpoints and the effective config. */
function describeRun(
  runDir: string,
  store: FeatureStoreReader,
  vocab: Vocabulary,
  { config, resumed }: StartingPoint,
  data: TrainingData,
  checkpointDir: string,
  remap: string | null,
): string {
  const tokens = data.train.totalTargetTokens();
  return (
    `sat train: ${runDir}\n  features ${store.encoderId} [${store.locations} x ${store.channels}], vocabulary ${vocab.size} words\n` +
    (data.objective
      ? `  self-critical: ${data.train.length} train images, ${config.scstSamples} sampled captions each, ${data.objective.examplesPerBatch} images per step; dev ${data.dev.length} captions\n`
      : `  train ${data.train.length} captions (${tokens} target tokens), dev ${data.dev.length} captions\n`) +
    (remap ? `${remap}\n` : '') +
    `  checkpoints ${checkpointDir}` +
    (resumed
      ? `\n  resuming ${resumed.file} at epoch ${resumed.meta.progress.epoch}` +
        (resumed.meta.progress.batchInEpoch ? `, batch ${resumed.meta.progress.batchInEpoch}` : '')
      : '') +
    `\nconfig:\n${formatConfig(config)}`
  );
}

/**
 * Run `body` with Ctrl-C handled (when `handle`): the first Ctrl-C asks the loop to save at the end of the
 * current batch and return; a second one quits at once (exit 130) without saving.
 */
async function withCtrlC<T>(
  handle: boolean,
  log: (line: string) => void,
  body: (stop: { requested: boolean }) => Promise<T>,
): Promise<T> {
  const stop = { requested: false };
  const onSigint = () => {
    if (stop.requested) {
      log('\nSecond Ctrl-C: quitting without saving.');
      process.exit(130);
    }
    stop.requested = true;
    log('\nCtrl-C: saving a checkpoint at the end of this batch (Ctrl-C again to quit without saving).');
  };
  if (handle) process.on('SIGINT', onSigint);
  try {
    return await body(stop);
  } finally {
    if (handle) process.off('SIGINT', onSigint);
  }
}
