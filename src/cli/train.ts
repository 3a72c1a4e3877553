import type { Command } from './command.js';
import { numberOption, requireString } from './command.js';
import { DEFAULT_TRAIN_CONFIG as D, validateConfigPatch, type TrainConfig } from '../train/config.js';
import { train } from '../train/train.js';

// flag -> [config field, integer?]. No parse-time defaults: a flag given on the command line is an explicit
// override (it wins over --config and must match the checkpoint on --resume); the defaults live in config.ts.
const NUMERIC: Record<string, [keyof TrainConfig, boolean, string]> = {
  epochs: ['epochs', true, 'epochs to train in total'],
  batch: ['batchSize', true, 'captions per batch'],
  lr: ['learningRate', false, 'Adam learning rate'],
  dropout: ['dropout', false, 'dropout rate on the decoder (0 = off, as the seed)'],
  clip: ['clipNorm', false, 'global gradient-norm clipping (0 = off)'],
  'attention-lambda': ['attentionLambda', false, 'doubly stochastic attention regulariser weight (0 = off)'],
  'lr-factor': ['lrDecayFactor', false, 'learning-rate decay factor'],
  'lr-step': ['lrStepEpochs', true, 'epochs between decays for --lr-schedule step'],
  'lr-patience': ['lrPatience', true, 'epochs without improvement before a decay for --lr-schedule plateau'],
  'early-stop': ['earlyStopPatience', true, 'stop after this many epochs without validation improvement (0 = never)'],
  'min-epochs': ['minEpochs', true, 'never stop early before this many epochs'],
  seed: ['seed', true, 'seed for initialisation, shuffling and dropout'],
  'max-length': ['maxCaptionLength', true, 'cut captions to this many tokens incl. <start>/<end> (0 = as prepared)'],
  bucket: ['bucketBatches', true, 'length bucketing: sort within shuffled chunks of this many batches (0 = off)'],
  'val-max': ['maxValExamples', true, 'at most this many dev captions for the validation loss (0 = all)'],
  'val-images': ['valImages', true, 'greedy-caption this many seeded dev images for --val-metric cider|bleu4 (0 = all)'],
  'cache-mb': ['featureCacheMB', false, 'MB of decoded features kept in RAM between batches (0 = off)'],
  'checkpoint-minutes': ['checkpointMinutes', false, 'also save mid-epoch this often (0 = epoch ends only)'],
  'embed-dim': ['embedDim', true, 'embedding size E'],
  units: ['units', true, 'GRU units U'],
  'attention-units': ['attentionUnits', true, 'attention units A'],
  'scst-samples': ['scstSamples', true, 'self-critical: captions sampled per image'],
  'scst-max-length': ['scstMaxLength', true, 'self-critical: tokens sampled per caption at most, <end> included'],
};

const options: Command['options'] = {
  run: { type: 'string', description: 'run directory (from sat prepare + sat features)' },
  config: { type: 'string', description: 'JSON file of training settings (field names as printed at start); flags win over it' },
  resume: { type: 'boolean', description: 'continue from CHECKPOINTS/latest exactly where it stopped' },
  checkpoints: { type: 'string', description: 'checkpoint folder (default RUN/checkpoints)' },
  features: { type: 'string', description: 'feature store folder (default: the one the run uses)' },
  'lr-schedule': { type: 'string', description: `constant | step | plateau (default ${D.lrSchedule})` },
  'val-metric': { type: 'string', description: `cider | bleu4 | loss: picks best, drives plateau decay and early stopping (default ${D.valMetric})` },
  'gru-state': { type: 'string', description: `carry | reset: reset = the TF tutorial's GRU, which restarts from zeros every step; carry = a real recurrence (default)` },
  'init-state': { type: 'string', description: `zeros | mean: the decoder's initial state; mean = the paper's tanh(W·mean annotation + b), zeros = the TF tutorial (default)` },
  precision: { type: 'string', description: `fp32 | bf16 | auto: matmul operands of the training step; bf16 (f32 accumulation) needs AVX512-BF16 or AMX, auto picks it where the CPU has it (default ${D.precision})` },
  objective: { type: 'string', description: `xe | scst: cross-entropy on the human captions, or self-critical training on CIDEr-D (with --init; see configs/scst.json) (default ${D.objective})` },
  init: { type: 'string', description: 'start from this checkpoint\'s weights (file or folder: its best), fresh optimizer and schedule' },
  minutes: { type: 'string', description: 'stop (with a checkpoint) after this many minutes of training' },
  quiet: { type: 'boolean', description: 'no progress bars' },
};
for (const [flag, [field, , text]] of Object.entries(NUMERIC)) {
  options[flag] = { type: 'string', description: `${text} (default ${D[field]})` };
}

const command: Command = {
  name: 'train',
  summary: 'Train the attention captioner on a run\'s cached features (checkpoints, exact --resume)',
  usage: 'sat train --run DIR [--epochs N] [--batch N] [--lr X] [--dropout X] [--clip X] [--gru-state carry|reset] [--init-state zeros|mean] [--precision fp32|bf16|auto] [--config FILE] [--resume] [--init CKPT --config configs/scst.json]',
  options,
  async run({ values }) {
    const runDir = requireString(values, 'run', 'the run directory made by `sat prepare` and `sat features`.');
    const overrides: Record<string, unknown> = {};
    for (const [flag, [field, integer]] of Object.entries(NUMERIC)) {
      const v = numberOption(values, flag, { integer, min: 0 });
      if (v !== undefined) overrides[field] = v;
    }
    if (values['lr-schedule'] !== undefined) overrides.lrSchedule = values['lr-schedule'];
    if (values['val-metric'] !== undefined) overrides.valMetric = values['val-metric'];
    if (values['gru-state'] !== undefined) overrides.gruState = values['gru-state'];
    if (values['init-state'] !== undefined) overrides.initState = values['init-state'];
    if (values.objective !== undefined) overrides.objective = values.objective;
    if (values.precision !== undefined) overrides.precision = values.precision;
    const minutes = numberOption(values, 'minutes', { min: 0 });
    const outcome = await train({
      runDir,
      configFile: values.config as string | undefined,
      overrides: validateConfigPatch(overrides, 'flag'),
      resume: values.resume === true,
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
