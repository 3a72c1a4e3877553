/**
 * Training checkpoints. A checkpoint folder is self-contained for `sat caption`:
 *
 *   checkpoints/
 *     latest.safetensors   weights ("<param>", src/model/binding.ts; older names are mapped on load) and Adam
 *                          moments ("optimizer.m.<param>", "optimizer.v.<param>"), with the whole CheckpointMeta as JSON in __metadata__["sat.checkpoint"]
 *     latest.json          the same CheckpointMeta, pretty-printed for people and tools
 *     best.safetensors / best.json   the epoch with the best validation score so far
 *     vocab.json           copy of the run's vocabulary
 *     loss.svg, loss.png   train/validation loss per epoch
 *
 * Every file is written with src/util/atomic-write.ts: a temporary name, every byte checked written, fsync, size
 * check, rename, fsync of the folder, so a crash (or kill -9, a power cut, a full disk) leaves either the old or
 * the new file; a checkpoint's .safetensors and .json are both written before either is renamed into place. The safetensors metadata is the authoritative copy of the meta:
 * weights and progress can never come from two different steps.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { EncoderOptions } from '../encoders/registry.js';
import { RENAMED_PARAMETERS } from '../model/params.js';
import type { CaptionModel, ModelConfig } from '../model/types.js';
import type { TrainingPrecision } from '../model/precision.js';
import type { RngState } from '../util/rng.js';
import { copyFilesAtomic, writeFileAtomic, writeFilesAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import { Vocabulary } from '../vocab/vocabulary.js';
import { readSafetensors, safetensorsChunks, type Tensor } from './safetensors.js';

export const CHECKPOINT_FORMAT = 'show-attend-tell/checkpoint@1';
export const META_KEY = 'sat.checkpoint';

export interface EpochRecord {
  epoch: number; // 1-based
  trainLoss: number; // token-weighted mean over the epoch's batches
  valLoss: number | null; // token-weighted mean over the dev split; null without a dev split
  metric?: { name: string; value: number }; // from the validate hook, if any
  learningRate: number;
  steps: number; // optimizer steps at the end of this epoch
  seconds: number; // training time of this epoch (without validation)
  tokensPerSecond: number;
  trainReward?: number; // self-critical training: mean CIDEr-D reward of the epoch's sampled captions
}

/** Where training stands; enough to continue exactly where it stopped. */
export interface TrainProgress {
  epoch: number; // completed epochs
  batchInEpoch: number; // batches of epoch `epoch + 1` already trained (0 at an epoch boundary)
  step: number; // optimizer steps in total
  epochRngState: RngState; // shuffle Rng state at the start of epoch `epoch + 1`, before its shuffle
  // the unfinished epoch's sums (rewardSum/rewardCount: self-critical training's sampled-caption rewards)
  partial: { lossSum: number; tokens: number; seconds: number; rewardSum?: number; rewardCount?: number };
  learningRate: number; // current learning rate (after any decay)
  lastDecayEpoch: number; // epoch of the last learning-rate decay (0 = none)
  history: EpochRecord[];
  best: { epoch: number; score: number; by: string } | null; // `by`: "valLoss" or the metric name
}

/**
 * What a checkpoint records besides its tensors. `Config` is the training configuration that made it
 * (src/train/config.ts TrainConfig): this module stores it as given and never interprets it, so that the
 * checkpoint format sits below training; loaders that need its fields name the type (a Partial one for
 * files written by older versions).
 */
export interface CheckpointMeta<Config = Record<string, unknown>> {
  format: string;
  createdAt: string;
  config: Config;
  model: ModelConfig;
  /** The features trained on; `options` rebuild their encoder (src/encoders/registry.ts EncoderOptions), when recorded. */
  encoder: { id: string; locations: number; channels: number; options?: EncoderOptions };
  vocab: string; // file name of the vocabulary, beside the checkpoint
  run: string | null; // run directory the checkpoint was trained from (informational)
  progress: TrainProgress;
  /**
   * The precision of the training steps: as asked ('auto' resolves per machine), as used (fp32 or bf16, never
   * 'auto'; the config's precision holds the same) and why. Absent in checkpoints written before it was recorded.
   */
  precision?: TrainingPrecision;
  /** Set by averageCheckpoints (src/checkpoint/average.ts): the weights files whose mean this checkpoint holds. */
  averagedFrom?: string[];
}

