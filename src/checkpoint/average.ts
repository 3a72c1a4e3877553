/**
 * Weight averaging: one checkpoint whose parameters are the element-wise mean of several checkpoints of the same
 * model (same shapes, encoder and vocabulary), e.g. the last epochs of one self-critical run (Polyak averaging;
 * "model soups" of fine-tunings from one start). Unlike an ensemble it costs nothing at captioning time. Averaging
 * only makes sense for checkpoints that share a training start; independently trained models sit in different
 * minima and average to noise, which is why the result names its sources.
 *
 *   averageCheckpoints(['runs/f8k/ck-scst/best.safetensors', 'runs/f8k/ck-scst/latest.safetensors'], 'runs/f8k/ck-avg')
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { writeFilesAtomic } from '../util/atomic-write.js';
import {
  META_KEY,
  checkpointTagPaths,
  checkpointVocabPath,
  loadCheckpoint,
  type LoadedCheckpoint,
} from './checkpoint.js';
import { safetensorsChunks, type Tensor } from './safetensors.js';

export interface AveragedCheckpoint {
  /** The written weights file, `<outDir>/best.safetensors`. */
  file: string;
  /** The weights files averaged, in order. */
  from: string[];
}

/** What must agree between two checkpoints for their weights to be averaged: [what, value] pairs. */
function identity(ckpt: LoadedCheckpoint<unknown>): [string, string][] {
  const m = ckpt.meta.model;
  return [
    ['encoder', ckpt.meta.encoder.id],
    ['grid', `${m.locations} locations x ${m.channels} channels`],
    ['size', `E ${m.embedDim}, U ${m.units}, A ${m.attentionUnits}`],
    ['vocabulary size', String(m.vocabSize)],
    ['gruState', m.gruState ?? 'carry'],
    ['initState', m.initState ?? 'zeros'],
  ];
}

export function averageCheckpoints(targets: string[], outDir: string): AveragedCheckpoint {
  if (targets.length < 2) throw new UserError(`Give two or more checkpoints to average, got ${targets.length}.`);
  const ckpts = targets.map((t) => loadCheckpoint(t, 'best'));
  const first = ckpts[0];
  const firstVocab = fs.readFileSync(checkpointVocabPath(first));
  for (const other of ckpts.slice(1)) {
    const a = identity(first),
      b = identity(other);
    const differ = a.flatMap(([what, v], i) => (v === b[i][1] ? [] : [`${what}: ${v} vs ${b[i][1]}`]));
    if (!firstVocab.equals(fs.readFileSync(checkpointVocabPath(other)))) differ.push('vocabulary: different words');
    if (differ.length > 0)
      throw new UserError(
        `${first.file} and ${other.file} are not the same model (${differ.join('; ')}): only checkpoints of one ` +
          'model (best and latest of one run, or fine-tunings of one start) can be averaged.',
      );
  }
  const averaged = new Map<string, Tensor>();
  for (const [name, t] of first.tensors) {
    if (name.startsWith('optimizer.')) continue; // an average has no optimizer state of its own
    const sum = new Float64Array(t.data.length);
    for (const c of ckpts) {
      const u = c.tensors.get(name);
      if (!u || u.shape.join('x') !== t.shape.join('x'))
        throw new UserError(`${c.file}: tensor "${name}" is missing or has another shape than in ${first.file}.`);
      for (let i = 0; i < sum.length; i++) sum[i] += u.data[i];
    }
    averaged.set(name, { shape: t.shape, data: Float32Array.from(sum, (v) => v / ckpts.length) });
  }
  const from = ckpts.map((c) => c.file);
  const meta = { ...first.meta, createdAt: new Date().toISOString(), averagedFrom: from };
  fs.mkdirSync(outDir, { recursive: true });
  const files = checkpointTagPaths(outDir, 'best');
  writeFilesAtomic(
    [
      { file: files.weights, data: safetensorsChunks(averaged, { format: 'pt', [META_KEY]: JSON.stringify(meta) }) },
      { file: files.meta, data: JSON.stringify(meta, null, 2) + '\n' },
      { file: path.join(outDir, first.meta.vocab), data: firstVocab },
    ],
    'the averaged checkpoint',
  );
  return { file: files.weights, from };
}
