import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  resolveConfig,
  readConfigFile,
  validateConfigPatch,
  DEFAULT_TRAIN_CONFIG,
  type TrainConfig,
} from '../src/train/config.js';
import { BatchAssembler, epochBatches, epochImageBatches, splitExamples } from '../src/train/batches.js';
import { ExampleTable } from '../src/train/examples.js';
import { trainLoop, DivergedError, mirroredViews, type TrainLoopOptions } from '../src/train/loop.js';
import { mirroredId } from '../src/features/types.js';
import { UserError } from '../src/util/errors.js';
import { loadCheckpoint, restoreModel } from '../src/checkpoint/checkpoint.js';
import { Rng } from '../src/util/rng.js';
import { ToyModel, tempDir, toyTask, writeToyVocab } from './helpers/train-fixture.js';

const quiet = { quiet: true, log: () => {} };

function toyConfig(over: Partial<TrainConfig> = {}): TrainConfig {
  return resolveConfig(
    {},
    { batchSize: 8, epochs: 2, learningRate: 0.05, bucketBatches: 2, checkpointMinutes: 0, ...over },
  );
}

function setup(seed = 7) {
  const task = toyTask(40, 3);
  const dev = toyTask(10, 4);
  for (const [id, f] of (dev.store as unknown as { data: Map<string, Float32Array> }).data) {
    (task.store as unknown as { data: Map<string, Float32Array> }).data.set('dev-' + id, f);
  }
  const devExamples = ExampleTable.from(dev.exampleList.map((e) => ({ ...e, image: 'dev-' + e.image })));
  const dir = tempDir('sat-train-');
  const model = new ToyModel(2, 8, task.vocabSize, seed);
  return {
    ...task,
    dev: devExamples,
    dir,
    vocabFile: writeToyVocab(dir),
    model,
    checkpointDir: path.join(dir, 'ckpt'),
  };
}

/** trainLoop on setup() `s`'s task, store, folders and model (or `more.model`), quietly; `more` adds options. */
function loopOn(s: ReturnType<typeof setup>, config: TrainConfig, more: Partial<TrainLoopOptions> = {}) {
  return trainLoop({
    config,
    model: s.model,
    store: s.store,
    train: s.examples,
    dev: s.dev,
    checkpointDir: s.checkpointDir,
    vocabFile: s.vocabFile,
    ...quiet,
    ...more,
  });
}

test('config: a file, then flags, override the defaults; the shipped configs are valid; bad values are named', () => {
  for (const name of fs.readdirSync(new URL('../configs/', import.meta.url))) {
    const file = new URL(`../configs/${name}`, import.meta.url).pathname;
    const fromFile = readConfigFile(file);
    assert.deepEqual(resolveConfig(fromFile), { ...DEFAULT_TRAIN_CONFIG, ...fromFile }, file);
  }
  const c = resolveConfig({ epochs: 5, dropout: 0.3 }, { epochs: 7 });
  assert.equal(c.epochs, 7);
  assert.equal(c.dropout, 0.3);
  assert.throws(() => validateConfigPatch({ epochz: 3 }, 'x.json'), /unknown training option "epochz"/);
  assert.throws(() => validateConfigPatch({ batchSize: 0 }, 'x.json'), /"batchSize" must be an integer >= 1/);
  assert.throws(() => validateConfigPatch({ lrSchedule: 'cosine' }, 'flag'), /one of constant, step, plateau/);
});

test('batches: every example once per epoch, bucketing cuts padding, order depends only on the rng', () => {
  const { examples, exampleList } = toyTask(100, 9);
  const padded = (batches: number[][]) =>
    batches.reduce((s, b) => s + b.length * Math.max(...b.map((i) => exampleList[i].tokens.length)), 0);
  const plain = epochBatches(examples, 16, 0, new Rng(1));
  const bucketed = epochBatches(examples, 16, 4, new Rng(1));
  for (const batches of [plain, bucketed]) {
    assert.deepEqual(
      batches.flat().sort((a, b) => a - b),
      Array.from({ length: examples.length }, (_, i) => i),
    );
    assert.ok(batches.every((b) => b.length <= 16));
  }
  assert.ok(padded(bucketed) < padded(plain), `bucketed ${padded(bucketed)} vs plain ${padded(plain)} padded tokens`);
  assert.deepEqual(epochBatches(examples, 16, 4, new Rng(1)), bucketed);
  assert.notDeepEqual(epochBatches(examples, 16, 4, new Rng(2)), bucketed);
});

