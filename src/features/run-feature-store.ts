/**
 * How a run directory says which feature store to train on: `sat features` adds a `features` field to
 * run.json (the rest of run.json belongs to `sat prepare`):
 *
 *   "features": {
 *     "encoderId": "inception_v3_nsfwjs-mixed10", // EncoderSpec.id
 *     "locations": 64, "channels": 2048,          // per-image feature shape [locations, channels]
 *     "dir": "/abs/runs/f8k/features/inception_v3_nsfwjs-mixed10",
 *     "images": 7000, "skipped": 0,                // entries in the store, images listed in skipped.json
 *     "updatedAt": "2026-11-26T17:00:00.000Z",
 *     "encoderOptions": { "encoder": "mobilenet_v2", "weights": "/abs/models/mobilenet_v2_1.0_224" }
 *   }
 *
 * `encoderOptions` are the options the store's encoder was built from (src/encoders/registry.ts, paths made
 * absolute). The store folder keeps its own copy in encoder-options.json, so that every store of a run remembers
 * its encoder; `sat train` copies it into each checkpoint (meta.encoder.options), and `sat caption`, `sat serve`
 * and `sat export` rebuild the encoder from it: no download and no --encoder-weights again.
 *
 * The last extraction (or merge) wins; older stores stay on disk under features/<encoder> and are chosen
 * with --features DIR, or by a checkpoint's encoder (runFeatureDir).
 */
import fs from 'node:fs';
import path from 'node:path';
import { runPaths } from '../dataset/run.js';
import { writeJsonAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import { ENCODERS, type EncoderOptions } from '../encoders/registry.js';
import { openFeatureStore, type FeatureStore } from './store.js';

const ENCODER_OPTIONS_FILE = 'encoder-options.json';

export interface RunFeaturesInfo {
  encoderId: string;
  locations: number;
  channels: number;
  /** Absolute path of the store folder. */
  dir: string;
  images: number;
  skipped: number;
  updatedAt: string;
  encoderOptions?: EncoderOptions;
}

/**
 * `options` with its paths (weights, a user .onnx file, a bundle folder) made absolute, so that they name the same
 * files from any working directory. Names of built-in encoders stay as they are.
 */
export function absoluteEncoderOptions(options: EncoderOptions): EncoderOptions {
  const out: EncoderOptions = {};
  for (const [key, value] of Object.entries(options) as [keyof EncoderOptions, string | number | undefined][]) {
    if (value === undefined) continue;
    const isPath = key === 'weights' || (key === 'encoder' && !Object.hasOwn(ENCODERS, String(value)));
    (out as Record<string, unknown>)[key] = isPath ? path.resolve(String(value)) : value;
  }
  return out;
}

/** The encoder options recorded beside a feature store (encoder-options.json), or undefined for stores made before. */
export function recordedEncoderOptions(storeDir: string): EncoderOptions | undefined {
  const file = path.join(storeDir, ENCODER_OPTIONS_FILE);
  if (!fs.existsSync(file)) return undefined;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as EncoderOptions;
}

/**
 * Point run.json's `features` field at the store in `storeDir`; with `encoderOptions` (the options its encoder was
 * built from), record them there and in the store folder (encoder-options.json).
 */
export function recordRunFeatures(runDir: string, storeDir: string, encoderOptions?: EncoderOptions): RunFeaturesInfo {
  if (encoderOptions)
    writeJsonAtomic(path.join(storeDir, ENCODER_OPTIONS_FILE), absoluteEncoderOptions(encoderOptions));
  const file = runPaths(runDir).runJson;
  const info = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  const store = openFeatureStore(storeDir);
  const features: RunFeaturesInfo = {
    encoderId: store.encoderId,
    locations: store.locations,
    channels: store.channels,
    dir: path.resolve(storeDir),
    images: store.size,
    skipped: store.skipped().length,
    updatedAt: new Date().toISOString(),
  };
  const options = recordedEncoderOptions(storeDir);
  if (options) features.encoderOptions = options;
  store.close();
  writeJsonAtomic(file, { ...info, features });
  return features;
}

export interface FeatureChoice {
  /** A store folder named by the user (--features DIR): always wins. */
  explicit?: string;
  /** The encoder a checkpoint was trained on: its store RUN/features/<encoder>, when present, comes next. */
  encoderId?: string;
}

/**
 * Which feature store a run uses: `explicit`, else the store of `encoderId` when it exists, else the one
 * run.json records (the last `sat features`), else the only store under RUN/features. Every command that
 * reads a run's features (train, eval, the benchmarks and scripts) asks this one function.
 */
export function runFeatureDir(runDir: string, choice: FeatureChoice = {}): string {
  if (choice.explicit) return choice.explicit;
  const paths = runPaths(runDir);
  if (choice.encoderId) {
    const own = paths.features(choice.encoderId);
    if (fs.existsSync(path.join(own, 'meta.json'))) return own;
  }
  if (fs.existsSync(paths.runJson)) {
    // Older runs recorded the store as a path string, or by encoder id only.
    const rec = (JSON.parse(fs.readFileSync(paths.runJson, 'utf8')) as { features?: Partial<RunFeaturesInfo> | string })
      .features;
    if (typeof rec === 'string') return path.resolve(runDir, rec);
    if (rec?.dir) return path.resolve(runDir, rec.dir);
    if (rec?.encoderId) return paths.features(rec.encoderId);
  }
  const root = path.join(runDir, 'features');
  const found = fs.existsSync(root)
    ? fs.readdirSync(root).filter((d) => fs.existsSync(path.join(root, d, 'meta.json')))
    : [];
  if (found.length === 1) return path.join(root, found[0]);
  if (found.length === 0)
    throw new UserError(`${runDir} has no features yet: run \`sat features --run ${runDir}\` first.`);
  throw new UserError(
    `${runDir} has several feature stores (${found.join(', ')}): choose one with --features ${path.join(root, found[0])}.`,
  );
}

/** Open the store runFeatureDir chooses. */
export function openRunFeatures(runDir: string, choice: FeatureChoice = {}): FeatureStore {
  return openFeatureStore(runFeatureDir(runDir, choice));
}
