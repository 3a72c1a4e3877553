/**
 * `train(options)`: train (or resume) a captioning model on a prepared run directory (src/run.ts):
 * images.jsonl + vocab.json from `sat prepare`, features from `sat features`. Checkpoints go to
 * RUN/checkpoints unless told otherwise. The loop itself is src/train/loop.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { CaptionModel, ModelConfig } from '../model/types.js';
import { createModel, resolvePrecision } from '../model/index.js';
import type { FeatureStoreReader } from '../features/types.js';
import { openFeatureStore } from '../features/store.js';
import { runPaths } from '../run.js';
import { loadRun } from '../prepare.js';
import type { Vocabulary } from '../vocab/vocabulary.js';
import { UserError } from '../util/errors.js';
import { loadCheckpoint, restoreModel } from '../checkpoint/checkpoint.js';
import { DEFAULT_TRAIN_CONFIG, FROZEN_ON_RESUME, formatConfig, readConfigFile, resolveConfig, type TrainConfig } from './config.js';
import { splitExamples, type Example } from './batches.js';
import { selfCriticalExamples, selfCriticalObjective, type BatchObjective } from './self-critical.js';
import { trainLoop, type TrainResult, type ValidateHook } from './loop.js';
import type { PreparedImage } from '../run.js';
import { makeValidateHook, METRIC_LABEL } from '../eval/validation.js';

export interface TrainOptions {
  runDir: string;
  /** JSON file with TrainConfig fields (`--config`). */
  configFile?: string;
  /** Explicit settings (CLI flags); they win over the file. */
  overrides?: Partial<TrainConfig>;
  /** Continue from CHECKPOINTS/latest.*: weights, Adam state, data order and loss history. */
  resume?: boolean;
  /**
   * Start a new run from this checkpoint's weights (a .safetensors file, or a folder: its best): fresh Adam
   * state, schedule and history; the network shape comes from the checkpoint. How self-critical training
   * (objective 'scst') starts from a cross-entropy model.
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

/** Which feature store a run trains on: explicit, then run.json's record, then the only folder present. */
export function findFeatureDir(runDir: string, explicit?: string): string {
  if (explicit) return explicit;
  const paths = runPaths(runDir);
  if (fs.existsSync(paths.runJson)) {
    const run = JSON.parse(fs.readFileSync(paths.runJson, 'utf8')) as { features?: { encoderId?: string; dir?: string } | string };
    const rec = run.features;
    if (typeof rec === 'string') return path.resolve(runDir, rec);
    if (rec?.dir) return path.resolve(runDir, rec.dir);
    if (rec?.encoderId) return paths.features(rec.encoderId);
  }
  const root = path.join(runDir, 'features');
  const found = fs.existsSync(root) ? fs.readdirSync(root).filter((d) => fs.existsSync(path.join(root, d, 'meta.json'))) : [];
  if (found.length === 1) return path.join(root, found[0]);
  if (found.length === 0) throw new UserError(`${runDir} has no features yet: run \`sat features --run ${runDir}\` first.`);
  throw new UserError(`${runDir} has several feature stores (${found.join(', ')}): choose one with --features ${path.join(root, found[0])}.`);
}

/** The per-epoch metric hook for config.valMetric (none for 'loss', or when the run has no dev captions). */
function validationHook(config: TrainConfig, images: PreparedImage[], vocab: Vocabulary, store: FeatureStoreReader,
                        quiet: boolean | undefined, log: (line: string) => void): ValidateHook | undefined {
  if (config.valMetric === 'loss') return undefined;
  const dev = images.filter((im) => im.split === 'dev' && im.captions.length > 0);
  if (dev.length === 0) {
    log(`  no dev captions: best epoch by training loss instead of ${config.valMetric} (val-metric).`);
    return undefined;
  }
  const n = config.valImages > 0 ? Math.min(config.valImages, dev.length) : dev.length;
  log(`  validation: ${METRIC_LABEL[config.valMetric]} of greedy captions for ${n} of ${dev.length} dev images each epoch`);
  return makeValidateHook({ store, images: dev, vocab, metric: config.valMetric, maxImages: config.valImages, seed: config.seed, quiet });
}

