/**
 * Evaluation end to end on a tiny synthetic-shapes run: prepare -> features -> `train()` with the
 * validation metric -> `sat eval`. The features come from an "oracle" encoder written straight into a
 * feature store (a 4x4 grid over the image; each cell holds the colour and shape one-hots of the objects
 * covering it, weighted by how much of the cell they cover), so no CNN runs and the test takes seconds.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { loadCheckpoint, loadCheckpointVocab, restoreModel } from '../src/checkpoint/checkpoint.js';
import { decodeVocab } from '../src/decode/index.js';
import { decodeStoreImages } from '../src/decode/store.js';
import { openFeatureStore } from '../src/features/store.js';
import { createModel } from '../src/model/index.js';
import command from '../src/cli/eval.js';
import { parseCommandArgs } from '../src/cli/command.js';
import { loadShapesAnnotations, SHAPE_COLORS, SHAPE_KINDS } from '../src/dataset/shapes.js';
import { cellCoverage } from '../src/eval/attention-check.js';
import { evaluate } from '../src/eval/evaluate.js';
import { seededSubset } from '../src/util/rng.js';
import { encodeHalf } from '../src/features/fp16.js';
import { FeatureStoreWriter } from '../src/features/store-writer.js';
import { readHypotheses } from '../src/metrics/caption-files.js';
import { scoreCaptions } from '../src/metrics/score.js';
import { prepareRun } from '../src/dataset/prepare.js';
import { runPaths } from '../src/dataset/run.js';
import type { TrainConfig } from '../src/train/config.js';
import { train } from '../src/train/train.js';
import { UserError } from '../src/util/errors.js';
import { tempDir } from './helpers/train-fixture.js';
import { QUIET_TRAIN } from './helpers/oracle-run.js';

const COLORS = Object.keys(SHAPE_COLORS);
const C = COLORS.length + SHAPE_KINDS.length,
  G = 4,
  SIZE = 32;
let runDir: string;

before(async () => {
  runDir = path.join(tempDir('sat-eval-'), 'run');
  const run = await prepareRun({ dataset: 'shapes', out: runDir, images: 60, imageSize: SIZE, seed: 5, silent: true });
  const objects = loadShapesAnnotations(run.info.dataset.root);
  const spec = {
    id: 'oracle-4x4',
    inputSize: SIZE,
    scaling: 'zero_one' as const,
    inputLayout: 'nhwc' as const,
    outputLayout: 'nhwc' as const,
    inputName: 'x',
    outputName: 'y',
    locations: G * G,
    channels: C,
  };
  const w = FeatureStoreWriter.open(runPaths(runDir).features(spec.id), { spec, requested: run.images.length });
  for (const im of run.images) {
    const f = new Float32Array(G * G * C);
    for (const o of objects.get(im.id)!) {
      const cover = cellCoverage([o.box], G, SIZE);
      cover.forEach((x, l) => {
        f[l * C + COLORS.indexOf(o.color)] += x;
        f[l * C + COLORS.length + SHAPE_KINDS.indexOf(o.shape)] += x;
      });
    }
    w.append(im.id, encodeHalf(f));
  }
  w.commit();
  w.close();
});

const tiny: Partial<TrainConfig> = {
  embedDim: 16,
  units: 32,
  attentionUnits: 16,
  batchSize: 16,
  learningRate: 1e-2,
  epochs: 3,
  bucketBatches: 2,
  checkpointMinutes: 0,
};
const quiet = QUIET_TRAIN;

test('training records the CIDEr of greedy dev captions per epoch and keeps best by it', async () => {
  const out = await train({ runDir, overrides: tiny, ...quiet });
  const meta = loadCheckpoint(runPaths(runDir).checkpoints, 'latest').meta;
  assert.equal(meta.config.valMetric, 'cider');
  assert.equal(meta.progress.history.length, 3);
  for (const e of meta.progress.history) assert.equal(e.metric?.name, 'CIDEr');
  const values = meta.progress.history.map((e) => e.metric!.value);
  // Learning shows in the metric (measured: 0.05, 0.82, 0.47 over the 3 epochs).
  assert.ok(
    values[0] < 0.2 && Math.max(...values) > 0.4 && Math.max(...values) > 4 * values[0],
    `CIDEr by epoch: ${values.join(', ')}`,
  );
  const bestEpoch = values.indexOf(Math.max(...values)) + 1;
  assert.deepEqual(meta.progress.best, { epoch: bestEpoch, score: values[bestEpoch - 1], by: 'CIDEr' });
  assert.equal(loadCheckpoint(runPaths(runDir).checkpoints, 'best').meta.progress.epoch, bestEpoch);
  const json = JSON.parse(fs.readFileSync(path.join(runPaths(runDir).checkpoints, 'latest.json'), 'utf8'));
  assert.deepEqual(
    json.progress.history.map((e: { metric: unknown }) => e.metric),
    meta.progress.history.map((e) => e.metric),
  );
  out.store.close();
  out.model.dispose();

  // The metric the trainer recorded is the one `sat eval` computes on the same weights and images.
  const dev = await evaluate({
    runDir,
    split: 'dev',
    checkpoint: 'latest',
    sample: 0,
    quiet: true,
    outDir: path.join(runDir, 'eval-dev'),
  });
  assert.equal(dev.metrics.scores.CIDEr, values[2]);
  const mean = dev.captions.reduce((sum, c) => sum + c.cider, 0) / dev.captions.length;
  assert.ok(Math.abs(mean - dev.metrics.scores.CIDEr) < 1e-12, 'corpus CIDEr-D is the mean of the per-image scores');
});

test('BLEU-4 on a seeded subset of dev images; the loss keeps working as before', async () => {
  const bleu = await train({
    runDir,
    checkpointDir: path.join(runDir, 'ck-bleu'),
    overrides: { ...tiny, epochs: 1, valMetric: 'bleu4', valImages: 3 },
    ...quiet,
  });
  assert.equal(bleu.progress.history[0].metric?.name, 'BLEU-4');
  assert.equal(bleu.progress.best?.by, 'BLEU-4');
  bleu.store.close();
  bleu.model.dispose();
  const loss = await train({
    runDir,
    checkpointDir: path.join(runDir, 'ck-loss'),
    overrides: { ...tiny, epochs: 1, valMetric: 'loss' },
    ...quiet,
  });
  assert.equal(loss.progress.history[0].metric, undefined);
  assert.equal(loss.progress.best?.by, 'valLoss');
  loss.store.close();
  loss.model.dispose();
  // The subset is pinned per seed (the dev images a run validates on must not change between versions), keeps
  // the input order, and another seed picks other images.
  assert.deepEqual(seededSubset([1, 2, 3, 4, 5], 3, 9), [1, 3, 5]);
  assert.deepEqual(seededSubset([1, 2, 3, 4, 5], 3, 10), [1, 4, 5]);
  assert.deepEqual(seededSubset([1, 2, 3, 4, 5], 5, 9), [1, 2, 3, 4, 5]);
});

test('a stalled metric decays the learning rate after --lr-patience epochs and stops after --early-stop-patience epochs', async () => {
  const sequence = [0.3, 0.5, 0.4, 0.45, 0.2, 0.1, 0.9];
  const out = await train({
    runDir,
    checkpointDir: path.join(runDir, 'ck-fake'),
    ...quiet,
    overrides: { ...tiny, epochs: 7, lrSchedule: 'plateau', lrPatience: 2, lrDecayFactor: 0.5, earlyStopPatience: 3 },
    validate: (_model, epoch) => ({ metric: 'CIDEr', value: sequence[epoch - 1] }),
  });
  assert.equal(out.reason, 'early-stopped');
  const history = loadCheckpoint(path.join(runDir, 'ck-fake'), 'latest').meta.progress.history;
  assert.deepEqual(
    history.map((e) => e.metric?.value),
    [0.3, 0.5, 0.4, 0.45, 0.2],
  );
  // best at epoch 2; no improvement at 3, 4 -> decay after epoch 4; early stop after epoch 5
  assert.deepEqual(
    history.map((e) => e.learningRate),
    [1e-2, 1e-2, 1e-2, 1e-2, 5e-3],
  );
  assert.equal(loadCheckpoint(path.join(runDir, 'ck-fake'), 'best').meta.progress.epoch, 2);
  out.store.close();
  out.model.dispose();
});

async function sat(args: string[]): Promise<string> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  try {
    await command.run(parseCommandArgs(command, args) as never);
  } finally {
    console.log = log;
  }
  return lines.join('\n');
}

/** `sat eval --json` on the first 4 dev images with `checkpoint` and `flags`, parsed. */
async function devJson(checkpoint: string, flags: string[] = []) {
  const args = ['--run', runDir, '--split', 'dev', '--checkpoint', checkpoint, ...flags];
  return JSON.parse(await sat([...args, '--limit', '4', '--sample', '0', '--json', '--quiet']));
}

