/**
 * The small pipeline the kill and disk-full scenarios break: synthetic shapes images (sat prepare), features from
 * the bundled InceptionV3 (nsfwjs weights, no download) cut at mixed2 with a 96-pixel input, a tiny model trained
 * for a few epochs with mid-epoch checkpoints, and its fp32 bundle. Each step takes seconds, and each is run
 * twice uninterrupted first: the second run must equal the first (else the campaign could not tell a fault's
 * damage from nondeterminism).
 *
 *   WORK/shapes/prepared     run folder without features (images under prepared/shapes)
 *   WORK/shapes/run          the same with its reference feature store: the run the trainings read
 *   WORK/shapes/checkpoints  the reference training's checkpoints
 *   WORK/shapes/bundle       the reference export of checkpoints/best
 */
import fs from 'node:fs';
import path from 'node:path';
import { copyDir, runSatOk, type CampaignContext } from './common.js';
import { bundlesDiffer, checkpointsDiffer, featureStoresDiffer } from './inspect.js';

export const ENCODER_ID = 'inception_v3_nsfwjs-mixed2-96';
export const ENCODER_FLAGS = ['--layer', 'mixed2', '--encoder-size', '96', '--threads', '1', '--batch', '8'];

export interface ShapesFixture {
  prepared: string;
  run: string;
  checkpoints: string;
  bundle: string;
  epochs: number;
  /** Uninterrupted wall seconds of each command (the range the kill points are drawn from). */
  seconds: { features: number; train: number; export: number };
  /** Differences between the two uninterrupted runs of each command (should be none). */
  repeatDiffers: { features: string[]; train: string[]; export: string[] };
  featuresArgs: (run: string) => string[];
  trainArgs: (checkpoints: string, epochs?: number) => string[];
  exportArgs: (out: string, model?: string) => string[];
}

export interface FixtureOptions {
  images: number;
  epochs: number;
}

export async function makeShapesFixture(ctx: CampaignContext, opts: FixtureOptions): Promise<ShapesFixture> {
  const root = path.join(ctx.work, 'shapes');
  fs.mkdirSync(root, { recursive: true });
  const prepared = path.join(root, 'prepared');
  const run = path.join(root, 'run');
  const checkpoints = path.join(root, 'checkpoints');
  const bundle = path.join(root, 'bundle');
  const featuresArgs = (r: string) => ['features', '--run', r, ...ENCODER_FLAGS];
  const trainArgs = (c: string, epochs = opts.epochs) => [
    'train',
    '--run',
    run,
    '--checkpoints',
    c,
    '--embed-dim',
    '16',
    '--units',
    '32',
    '--attention-units',
    '16',
    '--batch-size',
    '16',
    '--epochs',
    String(epochs),
    '--val-metric',
    'loss',
    '--early-stop-patience',
    '0',
    '--checkpoint-minutes',
    '0.005',
    '--seed',
    String(ctx.seed),
    '--quiet',
  ];
  const exportArgs = (out: string, model = checkpoints) => ['export', '--model', model, '--out', out];

  ctx.log(
    `fixture: ${opts.images} shapes images, features, ${opts.epochs}-epoch training, export (each twice) in ${root}`,
  );
  await runSatOk(ctx, [
    'prepare',
    '--dataset',
    'shapes',
    '--out',
    prepared,
    '--images',
    String(opts.images),
    '--image-size',
    '64',
    '--seed',
    String(ctx.seed),
    '--force',
  ]);

  copyDir(prepared, run);
  const features = await runSatOk(ctx, featuresArgs(run));
  const again = path.join(root, 'repeat-run');
  copyDir(prepared, again);
  await runSatOk(ctx, featuresArgs(again));
  const featuresDiffer = featureStoresDiffer(
    path.join(again, 'features', ENCODER_ID),
    path.join(run, 'features', ENCODER_ID),
  );

  fs.rmSync(checkpoints, { recursive: true, force: true });
  const train = await runSatOk(ctx, trainArgs(checkpoints));
  const againCkpt = path.join(root, 'repeat-checkpoints');
  fs.rmSync(againCkpt, { recursive: true, force: true });
  await runSatOk(ctx, trainArgs(againCkpt));

  fs.rmSync(bundle, { recursive: true, force: true });
  const exp = await runSatOk(ctx, exportArgs(bundle));
  const againBundle = path.join(root, 'repeat-bundle');
  await runSatOk(ctx, exportArgs(againBundle));

  const fixture: ShapesFixture = {
    prepared,
    run,
    checkpoints,
    bundle,
    epochs: opts.epochs,
    seconds: { features: features.seconds, train: train.seconds, export: exp.seconds },
    repeatDiffers: {
      features: featuresDiffer,
      train: checkpointsDiffer(againCkpt, checkpoints),
      export: bundlesDiffer(againBundle, bundle),
    },
    featuresArgs,
    trainArgs,
    exportArgs,
  };
  for (const d of [again, againCkpt, againBundle]) fs.rmSync(d, { recursive: true, force: true });
  ctx.log(
    `fixture: features ${fixture.seconds.features.toFixed(1)} s, train ${fixture.seconds.train.toFixed(1)} s, ` +
      `export ${fixture.seconds.export.toFixed(1)} s; repeat differences: ${JSON.stringify(fixture.repeatDiffers)}`,
  );
  return fixture;
}

export const storeOf = (run: string) => path.join(run, 'features', ENCODER_ID);
