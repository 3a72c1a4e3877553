/**
 * `sat demo`: the whole pipeline on a fresh machine, no download, in a few minutes:
 *
 *   synthetic shapes images (src/dataset/shapes.ts) -> run directory (sat prepare)
 *   -> InceptionV3 features (nsfwjs weights from node_modules; sat features)
 *   -> training until dev CIDEr stops improving, within a time cap (sat train, a small model)
 *   -> greedy captions for the held-out test images, scored against the generator's ground truth,
 *      with attention figures, a loss plot and an HTML page in the output folder.
 *
 * The test images are never used for training or for choosing the epoch: that is done on dev.
 * Rerunning with the same --images/--seed reuses the images and features (both steps resume) and trains
 * again from scratch.
 */
import fs from 'node:fs';
import path from 'node:path';
import { prepareRun, loadRun, imagesOf, type LoadedRun } from '../dataset/prepare.js';
import { runPaths } from '../dataset/run.js';
import { loadShapesAnnotations, loadShapesManifest } from '../dataset/shapes.js';
import { resolveEncoder } from '../encoders/registry.js';
import { extractFeatures } from '../features/extract.js';
import { loadRgb } from '../features/image.js';
import { decodeImages, decodeVocab } from '../decode/index.js';
import { renderAttentionFigure } from '../figures/attention.js';
import { gridSide } from '../figures/heat.js';
import { defaultMaxLength, tokenize } from '../vocab/vocabulary.js';
import { UserError } from '../util/errors.js';
import { loadCheckpoint, restoreModel } from '../checkpoint/checkpoint.js';
import type { TrainConfig } from '../train/config.js';
import { train } from '../train/train.js';
import type { StopReason } from '../train/loop.js';
import { demoHtml, scoreCaption, summarise, type CaptionResult, type DemoScores } from './demo-report.js';
import { checkAttention, formatAttentionLine, type AttentionCheck } from '../eval/attention-check.js';

export interface DemoOptions {
  outDir: string;
  /** Wall-clock cap for the whole demo; training gets what the data steps leave, and usually stops earlier. */
  minutes: number;
  images: number;
  seed: number;
  /** InceptionV3 layer for the features (default DEMO_ENCODER.layer). */
  layer?: string;
  /** InceptionV3 input side in pixels (default DEMO_ENCODER.size). */
  encoderSize?: number;
  /** Attention figures for this many held-out images. */
  figures?: number;
  log?: (line: string) => void;
}

/**
 * The demo's features: the bundled InceptionV3 cut at mixed2 with a 96 x 96 input, 9 x 9 locations x 288
 * channels. Colour and position survive at that depth, 81 locations keep attention cheap and the cut network
 * is an order of magnitude cheaper per image than mixed10 at 299 x 299 (docs/training.md, `sat demo`, has the
 * comparison of layers and sizes).
 */
export const DEMO_ENCODER = { layer: 'mixed2', size: 96 } as const;
export const DEMO_IMAGES = 2000;
export const DEMO_MINUTES = 3;

/**
 * The demo's training settings: the TF tutorial's architecture scaled down (E 64, U 128, A 64), Adam 3e-3 on
 * batches of 32, halved after every epoch without a better dev CIDEr, stopped after 3 such epochs (by 30
 * epochs, and by the --minutes cap, at the latest). docs/training.md (`sat demo`) gives the alternatives
 * that were measured against it.
 */
export const DEMO_TRAIN_CONFIG: Partial<TrainConfig> = {
  embedDim: 64,
  units: 128,
  attentionUnits: 64,
  batchSize: 32,
  learningRate: 3e-3,
  epochs: 30,
  lrSchedule: 'plateau',
  lrPatience: 1,
  earlyStopPatience: 3,
  minEpochs: 1,
  valMetric: 'cider',
  valImages: 0,
  checkpointMinutes: 0,
  // Pinned to what the demo was measured with, independent of the Flickr8k-tuned defaults.
  dropout: 0,
  attentionLambda: 0,
  clipNorm: 0,
  gruState: 'carry',
  initState: 'zeros',
  lrDecayFactor: 0.5,
  minLearningRate: 1e-5,
};

/** Seconds kept for captioning, figures and the report after training stops. */
const REPORT_RESERVE_S = 15;
const MIN_TRAIN_S = 30;
/** Fewest feature locations (a 3x3 grid) the demo accepts: attention over fewer has nothing to show. */
const MIN_LOCATIONS = 9;

/** Reuse the prepared run when it was made with the same image count and seed, else make it afresh. */
async function demoRun(outDir: string, images: number, seed: number, log: (l: string) => void): Promise<LoadedRun> {
  const runDir = path.join(outDir, 'run');
  const paths = runPaths(runDir);
  if (fs.existsSync(paths.runJson)) {
    const existing = loadRun(runDir);
    if (
      existing.info.dataset.kind === 'shapes' &&
      existing.info.dataset.images === images &&
      existing.info.seed === seed
    )
      return existing;
    // Different images under the same ids: the old features and checkpoints would be wrong, remove them.
    log(`${runDir} was made with other settings: making it again.`);
    fs.rmSync(path.join(runDir, 'features'), { recursive: true, force: true });
    fs.rmSync(paths.checkpoints, { recursive: true, force: true });
  }
  return prepareRun({ dataset: 'shapes', out: runDir, root: path.join(outDir, 'shapes'), images, seed, force: true });
}