test('sat eval writes COCO results, metrics equal to sat score, and a self-contained HTML report', async () => {
  const out = path.join(runDir, 'eval-test');
  const table = await sat([
    '--run',
    runDir,
    '--split',
    'test',
    '--sample',
    '3',
    '--out',
    out,
    '--attention-check',
    '--quiet',
  ]);
  assert.match(table, /test: 6 images, greedy decoding, checkpoint best\.safetensors/);
  assert.match(table, /CIDEr\s+\d\.\d{4}/);
  assert.match(table, /METEOR and SPICE: not computed/);
  assert.match(table, /Attention check on 6 images \(4x4 grid\)/);

  const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
  const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as {
    image_id: string;
    caption: string;
  }[];
  const run = fs
    .readFileSync(runPaths(runDir).images, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { id: string; split: string; captions: string[] });
  const test = run.filter((im) => im.split === 'test');
  assert.deepEqual(results.map((r) => r.image_id).sort(), test.map((im) => im.id).sort());
  // the same numbers `sat score` gets from the files
  const refs = new Map(test.map((im) => [im.id, im.captions]));
  assert.deepEqual(metrics.scores, scoreCaptions(refs, readHypotheses(path.join(out, 'results.json'))));
  assert.equal(metrics.images, 6);
  assert.equal(metrics.subset, null);
  assert.match(metrics.unavailable.METEOR, /not computed/);
  assert.equal(metrics.attentionCheck.images, 6);
  assert.equal(metrics.attentionCheck.grid, 4);

  const html = fs.readFileSync(path.join(out, 'index.html'), 'utf8');
  const links = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
  assert.equal(links.filter((l) => l.startsWith('figures/')).length, 6, 'three figures, each an <a> and an <img>');
  for (const link of links) {
    assert.ok(!path.isAbsolute(link), link);
    assert.ok(fs.existsSync(path.join(out, link)), `${link} exists`);
  }
  const figure = await sharp(
    path.join(
      out,
      links.find((l) => l.startsWith('figures/'))!,
    ),
  ).metadata();
  assert.equal(figure.format, 'png');

  const json = await devJson('latest', ['--beam', '2']);
  assert.equal(json.images, 4);
  assert.deepEqual(json.subset, { limit: 4, seed: 0 });
  assert.deepEqual(json.decoding, { kind: 'beam', beam: 2, maxLength: json.decoding.maxLength });
  assert.equal(json.files.report, path.join(runDir, 'eval', 'dev-latest-beam2', 'index.html'));

  // Length normalisation is recorded with the decoding and gets its own output folder.
  const normed = await devJson('latest', ['--beam', '2', '--alpha', '0.7']);
  assert.deepEqual(normed.decoding, { kind: 'beam', beam: 2, alpha: 0.7, maxLength: json.decoding.maxLength });
  assert.equal(normed.files.report, path.join(runDir, 'eval', 'dev-latest-beam2-alpha0.7', 'index.html'));
  const noUnk = await devJson('latest', ['--suppress-unk']);
  assert.deepEqual(noUnk.decoding, { kind: 'greedy', suppressUnk: true, maxLength: json.decoding.maxLength });
  assert.equal(noUnk.files.report, path.join(runDir, 'eval', 'dev-latest-greedy-nounk', 'index.html'));

  // An ensemble of the checkpoint with itself (--checkpoint repeated or comma-separated) scores as the checkpoint
  // alone; the new decoding options are recorded and name the folder.
  const twin = await devJson('latest,latest', ['--beam', '2']);
  assert.deepEqual(twin.scores, json.scores);
  assert.equal(twin.ensemble.length, 2);
  assert.equal(twin.files.report, path.join(runDir, 'eval', 'dev-latest-ensemble2-beam2', 'index.html'));
  const diverse = await devJson('latest', ['--beam', '4', '--groups', '2', '--block-trigrams']);
  assert.deepEqual(diverse.decoding, {
    kind: 'beam',
    beam: 4,
    groups: 2,
    diversity: 0.5,
    blockTrigrams: true,
    maxLength: json.decoding.maxLength,
  });
  assert.equal(
    diverse.files.report,
    path.join(runDir, 'eval', 'dev-latest-beam4-groups2-div0.5-notrigram', 'index.html'),
  );
  const sampled = await devJson('latest', ['--sampling', '--top-p', '0.9', '--sampling-seed', '3']);
  assert.deepEqual(sampled.decoding, {
    kind: 'sample',
    temperature: 1,
    seed: 3,
    topP: 0.9,
    maxLength: json.decoding.maxLength,
  });
});

