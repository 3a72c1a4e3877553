/**
 * A prepared shapes run with an "oracle" feature store, for tests that train the native model through
 * `train()` or the CLI without running a CNN: each image's features are a 2x2 grid [4, C] holding, at the cell of
 * each object's centre, the one-hots of its colour and its shape (C = colours + shape kinds).
 */
import path from 'node:path';
import { loadShapesAnnotations, SHAPE_COLORS, SHAPE_KINDS } from '../../src/dataset/shapes.js';
import { encodeHalf } from '../../src/features/fp16.js';
import { FeatureStoreWriter } from '../../src/features/store-writer.js';
import { prepareRun } from '../../src/dataset/prepare.js';
import { runPaths } from '../../src/dataset/run.js';
import type { TrainConfig } from '../../src/train/config.js';
import { tempDir } from './train-fixture.js';

const COLORS = Object.keys(SHAPE_COLORS);
export const ORACLE_CHANNELS = COLORS.length + SHAPE_KINDS.length;

/** Prepares `images` 32x32 shapes images (seed 3) in a fresh temp folder named by `prefix`; returns the run dir. */
export async function oracleRun(prefix: string, images = 40): Promise<string> {
  const C = ORACLE_CHANNELS;
  const dir = path.join(tempDir(prefix), 'run');
  const run = await prepareRun({ dataset: 'shapes', out: dir, images, imageSize: 32, seed: 3, silent: true });
  const objects = loadShapesAnnotations(run.info.dataset.root);
  const spec = {
    id: 'oracle',
    inputSize: 32,
    scaling: 'zero_one' as const,
    inputLayout: 'nhwc' as const,
    outputLayout: 'nhwc' as const,
    inputName: 'x',
    outputName: 'y',
    locations: 4,
    channels: C,
  };
  const w = FeatureStoreWriter.open(runPaths(dir).features('oracle'), { spec, requested: run.images.length });
  for (const im of run.images) {
    const f = new Float32Array(4 * C);
    for (const o of objects.get(im.id)!) {
      const cell = ((o.box[1] + o.box[3]) / 2 >= 16 ? 2 : 0) + ((o.box[0] + o.box[2]) / 2 >= 16 ? 1 : 0);
      f[cell * C + COLORS.indexOf(o.color)] = 1;
      f[cell * C + COLORS.length + SHAPE_KINDS.indexOf(o.shape)] = 1;
    }
    w.append(im.id, encodeHalf(f));
  }
  w.commit();
  w.close();
  return dir;
}

/**
 * `sat train` flags for a seconds-long training on an oracle run: a tiny network (E 8, U 16, A 8), no periodic saves,
 * the dev loss as the validation metric, no progress bar; `batchSize` captions per step.
 */
export function tinyTrainFlags(batchSize: number): string[] {
  return [
    '--batch-size',
    String(batchSize),
    '--checkpoint-minutes',
    '0',
    '--quiet',
    '--val-metric',
    'loss',
    '--embed-dim',
    '8',
    '--units',
    '16',
    '--attention-units',
    '8',
  ];
}

/** The options of an in-process train() that prints nothing and leaves Ctrl-C to the test runner. */
export const QUIET_TRAIN = { quiet: true, handleSigint: false, log: () => {} };

/** The in-process twin of tinyTrainFlags(16) without the metric: tests add epochs and what they vary. */
export const TINY_TRAIN: Partial<TrainConfig> = {
  embedDim: 8,
  units: 16,
  attentionUnits: 8,
  batchSize: 16,
  learningRate: 1e-2,
  bucketBatches: 2,
  checkpointMinutes: 0,
};
