/**
 * How a run directory says which feature store to train on: `sat features` adds a `features` field to
 * run.json (the rest of run.json belongs to `sat prepare`):
 *
 *   "features": {
 *     "encoderId": "inception_v3_nsfwjs-mixed10", // EncoderSpec.id
 *     "locations": 64, "channels": 2048,          // per-image feature shape [locations, channels]
 *     "dir": "/abs/runs/f8k/features/inception_v3_nsfwjs-mixed10",
 *     "images": 7000, "skipped": 0,                // entries in the store, images listed in skipped.json
 *     "updatedAt": "2026-11-26T17:00:00.000Z"
 *   }
 *
 * The last extraction (or merge) wins; older stores stay on disk under features/ and can be opened with
 * openFeatureStore(runPaths(run).features(encoderId)).
 */
import fs from 'node:fs';
import path from 'node:path';
import { runPaths } from '../dataset/run.js';
import { writeJsonAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import { openFeatureStore, type FeatureStore } from './store.js';

export interface RunFeaturesInfo {
  encoderId: string;
  locations: number;
  channels: number;
  /** Absolute path of the store folder. */
  dir: string;
  images: number;
  skipped: number;
  updatedAt: string;
}

/** Point run.json's `features` field at the store in `storeDir`. */
export function recordRunFeatures(runDir: string, storeDir: string): RunFeaturesInfo {
  const file = runPaths(runDir).runJson;
  const info = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  const store = openFeatureStore(storeDir);
  const features: RunFeaturesInfo = {
    encoderId: store.encoderId, locations: store.locations, channels: store.channels, dir: path.resolve(storeDir),
    images: store.size, skipped: store.skipped().length, updatedAt: new Date().toISOString(),
  };
  store.close();
  writeJsonAtomic(file, { ...info, features });
  return features;
}

/** The feature store run.json points at (for the trainer and evaluator). */
export function openRunFeatures(runDir: string): FeatureStore {
  const file = runPaths(runDir).runJson;
  const info = JSON.parse(fs.readFileSync(file, 'utf8')) as { features?: RunFeaturesInfo };
  if (!info.features) throw new UserError(`${file} has no features yet. Run \`sat features --run ${runDir}\` first.`);
  return openFeatureStore(info.features.dir);
}
