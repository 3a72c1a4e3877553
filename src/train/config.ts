/**
 * Training configuration: one typed object of defaults, overridden by an optional JSON file
 * (`--config file.json`) and then by CLI flags (nanoGPT style). The effective config is printed at the
 * start of training and stored in every checkpoint, so a checkpoint says exactly how it was made.
 *
 * The defaults are the recipe that scored best on Flickr8k dev (RESULTS.md): the tutorial's batch 64 and Adam 1e-3,
 * with E 512, dropout 0.5, attention regulariser 0.1, clipping 5, LR halved on a CIDEr plateau, early stopping.
 * The TF tutorial's own recipe is configs/tutorial.json: `sat train --config configs/tutorial.json`.
 */
import fs from 'node:fs';
import { GRU_STATES, INIT_STATES, TUTORIAL_MODEL_DEFAULTS, type GruState, type InitState } from '../model/types.js';
import { PRECISION_CHOICES, type PrecisionChoice } from '../model/precision.js';
import { UserError } from '../util/errors.js';

export type LrSchedule = 'constant' | 'step' | 'plateau';
/** What picks `best`, drives the plateau schedule and early stopping (src/train/validation.ts). */
export type ValMetric = 'cider' | 'bleu4' | 'loss';
export const BATCH_BY = ['caption', 'image'] as const;
export type BatchBy = (typeof BATCH_BY)[number];

export interface TrainConfig {
  // Model shape (the tutorial: E 256, U 512, A 512, no dropout, no attention regulariser).
  embedDim: number;
  units: number;
  attentionUnits: number;
  dropout: number;
  attentionLambda: number;
  labelSmoothing: number; // cross-entropy target (1 - eps) onehot + eps / V; 0 = off (the tutorial)
  // Each training row reads the features of its image mirrored left to right (stored by `sat features --mirror`)
  // with this probability, drawn per optimizer step and row: a second view of every image. 0 = off.
  mirrorProbability: number;
  // 'carry' (default): a real recurrence. 'reset': the TF tutorial's GRU, which restarts from zeros every step
  // (its previous output is only the attention query). Checkpoints without the field are 'carry'.
  gruState: GruState;
  // The decoder's initial state: 'zeros' (default, the TF tutorial) or 'mean' (the paper: predicted from the
  // mean annotation vector through tanh(W·mean + b)). Checkpoints without the field are 'zeros'.
  initState: InitState;

  // Optimisation (the tutorial: batch 64, 20 epochs, Adam lr 1e-3, no gradient clipping).
  batchSize: number;
  epochs: number;
  learningRate: number;
  clipNorm: number; // global-norm clipping; 0 = off
  // Matmul operands of the training step: 'fp32', 'bf16' (f32 accumulation, weights/Adam/softmax/loss f32; needs
  // oneDNN and AVX512-BF16 or AMX) or 'auto' (bf16 where the CPU has it). Checkpoints store the one used (never
  // 'auto'; what was asked is in their meta); checkpoints without the field are fp32. Frozen on resume.
  precision: PrecisionChoice;

  // Learning-rate decay. 'step': lr *= lrDecayFactor every lrStepEpochs epochs.
  // 'plateau': lr *= lrDecayFactor once the validation score has not improved for lrPatience epochs.
  lrSchedule: LrSchedule;
  lrDecayFactor: number;
  lrStepEpochs: number;
  lrPatience: number;
  minLearningRate: number;

  // Validation score: CIDEr-D or BLEU-4 of greedy captions for the dev images (valImages of them, picked by
  // `seed`; 0 = all), or the dev loss as in the tutorial. Measured on Flickr8k: greedy decoding of all 1000 dev
  // images costs about 3% of a training epoch (bench/eval-validation-cost.ts), so the default is all.
  valMetric: ValMetric;
  valImages: number;

  // Early stopping on the validation score.
  earlyStopPatience: number; // epochs without improvement before stopping; 0 = never stop early
  minEpochs: number; // never stop early before this many epochs

  // Data.
  seed: number; // shuffling, model initialisation, dropout masks
  maxCaptionLength: number; // tokens per caption incl. <start>/<end>; longer ones are cut (keeping <end>); 0 = as prepared
  // 'caption' (the tutorial): a batch is any captions. 'image': all captions of an image in one batch, so the
  // feature projection runs once per image (ruotianluo's seq_per_img); batchSize still counts captions.
  batchBy: BatchBy;
  bucketBatches: number; // length bucketing: sort by length within shuffled chunks of this many batches; 0 = off (the tutorial)
  maxValExamples: number; // cap on dev (image, caption) pairs for validation loss; 0 = all
  featureCacheMB: number; // keep up to this many MB of decoded (float32) features in RAM, least recently used out; 0 = off