export interface DemoResult {
  scores: DemoScores;
  results: CaptionResult[];
  /** Where the attention looks when a word names an object, vs its ground-truth box (src/eval/attention-check.ts). */
  attention?: AttentionCheck;
  epochs: number;
  /** The epoch whose weights captioned the test images, chosen by `bestBy` on the dev images. */
  bestEpoch: number;
  bestBy: string;
  /** Why training ended: dev score stopped improving, the time cap, or the epoch limit. */
  stopped: StopReason;
  seconds: { data: number; features: number; train: number; report: number };
}

export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const outDir = path.resolve(opts.outDir);
  if (fs.existsSync(outDir) && fs.readdirSync(outDir).length > 0 && !fs.existsSync(path.join(outDir, 'run'))) {
    throw new UserError(
      `${outDir} exists and is not a sat demo folder; choose another --out (it would be written into).`,
    );
  }
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  // The encoder first: a bad --layer/--encoder-size fails before any image is made.
  const layer = opts.layer ?? DEMO_ENCODER.layer,
    size = opts.encoderSize ?? DEMO_ENCODER.size;
  const encoder = await resolveEncoder({ layer, size });
  if (encoder.spec.locations < MIN_LOCATIONS) {
    const g = gridSide(encoder.spec.locations);
    throw new UserError(
      `--layer ${layer} at --encoder-size ${size} gives a ${g}x${g} grid, too coarse to attend over: pass a larger --encoder-size ` +
        "(299, InceptionV3's usual input, gives mixed8..mixed10 an 8x8 grid) or an earlier --layer.",
    );
  }
  fs.mkdirSync(outDir, { recursive: true });
  log(
    `sat demo: ${opts.images} synthetic shapes images (seed ${opts.seed}) into ${outDir}, at most ${opts.minutes} min`,
  );
  const run = await demoRun(outDir, opts.images, opts.seed, log);
  const tData = elapsed();

  const featuresDir = runPaths(run.dir).features(encoder.spec.id);
  const ex = await extractFeatures({
    images: run.images,
    model: encoder,
    dir: featuresDir,
    progress: `features ${encoder.spec.id}`,
  });
  if (ex.skipped.length > 0)
    throw new UserError(`${ex.skipped.length} generated images could not be read (first: ${ex.skipped[0].reason}).`);
  const tFeatures = elapsed();

  const checkpointDir = path.join(outDir, 'checkpoints');
  fs.rmSync(checkpointDir, { recursive: true, force: true });
  const budget = Math.max(MIN_TRAIN_S, opts.minutes * 60 - elapsed() - REPORT_RESERVE_S);
  log(`training until dev CIDEr stops improving, for up to ${budget.toFixed(0)} s`);
  const outcome = await train({
    runDir: run.dir,
    checkpointDir,
    featuresDir,
    // The demo's features fit in RAM (2000 images x 81 x 288 float32 = 187 MB): cache them all, so no
    // feature is read or converted from fp16 after the first epoch.
    overrides: {
      ...DEMO_TRAIN_CONFIG,
      seed: opts.seed,
      featureCacheMB:
        Math.ceil((run.images.length * encoder.spec.locations * encoder.spec.channels * 4) / 2 ** 20) + 16,
    },
    timeBudgetSeconds: budget,
    wholeEpochs: true,
    log,
  });
  const tTrain = elapsed();

  // Caption the held-out images with the best epoch's weights.
  const { model, store, vocab } = outcome;
  if (fs.existsSync(path.join(checkpointDir, 'best.safetensors')))
    restoreModel(model, loadCheckpoint(checkpointDir, 'best'), { optimizer: false });
  const test = imagesOf(run, 'test');
  const L = store.locations,
    C = store.channels;
  const features = new Float32Array(test.length * L * C);
  test.forEach((im, i) => store.read(im.id, features, i * L * C));
  const captions = decodeImages(model, features, test.length, decodeVocab(vocab), {
    maxLength: defaultMaxLength(vocab),
  });

  const objects = loadShapesAnnotations(run.info.dataset.root);
  const figureDir = path.join(outDir, 'attention');
  fs.rmSync(figureDir, { recursive: true, force: true });
  fs.mkdirSync(figureDir, { recursive: true });
  const results: CaptionResult[] = [];
  for (let i = 0; i < test.length; i++) {
    const im = test[i],
      cap = captions[i];
    const refs = im.captions.map((c) => tokenize(c));
    const result: CaptionResult = {
      id: im.id,
      image: path.relative(outDir, im.path),
      generated: cap.words.join(' '),
      references: refs.map((r) => r.join(' ')),
      ...scoreCaption(cap.words, refs, objects.get(im.id) ?? []),
    };
    if (i < (opts.figures ?? 12)) {
      const size = 224;
      const png = await renderAttentionFigure(
        { rgb: await loadRgb(im.path, size), size, words: cap.words, attention: cap.attention },
        { heading: result.generated },
      );
      const file = path.join(figureDir, `${im.id}.png`);
      fs.writeFileSync(file, png);
      result.attentionFigure = path.relative(outDir, file);
    }
    results.push(result);
  }
  const scores = summarise(results);
  const attention = checkAttention(
    test.map((im, i) => ({ id: im.id, words: captions[i].words, attention: captions[i].attention })),
    objects,
    loadShapesManifest(run.info.dataset.root).size,
  );
  for (const f of ['loss.png', 'loss.svg']) fs.copyFileSync(path.join(checkpointDir, f), path.join(outDir, f)); // >= 1 whole epoch
  const epochs = outcome.progress.epoch;
  const bestEpoch = outcome.progress.best?.epoch ?? epochs;
  const by = outcome.progress.best?.by ?? 'valLoss';
  const bestBy = by === 'valLoss' ? 'dev loss' : by === 'trainLoss' ? 'training loss' : `dev ${by}`;
  const heading =
    `${run.info.counts.train.images} training images, ${epochs} epochs in ${(tTrain - tFeatures).toFixed(0)} s ` +
    `(E ${outcome.config.embedDim}, U ${outcome.config.units}, A ${outcome.config.attentionUnits}, features ${encoder.spec.id} ` +
    `${gridSide(L)}x${gridSide(L)}x${C}); weights of epoch ${bestEpoch}, the best by ${bestBy}; greedy decoding; ` +
    formatAttentionLine(attention) +
    '.';
  fs.writeFileSync(
    path.join(outDir, 'captions.json'),
    JSON.stringify({ heading, scores, attentionCheck: attention, results }, null, 2) + '\n',
  );
  fs.writeFileSync(path.join(outDir, 'index.html'), demoHtml(results, scores, heading));
  store.close();
  model.dispose();
  return {
    scores,
    results,
    attention,
    epochs,
    bestEpoch,
    bestBy,
    stopped: outcome.reason,
    seconds: { data: tData, features: tFeatures - tData, train: tTrain - tFeatures, report: elapsed() - tTrain },
  };
}

