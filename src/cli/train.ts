import type { Command } from './command.js';
import { numberOption, requireString } from './command.js';
import { CONFIG_RULES, DEFAULT_TRAIN_CONFIG as D, validateConfigPatch, type TrainConfig } from '../train/config.js';
import { train } from '../train/train.js';
import { UserError } from '../util/errors.js';

/**
 * `sat train`. Every TrainConfig field is a flag: its name in kebab-case (batchSize -> --batch-size), generated
 * from the config so flags and config file keys cannot drift apart. No parse-time defaults: a flag given on the
 * command line is an explicit override (it wins over --config and must match the checkpoint on --resume); the
 * defaults live in src/train/config.ts.
 */

/** One line of help per config field (the type system insists on every field). */
const FIELD_HELP: Record<keyof TrainConfig, string> = {
  embedDim: 'embedding size E (also the width of the projection of the features)',
  units: 'GRU units U',
  attentionUnits: 'attention units A',
  dropout: 'dropout rate on the decoder (0 = off, as the tutorial)',
  attentionLambda: 'doubly stochastic attention regulariser weight (0 = off)',
  labelSmoothing: 'cross-entropy towards (1 - eps) on the word + eps spread over the vocabulary (0 = off)',
  mirrorProbability:
    'train on the features of the image mirrored left to right with this probability per row (needs `sat features --mirror`; 0 = off)',
  gruState:
    "carry | reset: reset = the TF tutorial's GRU, which restarts from zeros every step; carry = a real recurrence",
  initState:
    "zeros | mean: the decoder's initial state; mean = the paper's tanh(W·mean annotation + b), zeros = the TF tutorial",
  batchSize: 'captions per batch',
  epochs: 'epochs to train in total',
  learningRate: 'Adam learning rate (with --resume: replaces the current, possibly decayed, rate)',
  clipNorm: 'global gradient-norm clipping (0 = off)',
  precision:
    'fp32 | bf16 | auto: matmul operands of the training step; bf16 (f32 accumulation) needs AVX512-BF16 or AMX, auto picks it where the CPU has it',
  lrSchedule: 'constant | step | plateau',
  lrDecayFactor: 'learning-rate decay factor',
  lrStepEpochs: 'epochs between decays for --lr-schedule step',
  lrPatience: 'epochs without improvement before a decay for --lr-schedule plateau',
  minLearningRate: 'the schedule never decays the learning rate below this',
  valMetric: 'cider | bleu4 | loss: picks best, drives plateau decay and early stopping',
  valImages: 'greedy-caption this many seeded dev images for --val-metric cider|bleu4 (0 = all)',
  earlyStopPatience: 'stop after this many epochs without validation improvement (0 = never)',
  minEpochs: 'never stop early before this many epochs',
  seed: 'random seed for initialisation, shuffling and dropout',
  maxCaptionLength: 'cut captions to this many tokens incl. <start>/<end> (0 = as prepared)',
  batchBy:
    'caption | image: image = every caption of an image in the same batch, its features projected once (faster on fine grids)',
  bucketBatches: 'length bucketing: sort within shuffled chunks of this many batches (0 = off)',
  maxValExamples: 'at most this many dev captions for the validation loss (0 = all)',
  featureCacheMB: 'MB of decoded features kept in RAM between batches (0 = off)',
  checkpointMinutes: 'also save mid-epoch this often (0 = epoch ends only)',
  objective:
    'xe | scst: cross-entropy on the human captions, or self-critical training on CIDEr-D (with --init; see configs/scst.json)',
  scstSamples: 'self-critical: captions sampled per image',
  scstMaxLength: 'self-critical: tokens sampled per caption at most, <end> included',
  scstBleuWeight:
    'self-critical: the reward is CIDEr-D + this x sentence BLEU-4 against the same references (0: CIDEr-D alone)',
};

/** A config field's flag: batchSize -> batch-size, featureCacheMB -> feature-cache-mb. */
export const flagOf = (field: string): string => field.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();

const FIELDS = Object.keys(FIELD_HELP) as (keyof TrainConfig)[];