/** The two files of the checkpoint `tag` in the checkpoints folder `dir`: its weights and its pretty-printed meta. */
export const checkpointTagPaths = (dir: string, tag: 'latest' | 'best') => ({
  weights: path.join(dir, `${tag}.safetensors`),
  meta: path.join(dir, `${tag}.json`),
});

/** Save the model, its Adam state and `meta` as `<dir>/<tag>.*`. */
export function saveCheckpoint<Config>(
  dir: string,
  tag: 'latest' | 'best',
  model: CaptionModel,
  meta: CheckpointMeta<Config>,
): void {
  fs.mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, Tensor>();
  for (const [name, t] of model.parameters()) tensors.set(name, t);
  const opt = model.optimizerState();
  for (const [name, t] of opt.m) tensors.set(`optimizer.m.${name}`, t);
  for (const [name, t] of opt.v) tensors.set(`optimizer.v.${name}`, t);
  const json = JSON.stringify(meta);
  const files = checkpointTagPaths(dir, tag);
  // Both files are written and checked before either replaces its old version: a full disk keeps the old pair.
  writeFilesAtomic(
    [
      { file: files.weights, data: safetensorsChunks(tensors, { format: 'pt', [META_KEY]: json }) },
      { file: files.meta, data: JSON.stringify(meta, null, 2) + '\n' },
    ],
    `the "${tag}" checkpoint`,
  );
}

/** Copy `<dir>/latest.*` to `<dir>/best.*` (both copied and checked before either replaces the old best). */
export function promoteLatestToBest(dir: string): void {
  const from = checkpointTagPaths(dir, 'latest');
  const to = checkpointTagPaths(dir, 'best');
  copyFilesAtomic(
    (['weights', 'meta'] as const).map((key) => ({ from: from[key], to: to[key] })),
    'the "best" checkpoint',
  );
}

/** Copy the vocabulary next to the checkpoints so the folder works on its own. */
export function copyVocab(vocabFile: string, dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomic(path.join(dir, 'vocab.json'), fs.readFileSync(vocabFile), 'the vocabulary');
  return 'vocab.json';
}

export interface LoadedCheckpoint<Config = Record<string, unknown>> {
  file: string;
  meta: CheckpointMeta<Config>;
  tensors: Map<string, Tensor>;
}

/**
 * The weights file (.safetensors) that `target` names: a run folder (its checkpoints/ folder), a checkpoints
 * folder (best, else latest; `prefer: 'latest'` takes only latest), a .safetensors file or its .json. Refuses a
 * folder without a checkpoint, or a file that does not exist.
 */
export function checkpointWeightsFile(target: string, prefer: 'best' | 'latest' = 'best'): string {
  let file = target;
  if (fs.existsSync(target) && fs.statSync(target).isDirectory()) {
    const runCheckpoints = path.join(target, 'checkpoints');
    const dir = fs.existsSync(runCheckpoints) && fs.statSync(runCheckpoints).isDirectory() ? runCheckpoints : target;
    const order = prefer === 'best' ? (['best', 'latest'] as const) : (['latest'] as const);
    const found = order.map((t) => checkpointTagPaths(dir, t).weights).find((f) => fs.existsSync(f));
    if (!found) {
      throw new UserError(
        `${target}: no ${order.map((t) => t + '.safetensors').join(' or ')} in this folder. ` +
          'Train first with `sat train --run DIR`, or point at a checkpoints folder.',
      );
    }
    file = found;
  } else if (target.endsWith('.json')) {
    file = target.slice(0, -'.json'.length) + '.safetensors';
  }
  if (!fs.existsSync(file)) throw new UserError(`Checkpoint ${file} does not exist. Check the path.`);
  return file;
}

/** Load the checkpoint `target` names (see checkpointWeightsFile; pass `prefer: 'latest'` to resume). */
export function loadCheckpoint<Config = Record<string, unknown>>(
  target: string,
  prefer: 'best' | 'latest' = 'best',
): LoadedCheckpoint<Config> {
  const file = checkpointWeightsFile(target, prefer);
  const { tensors, metadata } = readSafetensors(file);
  const raw = metadata[META_KEY];
  if (!raw) throw new UserError(`${file} has no "${META_KEY}" metadata: it was not written by sat train.`);
  let meta: CheckpointMeta<Config>;
  try {
    meta = JSON.parse(raw) as CheckpointMeta<Config>;
  } catch (e) {
    throw new UserError(
      `${file}: its "${META_KEY}" metadata is not valid JSON (${(e as Error).message}); the checkpoint is damaged.`,
    );
  }
  if (typeof meta !== 'object' || meta === null || meta.format !== CHECKPOINT_FORMAT) {
    throw new UserError(
      `${file} is format ${JSON.stringify((meta as { format?: unknown } | null)?.format)}; this version reads "${CHECKPOINT_FORMAT}".`,
    );
  }
  return { file, meta, tensors: withCurrentNames(tensors) };
}