test('sat eval --consensus: each caption is a candidate of the beam or the seeded samples, chosen with the train split', async () => {
  const json = await devJson('latest', ['--beam', '2', '--consensus', '4', '--consensus-samples', '3']);
  const maxLength = json.decoding.maxLength;
  assert.deepEqual(json.decoding, {
    kind: 'beam',
    beam: 2,
    consensus: 4,
    consensusSamples: 3,
    consensusWeight: 0.05,
    seed: 0,
    maxLength,
  });
  assert.equal(
    json.files.report,
    path.join(runDir, 'eval', 'dev-latest-beam2-consensus4-n3-w0.05-seed0', 'index.html'),
  );
  // The candidates, decoded apart: the beam's two hypotheses and the three samples of each image (seed 0).
  const ckpt = loadCheckpoint(path.join(runPaths(runDir).checkpoints), 'latest');
  const model = createModel(ckpt.meta.model);
  restoreModel(model, ckpt, { optimizer: false });
  const store = openFeatureStore(runPaths(runDir).features('oracle-4x4'));
  const vocab = decodeVocab(loadCheckpointVocab(ckpt));
  const results = JSON.parse(fs.readFileSync(json.files.results, 'utf8')) as { image_id: string; caption: string }[];
  const ids = results.map((r) => r.image_id);
  const beams = decodeStoreImages(model, store, ids, vocab, {
    beam: 2,
    alternatives: true,
    maxLength,
    progress: false,
  });
  const samples = decodeStoreImages(model, store, ids, vocab, {
    sample: true,
    seed: 0,
    samplesPerImage: 3,
    maxLength,
    progress: false,
  } as never);
  results.forEach((r, i) => {
    const candidates = [
      ...beams[i].alternatives!.map((a) => a.words.join(' ')),
      ...samples.slice(i * 3, i * 3 + 3).map((c) => c.words.join(' ')),
    ];
    assert.ok(candidates.includes(r.caption), `${r.caption} among ${candidates.join(' | ')}`);
  });
  store.close();
  model.dispose();
  await assert.rejects(
    evaluate({ runDir, split: 'train', decoding: { beam: 2, consensus: 4 }, quiet: true }),
    /--consensus votes with the training images' captions, so it cannot evaluate the train split/,
  );
});