export async function train(opts: TrainOptions): Promise<TrainOutcome> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const runDir = path.resolve(opts.runDir);
  const paths = runPaths(runDir);
  const checkpointDir = path.resolve(opts.checkpointDir ?? paths.checkpoints);
  const { vocab, images } = loadRun(runDir);
  const store = openFeatureStore(findFeatureDir(runDir, opts.featuresDir));

  const fromFile = opts.configFile ? readConfigFile(opts.configFile) : {};
  let config = resolveConfig(fromFile, opts.overrides);
  if (opts.init && opts.resume) {
    throw new UserError(`--init ${opts.init} starts a new run from a checkpoint's weights, --resume continues ${checkpointDir}: use one of them.`);
  }
  const resumed = opts.resume ? loadCheckpoint(checkpointDir, 'latest') : null;
  if (resumed) {
    // The checkpoint's config is the base; only schedule-like settings may change when continuing.
    const asked = { ...fromFile, ...opts.overrides };
    resumed.meta.config.gruState ??= 'carry';  // checkpoints made before gruState existed carried the state
    resumed.meta.config.initState ??= 'zeros';  // and started from H[0] = 0 before initState existed
    for (const key of FROZEN_ON_RESUME) {
      if (asked[key] !== undefined && asked[key] !== resumed.meta.config[key]) {
        throw new UserError(`--resume: "${key}" was ${resumed.meta.config[key]} in ${resumed.file} and cannot change to ${asked[key]} ` +
          'when continuing a run. Drop that option, or train from scratch into another --checkpoints folder.');
      }
    }
    // Checkpoints made before the validation metric existed picked `best` by the dev loss: keep it so.
    const saved: Partial<TrainConfig> = resumed.meta.config;
    config = { ...DEFAULT_TRAIN_CONFIG, ...resumed.meta.config, valMetric: saved.valMetric ?? 'loss', valImages: saved.valImages ?? 0, ...asked };
    if (resumed.meta.encoder.id !== store.encoderId) {
      throw new UserError(`--resume: ${resumed.file} was trained on features "${resumed.meta.encoder.id}" but this run's store is ` +
        `"${store.encoderId}". Pass --features with the matching store.`);
    }
  }

  const initial = opts.init ? loadCheckpoint(opts.init, 'best') : null;
  if (initial) {
    // The network's shape is the checkpoint's; asking for another one is a mistake worth stopping for.
    const asked = { ...fromFile, ...opts.overrides };
    // Checkpoints made before gruState / initState existed carried the state and started from zeros.
    const saved: Partial<TrainConfig> = { ...initial.meta.config };
    saved.gruState ??= 'carry';
    saved.initState ??= 'zeros';
    for (const key of INIT_SHAPE) {
      if (asked[key] !== undefined && asked[key] !== saved[key]) {
        throw new UserError(`--init: "${key}" is ${saved[key]} in ${initial.file} and cannot be ${asked[key]}. Drop that option.`);
      }
      (config as unknown as Record<string, unknown>)[key] = saved[key];
    }
    if (initial.meta.encoder.id !== store.encoderId) {
      throw new UserError(`--init: ${initial.file} was trained on features "${initial.meta.encoder.id}" but this run's store is ` +
        `"${store.encoderId}". Pass --features with the matching store.`);
    }
    if (initial.meta.model.vocabSize !== vocab.size) {
      throw new UserError(`--init: ${initial.file} has a ${initial.meta.model.vocabSize}-word vocabulary, this run ${vocab.size}: ` +
        'start from a checkpoint of this run (same `sat prepare`).');
    }
  }

  const modelConfig: ModelConfig = {
    locations: store.locations, channels: store.channels, vocabSize: vocab.size,
    embedDim: config.embedDim, units: config.units, attentionUnits: config.attentionUnits,
    dropout: config.dropout, attentionLambda: config.attentionLambda, gruState: config.gruState,
    initState: config.initState,
  };
  const precision = resolvePrecision(config.precision);
  const model = createModel(modelConfig, { seed: config.seed, precision: precision.precision });
  if (resumed) {
    restoreModel(model, resumed, { optimizer: true });
    // An explicit learning rate replaces the (possibly decayed) current one, e.g. to continue more gently after a divergence.
    const lr = opts.overrides?.learningRate ?? fromFile.learningRate;
    if (lr !== undefined) resumed.meta.progress.learningRate = lr;
  }
  if (initial) restoreModel(model, initial, { optimizer: false });

  // Self-critical training steps over images (sampling its own captions); cross-entropy over (image, caption) pairs.
  let objective: BatchObjective | undefined;
  let trainSet: Example[];
  if (config.objective === 'scst') {
    trainSet = selfCriticalExamples(images);
    objective = selfCriticalObjective({
      images: images.filter((im) => im.split === 'train'), vocab, samples: config.scstSamples,
      captionsPerBatch: config.batchSize, maxLength: config.scstMaxLength,
    });
    if (!initial && !resumed) log('  note: self-critical training from random weights rarely learns; start from a cross-entropy checkpoint with --init.');
    if (config.dropout > 0) log(`  note: dropout ${config.dropout} with self-critical training scores the samples under another policy than drew them; configs/scst.json uses 0.`);
  } else {
    trainSet = splitExamples(images, 'train', config.maxCaptionLength);
  }
  const devSet = splitExamples(images, 'dev', config.maxCaptionLength);
  const tokens = trainSet.reduce((s, e) => s + e.tokens.length - 1, 0);

  const validate = opts.validate ?? validationHook(config, images, vocab, store, opts.quiet, log);

  const stop = { requested: false };
  const onSigint = () => {
    if (stop.requested) {
      log('\nSecond Ctrl-C: quitting without saving.');
      process.exit(130);
    }
    stop.requested = true;
    log('\nCtrl-C: saving a checkpoint at the end of this batch (Ctrl-C again to quit without saving).');
  };
  if (opts.handleSigint !== false) process.on('SIGINT', onSigint);
  // Printed only once Ctrl-C is handled, so whoever sees the config knows Ctrl-C saves from here on.
  log(`sat train: ${runDir}\n  features ${store.encoderId} [${store.locations} x ${store.channels}], vocabulary ${vocab.size} words\n` +
    (objective
      ? `  self-critical: ${trainSet.length} train images, ${config.scstSamples} sampled captions each, ${objective.examplesPerBatch} images per step; dev ${devSet.length} captions\n`
      : `  train ${trainSet.length} captions (${tokens} target tokens), dev ${devSet.length} captions\n`) +
    (initial ? `  weights from ${initial.file}\n` : '') +
    `  checkpoints ${checkpointDir}` + (resumed ? `\n  resuming ${resumed.file} at epoch ${resumed.meta.progress.epoch}` +
      (resumed.meta.progress.batchInEpoch ? `, batch ${resumed.meta.progress.batchInEpoch}` : '') : '') +
    `\nconfig:\n${formatConfig(config)}\n  precision ${precision.precision} (${precision.reason})`);
  try {
    const result = await trainLoop({
      config, model, store, train: trainSet, dev: devSet, checkpointDir, vocabFile: paths.vocab, runDir,
      resume: resumed?.meta.progress, validate, objective, timeBudgetSeconds: opts.timeBudgetSeconds, wholeEpochs: opts.wholeEpochs, stop,
      log, quiet: opts.quiet,
    });
    const readShare = result.trainMs > 0 ? (100 * result.featureReadMs) / result.trainMs : 0;
    log(`Done (${result.reason}). Checkpoints in ${checkpointDir}; loss plot ${path.join(checkpointDir, 'loss.png')}. ` +
      `Reading features took ${readShare.toFixed(1)}% of the training time.`);
    return { ...result, config, model, vocab, store };
  } finally {
    if (opts.handleSigint !== false) process.off('SIGINT', onSigint);
  }
}