  // Checkpointing.
  checkpointMinutes: number; // also save "latest" mid-epoch this often, so a crash loses little; 0 = epoch ends only

  // What a step optimises. 'xe': cross-entropy with teacher forcing on the human captions (the tutorial).
  // 'scst': self-critical sequence training on CIDEr-D (src/train/self-critical.ts), started from a
  // cross-entropy checkpoint with `--init`; configs/scst.json has its usual settings (no dropout, small LR).
  objective: Objective;
  scstSamples: number; // captions sampled per image; each one's baseline is the mean reward of the others
  scstMaxLength: number; // tokens sampled per caption at most, <end> included
  scstBleuWeight: number; // the reward is CIDEr-D + this x sentence BLEU-4 (against the same references); 0 = CIDEr-D alone
}

export type Objective = 'xe' | 'scst';

export const DEFAULT_TRAIN_CONFIG: Readonly<TrainConfig> = Object.freeze({
  ...TUTORIAL_MODEL_DEFAULTS,
  embedDim: 512, // tutorial 256
  dropout: 0.5, // tutorial 0
  attentionLambda: 0.1, // tutorial 0
  labelSmoothing: 0,
  mirrorProbability: 0,
  gruState: 'carry', // tutorial 'reset'
  initState: 'zeros',
  batchSize: 64,
  epochs: 20,
  learningRate: 1e-3,
  clipNorm: 5, // tutorial 0
  precision: 'fp32',
  lrSchedule: 'plateau', // tutorial 'constant'
  lrDecayFactor: 0.5,
  lrStepEpochs: 5,
  lrPatience: 1,
  minLearningRate: 1e-5,
  valMetric: 'cider',
  valImages: 0,
  earlyStopPatience: 3, // tutorial 0
  minEpochs: 1,
  seed: 42,
  maxCaptionLength: 0,
  batchBy: 'caption',
  bucketBatches: 50,
  maxValExamples: 0,
  featureCacheMB: 256,
  checkpointMinutes: 10,
  objective: 'xe',
  scstSamples: 5,
  scstBleuWeight: 0,
  scstMaxLength: 20, // 97.7% of Flickr8k's training captions fit (with <end>); self-critical.pytorch uses 16 on COCO
});

/**
 * Fields that define the network or the data order, and the validation metric (the best score so far is
 * on its scale): they cannot change when resuming a run. The precision cannot either, with its own rule for
 * 'auto' (src/train/train.ts trainingPrecision).
 */
export const FROZEN_ON_RESUME: readonly (keyof TrainConfig)[] = [
  'embedDim',
  'units',
  'attentionUnits',
  'dropout',
  'attentionLambda',
  'labelSmoothing',
  'mirrorProbability',
  'gruState',
  'initState',
  'batchSize',
  'seed',
  'maxCaptionLength',
  'bucketBatches',
  'batchBy',
  'valMetric',
  'objective',
  'scstSamples',
  'scstBleuWeight',
];

/** What a field accepts: a number (integer, within min..max), or one of a few names. */
export type ConfigRule = { integer?: boolean; min?: number; max?: number; oneOf?: readonly string[] };
export const CONFIG_RULES: Readonly<Record<keyof TrainConfig, ConfigRule>> = {
  embedDim: { integer: true, min: 1 },
  units: { integer: true, min: 1 },
  attentionUnits: { integer: true, min: 1 },
  dropout: { min: 0, max: 0.95 },
  attentionLambda: { min: 0 },
  labelSmoothing: { min: 0, max: 0.5 },
  mirrorProbability: { min: 0, max: 1 },
  gruState: { oneOf: GRU_STATES },
  initState: { oneOf: INIT_STATES },
  batchSize: { integer: true, min: 1 },
  epochs: { integer: true, min: 0 },
  learningRate: { min: 0 },
  clipNorm: { min: 0 },
  precision: { oneOf: PRECISION_CHOICES },
  lrSchedule: { oneOf: ['constant', 'step', 'plateau'] },
  lrDecayFactor: { min: 0, max: 1 },
  lrStepEpochs: { integer: true, min: 1 },
  lrPatience: { integer: true, min: 0 },
  minLearningRate: { min: 0 },
  valMetric: { oneOf: ['cider', 'bleu4', 'loss'] },
  valImages: { integer: true, min: 0 },
  earlyStopPatience: { integer: true, min: 0 },
  minEpochs: { integer: true, min: 0 },
  seed: { integer: true, min: 0, max: 2 ** 32 - 1 },
  maxCaptionLength: { integer: true, min: 0 },
  bucketBatches: { integer: true, min: 0 },
  batchBy: { oneOf: BATCH_BY },
  maxValExamples: { integer: true, min: 0 },
  featureCacheMB: { min: 0 },
  checkpointMinutes: { min: 0 },
  objective: { oneOf: ['xe', 'scst'] },
  scstSamples: { integer: true, min: 2 },
  scstMaxLength: { integer: true, min: 1 },
  scstBleuWeight: { min: 0, max: 10 },
};