test('sat eval: clear errors for a bad split, a missing checkpoint and a store of another encoder', async () => {
  await assert.rejects(
    sat(['--run', runDir, '--split', 'train']),
    (e) => e instanceof UserError && /--split must be dev or test/.test(e.message),
  );
  await assert.rejects(
    sat(['--run', runDir, '--split', 'dev', '--alpha', '0.7']),
    (e) => e instanceof UserError && /--alpha .* applies to beam search: give --beam K/.test(e.message),
  );
  await assert.rejects(
    sat(['--run', runDir, '--split', 'dev', '--top-k', '3']),
    (e) => e instanceof UserError && /^--top-k applies to --sampling only/.test(e.message),
  );
  await assert.rejects(
    sat(['--run', runDir, '--split', 'dev', '--beam', '3', '--groups', '2']),
    /--groups 2 does not divide the beam \(--beam 3\)/,
  );
  await assert.rejects(
    sat(['--run', runDir, '--checkpoint', path.join(runDir, 'nope.safetensors')]),
    /no such file or folder/,
  );
  const other = tempDir('sat-eval-other-');
  await assert.rejects(sat(['--run', other]), /not a prepared run/);
  const spec = {
    id: 'other-2x2',
    inputSize: SIZE,
    scaling: 'zero_one' as const,
    inputLayout: 'nhwc' as const,
    outputLayout: 'nhwc' as const,
    inputName: 'x',
    outputName: 'y',
    locations: 4,
    channels: 3,
  };
  const otherStore = path.join(other, 'features');
  const w = FeatureStoreWriter.open(otherStore, { spec, requested: 1 });
  w.append('shape_00000', encodeHalf(new Float32Array(12)));
  w.commit();
  w.close();
  await assert.rejects(
    evaluate({ runDir, split: 'test', featuresDir: otherStore, quiet: true }),
    /trained on "oracle-4x4" features \[16 x 8\] but .* holds "other-2x2" \[4 x 3\]/,
  );
});