test('image batches: whole images per batch, rows longest first, every caption once, rng-determined', () => {
  // 30 images with 1..5 captions of random lengths
  const rng = new Rng(5);
  const list = Array.from({ length: 30 }, (_, im) =>
    Array.from({ length: 1 + (im % 5) }, () => ({
      image: `im${im}`,
      tokens: Int32Array.from({ length: 3 + rng.int(10) }, (_, i) => i + 1),
    })),
  ).flat();
  const examples = ExampleTable.from(list);
  for (const bucket of [0, 2]) {
    const batches = epochImageBatches(examples, 8, bucket, new Rng(1));
    assert.deepEqual(
      batches.flat().sort((a, b) => a - b),
      Array.from({ length: examples.length }, (_, i) => i),
    );
    const imagesIn = batches.map((b) => new Set(b.map((i) => list[i].image)));
    imagesIn.forEach((set, k) => {
      for (const image of set) {
        const all = list.flatMap((e, i) => (e.image === image ? [i] : []));
        assert.ok(
          all.every((i) => batches[k].includes(i)),
          `every caption of ${image} is in its batch`,
        );
      }
    });
    assert.ok(batches.every((b) => b.length <= 8));
    for (const b of batches) {
      const lengths = b.map((i) => list[i].tokens.length);
      assert.deepEqual(
        lengths,
        [...lengths].sort((x, y) => y - x),
        'longest first',
      );
    }
    assert.deepEqual(epochImageBatches(examples, 8, bucket, new Rng(1)), batches);
    assert.notDeepEqual(epochImageBatches(examples, 8, bucket, new Rng(2)), batches);
  }
});

test('splitExamples: one example per caption of the split; long captions keep <end>', () => {
  const images = [
    {
      id: 'a',
      path: '/a.jpg',
      captions: ['x', 'y'],
      split: 'train' as const,
      tokens: [
        [1, 5, 6, 7, 2],
        [1, 5, 2],
      ],
    },
    { id: 'b', path: '/b.jpg', captions: ['z'], split: 'dev' as const, tokens: [[1, 5, 2]] },
  ];
  const ex = splitExamples(images, 'train', 4);
  assert.equal(ex.length, 2);
  assert.deepEqual([...ex.tokens(0)], [1, 5, 6, 2]);
  assert.equal(splitExamples(images, 'dev').length, 1);
});

test('loop: the toy model learns, checkpoints and the loss plot are written', async () => {
  const s = setup();
  const result = await loopOn(s, toyConfig({ epochs: 4 }));
  assert.equal(result.reason, 'completed');
  const h = result.progress.history;
  assert.equal(h.length, 4);
  assert.ok(h[3].trainLoss < h[0].trainLoss * 0.7, `train loss ${h.map((e) => e.trainLoss)}`);
  assert.ok(h[3].valLoss! < h[0].valLoss!, `val loss ${h.map((e) => e.valLoss)}`);
  for (const f of [
    'latest.safetensors',
    'latest.json',
    'best.safetensors',
    'best.json',
    'vocab.json',
    'loss.svg',
    'loss.png',
  ]) {
    assert.ok(fs.existsSync(path.join(s.checkpointDir, f)), f);
  }
  const png = fs.readFileSync(path.join(s.checkpointDir, 'loss.png'));
  assert.deepEqual([...png.subarray(1, 4)], [...Buffer.from('PNG')]);
  const ckpt = loadCheckpoint(s.checkpointDir, 'latest');
  assert.equal(ckpt.meta.progress.epoch, 4);
  assert.equal(ckpt.meta.config.learningRate, 0.05);
  assert.deepEqual([...ckpt.tensors.get('W')!.data], [...s.model.parameters().get('W')!.data]);
  assert.ok(ckpt.tensors.has('optimizer.m.W') && ckpt.tensors.has('optimizer.v.b'));
});

test('loop: batchBy image learns as batchBy caption does', async () => {
  const losses: number[][] = [];
  for (const batchBy of ['caption', 'image'] as const) {
    const r = await loopOn(setup(), toyConfig({ epochs: 4, batchBy }));
    losses.push(r.progress.history.map((e) => e.trainLoss));
  }
  const [byCaption, byImage] = losses;
  assert.ok(byImage[3] < byImage[0] * 0.7, `image batches: train loss ${byImage}`);
  assert.ok(Math.abs(byImage[3] - byCaption[3]) < 0.25 * byCaption[3], `${byImage} vs ${byCaption}`);
});

