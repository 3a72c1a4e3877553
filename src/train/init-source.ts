/**
 * `sat train --init MODEL`: the trained model a new run starts from, and how its weights enter a model built for
 * the run's own vocabulary.
 *
 * MODEL is a checkpoint (a .safetensors file, a checkpoints folder or a run folder: its best, else latest) or a
 * bundle folder from `sat export` (fp32, fp16 or int8 weights, dequantised to float32 here).
 *
 * Vocabulary remap (initFromSource): every parameter that does not depend on the vocabulary is copied as it is.
 * The three that do (embedding rows [V, E], output kernel columns fc2.kernel [U, V] and bias fc2.bias [V]) are
 * copied word by word: a word of the run's vocabulary that the model also knows gets the model's trained row
 * (wherever its id is in either vocabulary); a new word keeps the row the model's normal initialisation gave it
 * (seeded by --seed). Special tokens (<pad>, <unk>, <start>, <end>) match by name like any other word.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadCheckpoint, loadCheckpointVocab, withCurrentNames } from '../checkpoint/checkpoint.js';
import { encoderOptionsFor } from '../checkpoint/source.js';
import type { EncoderOptions } from '../encoders/registry.js';
import { readBundleFolder } from '../export/bundle-folder.js';
import { bundleDecoderParameters, type ParameterTensor } from '../export/bundle-weights.js';
import type { FeatureStoreReader } from '../features/types.js';
import type { CaptionModel, ModelConfig } from '../model/types.js';
import { UserError } from '../util/errors.js';
import { locateModel } from '../models/source.js';
import type { TrainConfig } from './config.js';

export interface InitSource {
  /** The checkpoint file or bundle folder, for messages. */
  where: string;
  /** As the user named it (for the fixes the messages suggest). */
  named: string;
  kind: 'checkpoint' | 'bundle';
  /** The network's shape (and, for a checkpoint, its training settings). */
  model: ModelConfig;
  config: Partial<TrainConfig>;
  /** The features the model was trained on; options: how to rebuild its encoder (when known). */
  encoder: { id: string; locations: number; channels: number; options?: EncoderOptions };
  /** id -> word of the model's vocabulary. */
  words: readonly string[];
  /** Parameters by checkpoint name (float32). */
  tensors: Map<string, ParameterTensor>;
}

/** Loads MODEL for --init (see the file comment). */
export async function loadInitSource(target: string): Promise<InitSource> {
  // A path, the name of the shipped or an installed model, or a bundle URL (src/models/source.ts).
  const located = await locateModel(target);
  if (located.kind === 'bundle') {
    const dir = path.resolve(located.path);
    const bundle = await readBundleFolder(dir);
    const m = bundle.manifest;
    const shape = {
      embedDim: m.model.embedDim,
      units: m.model.units,
      attentionUnits: m.model.attentionUnits,
      gruState: m.model.gruState ?? 'carry',
      initState: m.model.initState ?? 'zeros',
    };
    return {
      where: dir,
      named: target,
      kind: 'bundle',
      model: m.model,
      config: shape,
      encoder: {
        id: m.encoder.id,
        locations: m.encoder.locations,
        channels: m.encoder.channels,
        options: { encoder: dir },
      },
      words: m.vocab.words,
      tensors: bundleDecoderParameters(bundle, dir),
    };
  }
  const ckpt = loadCheckpoint<Partial<TrainConfig>>(located.path, 'best');
  const vocab = loadCheckpointVocab(ckpt);
  const tensors = new Map<string, ParameterTensor>();
  for (const [name, t] of withCurrentNames(ckpt.tensors)) if (!name.startsWith('optimizer.')) tensors.set(name, t);
  let options: EncoderOptions | undefined;
  try {
    options = encoderOptionsFor(ckpt.meta);
  } catch {
    options = undefined; // a user .onnx encoder the checkpoint did not record: the fix names the flags
  }
  return {
    where: ckpt.file,
    named: target,
    kind: 'checkpoint',
    model: ckpt.meta.model,
    config: ckpt.meta.config,
    encoder: { ...ckpt.meta.encoder, options },
    words: vocab.words,
    tensors,
  };
}

/** The encoder flags that rebuild the model's encoder, as a command line fragment (for fixes). */
export function encoderFlags(source: InitSource): string {
  return `--encoder-from ${source.named}`;
}

/**
 * Refuses a model whose features differ from the run's store (encoder, or grid: locations x channels), naming
 * both and the fix: extract the run's features with the model's encoder.
 */
