/**
 * A caption memory (consensus.ts) built from a prepared run: every training image that has captions and stored
 * features, its features mean-pooled and L2-normalised, its captions PTB-tokenised as
 * evaluation tokenises them. `sat eval --consensus K` builds one; `sat export --memory RUN` stores one in a bundle.
 */
import { forEachPreparedImage } from '../dataset/prepare.js';
import { openRunFeatures } from '../features/run-feature-store.js';
import type { FeatureStoreReader } from '../features/types.js';
import { tokenizeCaption } from '../metrics/ptb-tokenizer.js';
import { UserError } from '../util/errors.js';
import { ProgressBar } from '../util/progress.js';
import { pooledVectors, type CaptionMemoryData } from './consensus.js';

export interface RunMemoryOptions {
  /** Progress bar label; false: none. */
  progress?: string | false;
  /** The encoder the model reads: a store of another encoder's features is refused. */
  encoderId?: string;
}

export function buildRunMemory(
  runDir: string,
  store: FeatureStoreReader,
  opts: RunMemoryOptions = {},
): CaptionMemoryData {
  if (opts.encoderId !== undefined && store.encoderId !== opts.encoderId)
    throw new UserError(
      `the caption memory needs "${opts.encoderId}" features of ${runDir}, but its store holds "${store.encoderId}": ` +
        `run \`sat features --run ${runDir}\` with that encoder first.`,
    );
  const chosen: { id: string; captions: string[] }[] = [];
  let missing = 0;
  forEachPreparedImage(runDir, (im) => {
    if (im.split !== 'train' || im.captions.length === 0) return;
    if (store.has(im.id)) chosen.push({ id: im.id, captions: im.captions.map(tokenizeCaption) });
    else missing++;
  });
  if (chosen.length === 0)
    throw new UserError(
      `${runDir} has no train images with captions and stored features (${missing} without features) for a caption ` +
        `memory: run \`sat features --run ${runDir}\` first.`,
    );
  const L = store.locations,
    C = store.channels;
  const vectors = new Float32Array(chosen.length * C);
  const features = new Float32Array(L * C);
  const bar =
    opts.progress === false
      ? undefined
      : new ProgressBar({ total: chosen.length, label: opts.progress ?? 'caption memory', unit: 'img' });
  try {
    chosen.forEach(({ id }, i) => {
      store.read(id, features);
      vectors.set(pooledVectors(features, 1, L, C), i * C);
      bar?.tick();
    });
  } finally {
    bar?.finish();
  }
  return { encoderId: store.encoderId, channels: C, vectors, captions: chosen.map((c) => c.captions) };
}

/** buildRunMemory over the run's own store of `encoderId` features, opened and closed here. */
export function buildRunMemoryFor(runDir: string, encoderId: string, opts: RunMemoryOptions = {}): CaptionMemoryData {
  const store = openRunFeatures(runDir, { encoderId });
  try {
    return buildRunMemory(runDir, store, { ...opts, encoderId });
  } finally {
    store.close();
  }
}