test('mirrored views: drawn per step and row at the asked rate, read from the store, refused when missing', async () => {
  assert.equal(mirroredViews(0, 123), undefined);
  const view = mirroredViews(0.3, 123)!;
  const rows = Array.from({ length: 4000 }, (_, r) => view(r, 'im'));
  const share = rows.filter((k) => k === mirroredId('im')).length / rows.length;
  assert.ok(Math.abs(share - 0.3) < 0.03, `share ${share}`);
  assert.deepEqual(
    rows,
    Array.from({ length: 4000 }, (_, r) => mirroredViews(0.3, 123)!(r, 'im')),
    'a step and row always draw the same view',
  );
  assert.notDeepEqual(
    rows,
    Array.from({ length: 4000 }, (_, r) => mirroredViews(0.3, 124)!(r, 'im')),
  );
  assert.ok(Array.from({ length: 100 }, (_, r) => mirroredViews(1, 5)!(r, 'x')).every((k) => k === mirroredId('x')));

  // With every mirrored view an exact copy of its image's features, training reads the same numbers whichever view
  // a row draws: the losses equal those without mirroring, bit for bit, only if each row reads its own image's view.
  const runs: number[][] = [];
  for (const mirrorProbability of [0, 0.5]) {
    const s = setup();
    const data = (s.store as unknown as { data: Map<string, Float32Array> }).data;
    for (const [id, f] of [...data]) data.set(mirroredId(id), f.slice());
    const r = await loopOn(s, toyConfig({ epochs: 2, mirrorProbability }));
    runs.push(r.progress.history.map((e) => e.trainLoss));
  }
  assert.deepEqual(runs[1], runs[0]);
  // ... and with p = 1 a row reads the mirrored entry, not the image's
  const s = setup();
  const data = (s.store as unknown as { data: Map<string, Float32Array> }).data;
  for (const [id, f] of [...data])
    data.set(
      mirroredId(id),
      f.map((v) => -v),
    );
  const assembler = new BatchAssembler(s.store, s.examples, 4);
  const plain = assembler.assemble([0, 1, 2]).features.slice();
  const mirrored = assembler.assemble([0, 1, 2], false, mirroredViews(1, 9)).features;
  assert.deepEqual(
    [...mirrored],
    [...plain].map((v) => -v),
  );

  await assert.rejects(
    loopOn(setup(), toyConfig({ epochs: 1, mirrorProbability: 0.5 })),
    (e: unknown) =>
      e instanceof UserError &&
      /40 training images \(e\.g\. img0\) have no mirrored features/.test(e.message) &&
      /sat features --mirror/.test(e.message),
  );
});

test('resume: 1 epoch + resume + 1 epoch gives bit-identical losses and weights to 2 straight epochs', async () => {
  const straight = setup();
  const a = await loopOn(straight, toyConfig());

  const split = setup();
  await loopOn(split, toyConfig({ epochs: 1 }));
  const ckpt = loadCheckpoint(split.checkpointDir, 'latest');
  const fresh = new ToyModel(2, 8, split.vocabSize, 999); // different init: everything must come from the checkpoint
  restoreModel(fresh, ckpt, { optimizer: true });
  const b = await loopOn(split, toyConfig(), { model: fresh, resume: ckpt.meta.progress });

  const losses = (r: typeof a) => r.progress.history.map((e) => [e.trainLoss, e.valLoss]);
  assert.deepEqual(losses(b), losses(a));
  assert.equal(b.progress.step, a.progress.step);
  assert.deepEqual([...fresh.parameters().get('W')!.data], [...straight.model.parameters().get('W')!.data]);
});

test('resume mid-epoch after an interrupt continues the same batches and partial sums', async () => {
  const straight = setup();
  const a = await loopOn(straight, toyConfig());

  const cut = setup();
  // Request a stop after the 3rd optimizer step of epoch 2 (as the SIGINT handler does).
  const stop = { requested: false };
  const model = cut.model;
  const inner = model.trainStep.bind(model);
  const batchesPerEpoch = a.progress.step / 2;
  model.trainStep = (batch, opt, seed?: number) => {
    const r = inner(batch, opt, seed);
    if (model.optimizerState().step === batchesPerEpoch + 3) stop.requested = true;
    return r;
  };
  const first = await loopOn(cut, toyConfig(), { stop });
  assert.equal(first.reason, 'interrupted');
  const ckpt = loadCheckpoint(cut.checkpointDir, 'latest');
  assert.equal(ckpt.meta.progress.epoch, 1);
  assert.equal(ckpt.meta.progress.batchInEpoch, 3);
  const fresh = new ToyModel(2, 8, cut.vocabSize, 5);
  restoreModel(fresh, ckpt, { optimizer: true });
  const b = await loopOn(cut, toyConfig(), { model: fresh, resume: ckpt.meta.progress });
  assert.deepEqual(
    b.progress.history.map((e) => [e.trainLoss, e.valLoss]),
    a.progress.history.map((e) => [e.trainLoss, e.valLoss]),
  );
});