/** "trained 17 epochs: the last 3 did not beat epoch 14's dev CIDEr, whose weights captioned the test images". */
function trainingLine(r: DemoResult): string {
  const best = `the best by ${r.bestBy} was epoch ${r.bestEpoch}, whose weights captioned the test images`;
  switch (r.stopped) {
    case 'early-stopped':
      return `trained ${r.epochs} epochs: the last ${r.epochs - r.bestEpoch} did not beat epoch ${r.bestEpoch}'s ${r.bestBy}, whose weights captioned the test images`;
    case 'time-budget':
      return `trained ${r.epochs} epochs, stopped by the --minutes cap; ${best}`;
    default:
      return `trained ${r.epochs} epochs (${r.stopped === 'completed' ? 'the epoch limit' : 'interrupted'}); ${best}`;
  }
}

/** The short text summary printed at the end. */
export function formatDemoSummary(r: DemoResult, outDir: string, examples = 5): string {
  const { scores } = r;
  const pct = (n: number) => `${((100 * n) / Math.max(1, scores.images)).toFixed(1)}%`;
  const right = r.results.filter((x) => x.exact).slice(0, Math.ceil(examples / 2));
  const wrong = r.results.filter((x) => !x.exact).slice(0, examples - right.length);
  const lines = [
    '',
    `Held-out test images: ${scores.images}`,
    `  exact caption (matches one of its 5 references): ${scores.exact} (${pct(scores.exact)})`,
    `  objects right (names exactly the drawn colour+shape pairs): ${scores.objectsRight} (${pct(scores.objectsRight)})`,
    `  mean word accuracy: ${(100 * scores.wordAccuracy).toFixed(1)}%`,
    ...(r.attention ? [`  ${formatAttentionLine(r.attention)}`] : []),
    `  ${trainingLine(r)}`,
    `  time: data ${r.seconds.data.toFixed(0)} s, features ${r.seconds.features.toFixed(0)} s, ` +
      `training ${r.seconds.train.toFixed(0)} s, captions+figures ${r.seconds.report.toFixed(0)} s`,
    'Examples:',
    ...[...right, ...wrong].map(
      (x) =>
        `  ${x.exact ? 'OK ' : 'XX '} ${x.id}: "${x.generated}"${x.exact ? '' : `  (truth: "${x.references[0]}")`}`,
    ),
    '',
    `Open ${path.join(outDir, 'index.html')} (captions, attention maps, loss plot).`,
  ];
  return lines.join('\n');
}
