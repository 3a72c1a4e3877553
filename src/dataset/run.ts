/**
 * The run directory: everything one experiment produces, in one folder a user can zip and share.
 *
 *   runs/NAME/
 *     run.json              what `sat prepare` decided (dataset source, vocabulary options, seed, counts)
 *     vocab.json            the vocabulary (see src/vocab/vocabulary.ts)
 *     images.jsonl          one DatasetImage per line, plus `tokens`: each caption as ids with <start>/<end>
 *     features/<encoder>/   the fp16 feature store written by `sat features` (see src/features/store.ts)
 *     checkpoints/          `sat train` output: latest.safetensors + latest.json, best.*, loss curve
 *
 * Paths inside run.json/images.jsonl are absolute so a run can be read from any working directory.
 */
import path from 'node:path';
import type { DatasetImage } from './types.js';

export interface PreparedImage extends DatasetImage {
  /** Token ids per caption: <start> w1 ... wn <end>, truncated to the vocabulary's maxLength. */
  tokens: number[][];
}

export const runPaths = (dir: string) => ({
  dir,
  runJson: path.join(dir, 'run.json'),
  vocab: path.join(dir, 'vocab.json'),
  images: path.join(dir, 'images.jsonl'),
  features: (encoderId: string) => path.join(dir, 'features', encoderId.replace(/[^A-Za-z0-9_.-]/g, '_')),
  checkpoints: path.join(dir, 'checkpoints'),
});