/** Spellings of earlier releases, accepted for one more release with a line naming the new flag. */
export const OLD_TRAIN_FLAGS: Readonly<Record<string, keyof TrainConfig>> = {
  batch: 'batchSize',
  lr: 'learningRate',
  clip: 'clipNorm',
  bucket: 'bucketBatches',
  'val-max': 'maxValExamples',
  'max-length': 'maxCaptionLength',
  'cache-mb': 'featureCacheMB',
  'early-stop': 'earlyStopPatience',
  'lr-factor': 'lrDecayFactor',
  'lr-step': 'lrStepEpochs',
};

const options: Command['options'] = {
  run: { type: 'string', description: 'run directory (from sat prepare + sat features)' },
  config: {
    type: 'string',
    description:
      'JSON file of training settings (field names as printed at start, e.g. configs/tutorial.json); flags win over it',
  },
  resume: { type: 'boolean', description: 'continue from CHECKPOINTS/latest exactly where it stopped' },
  force: {
    type: 'boolean',
    description:
      'start over in a checkpoints folder that holds checkpoints, deleting them (without it, or --resume, such a folder is refused)',
  },
  init: {
    type: 'string',
    description:
      'start from a trained model: a checkpoint (file, checkpoints or run folder: its best) or a bundle folder; shared words keep their rows, new words start fresh; fresh optimizer and schedule',
  },
  checkpoints: { type: 'string', description: 'checkpoint folder (default RUN/checkpoints)' },
  features: { type: 'string', description: 'feature store folder (default: the one the run uses)' },
  minutes: { type: 'string', description: 'stop (with a checkpoint) after this many minutes of training' },
  quiet: { type: 'boolean', description: 'no progress bars' },
};
for (const field of FIELDS)
  options[flagOf(field)] = { type: 'string', description: `${FIELD_HELP[field]} (default ${D[field]})` };
for (const [old, field] of Object.entries(OLD_TRAIN_FLAGS)) {
  options[old] = { type: 'string', description: `old spelling of --${flagOf(field)}`, hidden: true };
}

/** The config fields given as flags (new or old spellings), validated; an old spelling prints what to use instead. */
export function configFromFlags(
  values: Record<string, unknown>,
  warn: (line: string) => void = (l) => console.error(l),
): Partial<TrainConfig> {
  const given: Record<string, unknown> = { ...values };
  for (const [old, field] of Object.entries(OLD_TRAIN_FLAGS)) {
    if (values[old] === undefined) continue;
    const flag = flagOf(field);
    if (values[flag] !== undefined)
      throw new UserError(`--${old} and --${flag} are the same setting: give only --${flag}.`);
    warn(`sat train: --${old} is now --${flag} (the old name works until the next release).`);
    given[flag] = values[old];
  }
  const patch: Record<string, unknown> = {};
  for (const field of FIELDS) {
    const flag = flagOf(field);
    if (given[flag] === undefined) continue;
    const rule = CONFIG_RULES[field];
    patch[field] = rule.oneOf
      ? given[flag]
      : numberOption(given, flag, { integer: rule.integer, min: rule.min, max: rule.max });
  }
  return validateConfigPatch(patch, 'flag');
}

const command: Command = {
  name: 'train',
  summary: "Train the attention captioner on a run's cached features (checkpoints, exact --resume)",
  usage:
    'sat train --run DIR [--epochs N] [--batch-size N] [--learning-rate X] [--dropout X] [--clip-norm X] [--gru-state carry|reset] ' +
    '[--init-state zeros|mean] [--precision fp32|bf16|auto] [--config FILE] [--resume | --force] [--init MODEL [--config configs/scst.json]]',
  options,
  async run({ values }) {
    const runDir = requireString(values, 'run', 'the run directory made by `sat prepare` and `sat features`.');
    const minutes = numberOption(values, 'minutes', { min: 0 });
    const outcome = await train({
      runDir,
      configFile: values.config as string | undefined,
      overrides: configFromFlags(values),
      resume: values.resume === true,
      force: values.force === true,
      init: values.init as string | undefined,
      checkpointDir: values.checkpoints as string | undefined,
      featuresDir: values.features as string | undefined,
      timeBudgetSeconds: minutes !== undefined ? minutes * 60 : undefined,
      quiet: values.quiet === true,
    });
    outcome.store.close();
    outcome.model.dispose();
    if (outcome.reason === 'interrupted') process.exitCode = 130;
  },
};

export default command;