/**
 * Tensors under current parameter names (RENAMED_PARAMETERS): "encoder.kernel" -> "projection.kernel", also behind a
 * prefix such as "optimizer.m.", so checkpoints written before a rename keep loading.
 */
export function withCurrentNames<T>(tensors: Map<string, T>): Map<string, T> {
  const out = new Map<string, T>();
  for (const [name, t] of tensors) out.set(currentTensorName(name), t);
  return out;
}

function currentTensorName(name: string): string {
  for (const [old, current] of Object.entries(RENAMED_PARAMETERS)) {
    if (name === old || name.endsWith('.' + old)) return name.slice(0, name.length - old.length) + current;
  }
  return name;
}

/** Absolute path of the vocabulary file that belongs to a loaded checkpoint. */
export const checkpointVocabPath = (ckpt: LoadedCheckpoint<unknown>): string =>
  path.join(path.dirname(ckpt.file), ckpt.meta.vocab);

/**
 * Stop unless `vocab` (named `name` in the message) has the size the checkpoint's model was built for: a
 * checkpoint only decodes with the vocabulary of the run that trained it.
 */
export function checkVocabularySize(
  ckpt: LoadedCheckpoint<unknown>,
  vocab: { size: number },
  name: string,
  fix = 'they belong to different runs.',
): void {
  if (vocab.size !== ckpt.meta.model.vocabSize) {
    throw new UserError(
      `${name} has ${vocab.size} words but ${ckpt.file} was trained with ${ckpt.meta.model.vocabSize}: ${fix}`,
    );
  }
}

/** The vocabulary saved beside a checkpoint (checkpointVocabPath), checked against the model's size. */
export function loadCheckpointVocab(ckpt: LoadedCheckpoint<unknown>): Vocabulary {
  const file = checkpointVocabPath(ckpt);
  if (!fs.existsSync(file))
    throw new UserError(
      `${ckpt.file}: its vocabulary ${file} is missing; copy the run's vocab.json next to the checkpoint.`,
    );
  const vocab = Vocabulary.load(file);
  checkVocabularySize(ckpt, vocab, file);
  return vocab;
}

/** Parameters that checkpoints made before initState existed lack; such a model starts from H[0] = 0 and never used them. */
const INIT_STATE_TENSORS = new Set(['init_state.kernel', 'init_state.bias']);

/**
 * Copy weights (and, with `optimizer`, Adam moments and step) from a checkpoint into a model of the same shape.
 * A checkpoint without init_state.* (made before initState existed) loads as zeros into an initState 'zeros' model.
 */
export function restoreModel(model: CaptionModel, ckpt: LoadedCheckpoint<unknown>, opts: { optimizer: boolean }): void {
  const copy = (target: Map<string, { shape: number[]; data: Float32Array }>, prefix: string) => {
    for (const [name, t] of target) {
      const saved = ckpt.tensors.get(prefix + name);
      if (!saved && INIT_STATE_TENSORS.has(name)) {
        if ((model.config.initState ?? 'zeros') === 'mean') {
          throw new UserError(
            `${ckpt.file} has no tensor "${prefix + name}" but its model config says initState "mean": ` +
              'the file is damaged or was edited. Use a checkpoint written by sat train with --init-state mean.',
          );
        }
        t.data.fill(0); // unused with initState 'zeros' (zero gradient), so zeros reproduce the old model exactly
        continue;
      }
      if (!saved)
        throw new UserError(`${ckpt.file} has no tensor "${prefix + name}": it belongs to a different model.`);
      if (saved.shape.join('x') !== t.shape.join('x')) {
        throw new UserError(
          `${ckpt.file}: "${prefix + name}" has shape [${saved.shape}] but the model expects [${t.shape}].`,
        );
      }
      t.data.set(saved.data);
    }
  };
  copy(model.parameters(), '');
  if (opts.optimizer) {
    const opt = model.optimizerState();
    copy(opt.m, 'optimizer.m.');
    copy(opt.v, 'optimizer.v.');
    model.setOptimizerStep(ckpt.meta.progress.step);
  }
}