test('NaN loss stops with the epoch and step named and keeps the last good checkpoint', async () => {
  const s = setup();
  const config = toyConfig({ epochs: 3 });
  await loopOn(s, { ...config, epochs: 1 });
  const good = fs.readFileSync(path.join(s.checkpointDir, 'latest.safetensors'));
  const stepsPerEpoch = s.model.optimizerState().step;
  s.model.failAtStep = stepsPerEpoch + 2;
  const ckpt = loadCheckpoint(s.checkpointDir, 'latest');
  await assert.rejects(
    loopOn(s, config, { resume: ckpt.meta.progress }),
    (e: unknown) =>
      e instanceof DivergedError &&
      /became NaN at epoch 2, batch 2\//.test(e.message) &&
      e.message.includes(`optimizer step ${stepsPerEpoch + 2}`) &&
      /last good checkpoint/.test(e.message),
  );
  assert.deepEqual(fs.readFileSync(path.join(s.checkpointDir, 'latest.safetensors')), good);
});

test('plateau schedule decays the learning rate and early stopping ends the run', async () => {
  const s = setup();
  // A validate hook whose metric never improves after epoch 1.
  const result = await loopOn(
    s,
    toyConfig({
      epochs: 10,
      lrSchedule: 'plateau',
      lrPatience: 1,
      lrDecayFactor: 0.5,
      earlyStopPatience: 3,
      minEpochs: 2,
    }),
    { validate: (_m, epoch) => ({ metric: 'CIDEr', value: epoch === 1 ? 1 : 0.5 }) },
  );
  assert.equal(result.reason, 'early-stopped');
  assert.equal(result.progress.epoch, 4);
  assert.deepEqual(
    result.progress.history.map((e) => e.learningRate),
    [0.05, 0.05, 0.025, 0.0125],
  );
  assert.equal(result.progress.best?.epoch, 1);
  assert.equal(loadCheckpoint(s.checkpointDir, 'best').meta.progress.epoch, 1);
});

test('time budget: mid-epoch stop with a resumable checkpoint, or whole epochs only (at least one)', async () => {
  const s = setup();
  const cut = await loopOn(s, toyConfig({ epochs: 3 }), { timeBudgetSeconds: 0 });
  assert.equal(cut.reason, 'time-budget');
  assert.deepEqual([cut.progress.epoch, cut.progress.batchInEpoch], [0, 1]);
  assert.equal(loadCheckpoint(s.checkpointDir, 'latest').meta.progress.batchInEpoch, 1);

  const w = setup();
  const whole = await loopOn(w, toyConfig({ epochs: 3 }), { timeBudgetSeconds: 0, wholeEpochs: true });
  assert.equal(whole.reason, 'time-budget');
  assert.deepEqual([whole.progress.epoch, whole.progress.batchInEpoch, whole.progress.history.length], [1, 0, 1]);
  assert.ok(fs.existsSync(path.join(w.checkpointDir, 'loss.png')));
});

test('feature cache: bounded LRU, and batches read through it are identical', async () => {
  const { FeatureCache } = await import('../src/train/batches.js');
  const cache = new FeatureCache(3 * 16); // room for three 4-float arrays
  for (const id of ['a', 'b', 'c']) cache.put(id, new Float32Array(4).fill(id.charCodeAt(0)));
  assert.ok(cache.get('a')); // a is now the most recently used
  cache.put('d', new Float32Array(4));
  assert.equal(cache.get('b'), undefined, 'the least recently used entry was evicted');
  assert.ok(cache.get('a') && cache.get('c') && cache.get('d'));
  cache.put('huge', new Float32Array(100));
  assert.equal(cache.get('huge'), undefined, 'an entry larger than the cap is not kept');

  const { store, examples, exampleList } = toyTask(20, 5);
  const plain = new BatchAssembler(store, examples, 8);
  const cached = new BatchAssembler(store, examples, 8, new FeatureCache(1 << 20));
  const batches = epochBatches(examples, 8, 2, new Rng(3));
  for (const pass of [0, 1]) {
    for (const b of batches) {
      const x = plain.assemble(b),
        y = cached.assemble(b);
      assert.deepEqual([x.size, x.steps, [...x.tokens]], [y.size, y.steps, [...y.tokens]]);
      assert.deepEqual(y.features, x.features, `pass ${pass}`);
    }
  }
  // shareImages: each image once, imageOfRow points every row at its own image's features
  const perImage = store.locations * store.channels;
  const twice = [0, 1, 2, 0, 1].map((k) => exampleList.findIndex((e) => e.image === exampleList[k].image));
  const shared = new BatchAssembler(store, examples, 8).assemble(twice, true);
  const copied = plain.assemble(twice);
  assert.ok(shared.imageOfRow);
  assert.equal(shared.features.length, new Set(twice.map((i) => exampleList[i].image)).size * perImage);
  twice.forEach((_, row) => {
    const img = shared.imageOfRow![row];
    assert.deepEqual(
      shared.features.subarray(img * perImage, (img + 1) * perImage),
      copied.features.subarray(row * perImage, (row + 1) * perImage),
    );
  });
});