/**
 * Check every field of a partial config, naming `source` (a file or "flag") in the error.
 * Unknown keys are errors too: a typo in a config file must not be silently ignored.
 */
export function validateConfigPatch(patch: Record<string, unknown>, source: string): Partial<TrainConfig> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(patch)) {
    const rule = CONFIG_RULES[key as keyof TrainConfig];
    if (!rule) {
      throw new UserError(
        `${source}: unknown training option "${key}". Known options: ${Object.keys(CONFIG_RULES).join(', ')}.`,
      );
    }
    if (rule.oneOf) {
      if (typeof value !== 'string' || !rule.oneOf.includes(value)) {
        throw new UserError(
          `${source}: "${key}" must be one of ${rule.oneOf.join(', ')}, got ${JSON.stringify(value)}.`,
        );
      }
    } else {
      const ok =
        typeof value === 'number' &&
        Number.isFinite(value) &&
        (!rule.integer || Number.isInteger(value)) &&
        (rule.min === undefined || value >= rule.min) &&
        (rule.max === undefined || value <= rule.max);
      if (!ok) {
        const want = [
          rule.integer ? 'an integer' : 'a number',
          rule.min !== undefined ? `>= ${rule.min}` : '',
          rule.max !== undefined ? `<= ${rule.max}` : '',
        ]
          .filter(Boolean)
          .join(' ');
        throw new UserError(`${source}: "${key}" must be ${want}, got ${JSON.stringify(value)}.`);
      }
    }
    out[key] = value;
  }
  return out as Partial<TrainConfig>;
}

/** Read a `--config` JSON file: an object with any subset of TrainConfig's fields. */
export function readConfigFile(file: string): Partial<TrainConfig> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(
      `--config ${file}: cannot read it as JSON (${(e as Error).message}). ` +
        'Give a JSON object such as {"epochs": 5, "dropout": 0.5}.',
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UserError(
      `--config ${file}: expected a JSON object such as {"epochs": 5}, got ${Array.isArray(parsed) ? 'an array' : typeof parsed}.`,
    );
  }
  return validateConfigPatch(parsed as Record<string, unknown>, `--config ${file}`);
}

/**
 * A config saved in a checkpoint, completed for this version. Fields added since take the value that
 * reproduces how that checkpoint was trained, not today's defaults: gruState 'carry' and initState 'zeros'
 * (what training did before those options existed), `best` picked by the dev loss (valMetric 'loss', all
 * images); any other missing field is a schedule-like setting and takes its default.
 */
export function upgradeSavedConfig(saved: Partial<TrainConfig>): TrainConfig {
  return { ...DEFAULT_TRAIN_CONFIG, gruState: 'carry', initState: 'zeros', valMetric: 'loss', valImages: 0, ...saved };
}

/** defaults <- file <- flags. */
export function resolveConfig(file: Partial<TrainConfig> = {}, flags: Partial<TrainConfig> = {}): TrainConfig {
  return { ...DEFAULT_TRAIN_CONFIG, ...file, ...flags };
}

/** One line per field, marking the ones that differ from the defaults. */
export function formatConfig(config: TrainConfig): string {
  const width = Math.max(...Object.keys(config).map((k) => k.length));
  return Object.entries(config)
    .map(([k, v]) => {
      const changed =
        DEFAULT_TRAIN_CONFIG[k as keyof TrainConfig] !== v
          ? '   (default ' + String(DEFAULT_TRAIN_CONFIG[k as keyof TrainConfig]) + ')'
          : '';
      return `  ${k.padEnd(width)}  ${String(v)}${changed}`;
    })
    .join('\n');
}