export function checkInitFeatures(source: InitSource, store: FeatureStoreReader, runDir: string): void {
  const { encoder: e } = source;
  const differs = [
    e.id !== store.encoderId ? `encoder "${e.id}" (this run: "${store.encoderId}")` : '',
    e.locations !== store.locations || e.channels !== store.channels
      ? `grid ${e.locations} locations x ${e.channels} channels (this run: ${store.locations} x ${store.channels})`
      : '',
  ].filter(Boolean);
  if (differs.length === 0) return;
  throw new UserError(
    `--init ${source.named}: the model was trained on other features than this run's: ${differs.join('; ')}. ` +
      `Extract the run's features with the model's encoder, \`sat features --run ${runDir} ${encoderFlags(source)}\`, then train again ` +
      '(or pass --features with a store of that encoder).',
  );
}

/** How the words of the run's vocabulary met the model's. */
export interface RemapSummary {
  /** Words of the run that keep the model's trained rows. */
  shared: number;
  /** Words of the run the model does not know: they start from the normal initialisation. */
  fresh: string[];
  /** Words of the model the run does not have (their rows are dropped). */
  dropped: number;
}

/** Vocabulary-sized parameters: [V, E] rows, [U, V] columns, [V] entries. */
const VOCAB_ROWS = 'embedding.embeddings',
  VOCAB_COLUMNS = 'fc2.kernel',
  VOCAB_ENTRIES = 'fc2.bias';
/** Parameters a model may lack in a source: the fresh model's own values are kept (unused by its graphs). */
const OPTIONAL = new Set(['init_state.kernel', 'init_state.bias', 'gru.recurrent_kernel']);

/**
 * Copies the source's weights into `model` (built for `runWords`, already initialised): the vocabulary-independent
 * parameters whole, the vocabulary-sized ones word by word (see the file comment).
 */
export function initFromSource(model: CaptionModel, source: InitSource, runWords: readonly string[]): RemapSummary {
  const sourceId = new Map<string, number>();
  source.words.forEach((w, i) => {
    if (!sourceId.has(w)) sourceId.set(w, i);
  });
  const pairs: [number, number][] = []; // [run id, source id]
  const fresh: string[] = [];
  runWords.forEach((w, j) => {
    const i = sourceId.get(w);
    if (i === undefined) fresh.push(w);
    else pairs.push([j, i]);
  });
  const V = runWords.length,
    Vs = source.words.length;
  for (const [name, t] of model.parameters()) {
    const saved = source.tensors.get(name);
    if (!saved) {
      if (OPTIONAL.has(name) && !usedBy(model.config, name)) continue;
      throw new UserError(
        `--init ${source.named}: ${source.where} has no tensor "${name}": it is damaged or not a show-attend-tell model.`,
      );
    }
    const expected = vocabShape(name, t.shape, Vs);
    if (saved.shape.join('x') !== expected.join('x')) {
      throw new UserError(
        `--init ${source.named}: "${name}" has shape [${saved.shape}] but a model of its size needs [${expected}]: the file is damaged.`,
      );
    }
    if (name === VOCAB_ROWS) {
      const E = t.shape[1];
      for (const [j, i] of pairs) t.data.set(saved.data.subarray(i * E, (i + 1) * E), j * E);
    } else if (name === VOCAB_COLUMNS) {
      const U = t.shape[0];
      for (let u = 0; u < U; u++) for (const [j, i] of pairs) t.data[u * V + j] = saved.data[u * Vs + i];
    } else if (name === VOCAB_ENTRIES) {
      for (const [j, i] of pairs) t.data[j] = saved.data[i];
    } else {
      t.data.set(saved.data);
    }
  }
  return { shared: pairs.length, fresh, dropped: Vs - pairs.length };
}

/** The shape `name` has in the source model: the run model's, with the vocabulary axis of the source's size. */
function vocabShape(name: string, shape: number[], sourceVocab: number): number[] {
  if (name === VOCAB_ROWS) return [sourceVocab, shape[1]];
  if (name === VOCAB_COLUMNS) return [shape[0], sourceVocab];
  if (name === VOCAB_ENTRIES) return [sourceVocab];
  return shape;
}

/** Whether the model's graphs read an optional parameter (init_state.* with initState 'mean', the recurrent kernel with 'carry'). */
function usedBy(config: ModelConfig, name: string): boolean {
  if (name.startsWith('init_state.')) return config.initState === 'mean';
  return (config.gruState ?? 'carry') === 'carry';
}

/** One line for the log: how many words keep trained rows and which start fresh. */
export function describeRemap(source: InitSource, s: RemapSummary, runWords: number): string {
  const fresh =
    s.fresh.length === 0
      ? 'no new words'
      : `${s.fresh.length} new words start fresh (${s.fresh.slice(0, 8).join(', ')}${s.fresh.length > 8 ? ', ...' : ''})`;
  return (
    `  weights from ${source.where} (${source.kind}): ${s.shared} of ${runWords} words keep their trained rows, ${fresh}` +
    (s.dropped > 0 ? `; ${s.dropped} words of the model are not in this run's vocabulary` : '')
  );
}
