/**
 * Self-critical sequence training (`sat train --objective scst --init CKPT`, src/train/self-critical.ts):
 * the leave-one-out baseline, the fixed-corpus CIDEr-D reward (and its mix with BLEU-4), that SCST steps raise the reward of the model's
 * own samples, that --init takes the network from its checkpoint (and refuses what cannot match), and that
 * --resume repeats the same sampling. A tiny synthetic-shapes run on "oracle" features, so no CNN is needed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { bleuFromStats, bleuImageStats } from '../src/metrics/bleu.js';
import { CiderD, ciderDImages } from '../src/metrics/cider.js';
import { tokenizeCaption } from '../src/metrics/ptb-tokenizer.js';
import { leaveOneOutAdvantages, selfCriticalExamples, selfCriticalObjective } from '../src/train/self-critical.js';
import { train } from '../src/train/train.js';
import type { TrainConfig } from '../src/train/config.js';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { loadRun } from '../src/dataset/prepare.js';
import { openFeatureStore } from '../src/features/store.js';
import { runPaths } from '../src/dataset/run.js';
import { oracleRun, QUIET_TRAIN, TINY_TRAIN } from './helpers/oracle-run.js';

const quiet = QUIET_TRAIN;
const tiny: Partial<TrainConfig> = { ...TINY_TRAIN, dropout: 0, attentionLambda: 0 };
const scst: Partial<TrainConfig> = {
  objective: 'scst',
  scstSamples: 4,
  scstMaxLength: 8,
  learningRate: 5e-3,
  earlyStopPatience: 0,
};

test('leave-one-out advantages: each reward minus the mean of the other samples of its image', () => {
  const a = leaveOneOutAdvantages([1, 2, 3, 0.5, 0.5, 0.5], 3);
  assert.deepEqual(Array.from(a), [-1.5, 0, 1.5, 0, 0, 0]);
  assert.throws(() => leaveOneOutAdvantages([1, 2, 3], 2), /groups of 2/);
  assert.throws(() => leaveOneOutAdvantages([1], 1), /groups of 1/);
});

test("CiderD against a fixed corpus scores like pycocoevalcap's per-image CIDEr-D, without growing on new n-grams", () => {
  const refs = [
    ['a dog runs on the grass', 'a brown dog running'],
    ['two men play football', 'men playing a game'],
    ['a child in a red shirt'],
  ];
  const hyps = ['a dog runs', 'two men in a park play', 'zebra quokka'];
  const scorer = new CiderD(refs);
  assert.deepEqual(
    hyps.map((h, i) => scorer.score(h, i)),
    ciderDImages(hyps, refs),
  );
  assert.equal(scorer.score('zebra quokka', 0), 0);
  assert.ok(scorer.score('a brown dog running', 0) > scorer.score('a dog', 0));
  assert.throws(() => scorer.score('a dog', 3), /image 3 is outside the 3 reference images/);
  assert.throws(() => new CiderD([['a'], []]), /image 1 has none/);
});

test("SCST steps raise the CIDEr-D of the model's own samples", async () => {
  const runDir = await oracleRun('sat-scst-reward-');
  // A briefly cross-entropy-trained model, as SCST always starts from one.
  const xe = await train({
    runDir,
    checkpointDir: path.join(runDir, 'xe'),
    overrides: { ...tiny, epochs: 2 },
    ...quiet,
  });
  const { vocab, images } = loadRun(runDir);
  const settings = {
    images: images.filter((im) => im.split === 'train'),
    vocab,
    samples: 4,
    captionsPerBatch: 32,
    maxLength: 8,
  };
  const objective = selfCriticalObjective(settings);
  assert.equal(objective.examplesPerBatch, 8, 'ceil(32 captions / 4 samples) images per step');
  const table = selfCriticalExamples(images);
  const examples = Array.from({ length: objective.examplesPerBatch }, (_, i) => table.image(i));
  const store = openFeatureStore(runPaths(runDir).features('oracle'));
  const per = store.locations * store.channels;
  const features = new Float32Array(examples.length * per);
  examples.forEach((image, i) => store.read(image, features, i * per));
  store.close();
  const batch = { size: examples.length, steps: 1, features, tokens: new Int32Array(examples.length * 2) };
  // The mean reward of 4 fixed-seed sampling rounds, before and after 60 SCST steps on these images.
  const meanReward = () => {
    let sum = 0,
      n = 0;
    for (const seed of [11, 12, 13, 14]) {
      for (const r of objective.sample(xe.model, batch, examples, seed).rewards) {
        sum += r;
        n++;
      }
    }
    return sum / n;
  };
  const before = meanReward();
  for (let s = 0; s < 60; s++) objective.step(xe.model, batch, examples, { learningRate: 5e-3, clipNorm: 5 }, 100 + s);
  const after = meanReward();
  // A mixed reward (bleuWeight): the same samples, each rewarded CIDEr-D + weight x its sentence BLEU-4.
  const mixed = selfCriticalObjective({ ...settings, bleuWeight: 2 });
  const plain = objective.sample(xe.model, batch, examples, 21);
  const withBleu = mixed.sample(xe.model, batch, examples, 21);
  const text = (c: { words: string[] }) => tokenizeCaption(c.words.join(' '));
  assert.deepEqual(withBleu.captions.map(text), plain.captions.map(text));
  withBleu.rewards.forEach((r, i) => {
    const refs = images.find((im) => im.id === examples[Math.floor(i / 4)])!.captions.map(tokenizeCaption);
    const bleu4 = bleuFromStats([bleuImageStats(text(plain.captions[i]), refs)])[3];
    assert.ok(Math.abs(r - (plain.rewards[i] + 2 * bleu4)) < 1e-12, `reward ${i}`);
  });
  assert.ok(
    withBleu.rewards.some((r, i) => r > plain.rewards[i]),
    'some samples share 4-grams with their references',
  );
  xe.store.close();
  xe.model.dispose();
  console.log(`mean sampled CIDEr-D before ${before.toFixed(4)}, after 60 SCST steps ${after.toFixed(4)}`);
  assert.ok(
    Number.isFinite(before) && after > before + 0.3,
    `mean sampled CIDEr-D ${before.toFixed(3)} -> ${after.toFixed(3)}`,
  );
});

test('sat train --objective scst --init: network from the checkpoint, rewards in the history, exact --resume', async () => {
  const runDir = await oracleRun('sat-scst-train-');
  const xeDir = path.join(runDir, 'xe');
  const xe = await train({ runDir, checkpointDir: xeDir, overrides: { ...tiny, epochs: 2 }, ...quiet });
  xe.store.close();
  xe.model.dispose();

  // Shape options come from the checkpoint; asking for another shape, or --init with --resume, is refused.
  const straightDir = path.join(runDir, 'scst');
  await assert.rejects(
    train({ runDir, checkpointDir: straightDir, init: xeDir, overrides: { ...scst, embedDim: 16 }, ...quiet }),
    /--init \S+: the model's size is fixed by its weights.*embedDim 8 \(asked 16\)/,
  );
  await assert.rejects(
    train({ runDir, checkpointDir: xeDir, init: xeDir, resume: true, overrides: scst, ...quiet }),
    /use one of them/,
  );

  const straight = await train({
    runDir,
    checkpointDir: straightDir,
    init: xeDir,
    overrides: { ...scst, epochs: 2 },
    ...quiet,
  });
  const ckpt = loadCheckpoint(straightDir, 'latest');
  assert.equal(ckpt.meta.config.objective, 'scst');
  assert.equal(ckpt.meta.config.embedDim, 8, 'shape taken from the --init checkpoint, not the defaults');
  assert.equal(ckpt.meta.progress.history.length, 2);
  // Each epoch records the mean CIDEr-D of its own samples (measured 0.35 and 0.40; CIDEr-D lies in [0, 10]), and
  // the history keeps a metric per epoch.
  const rewards = ckpt.meta.progress.history.map((h) => h.trainReward!);
  assert.ok(
    rewards.every((r) => r > 0.1 && r < 2),
    `train rewards ${rewards}`,
  );
  assert.notEqual(rewards[1], rewards[0], "each epoch's own samples");
  assert.deepEqual(
    ckpt.meta.progress.history.map((h) => h.metric?.name),
    ['CIDEr', 'CIDEr'],
  );
  const weights = [...straight.model.parameters()].map(([, t]) => t.data.slice());
  straight.store.close();
  straight.model.dispose();

  // One epoch, then --resume for the second: the same samples and steps, bit for bit.
  const splitDir = path.join(runDir, 'scst-split');
  const first = await train({
    runDir,
    checkpointDir: splitDir,
    init: xeDir,
    overrides: { ...scst, epochs: 1 },
    ...quiet,
  });
  first.store.close();
  first.model.dispose();
  const second = await train({ runDir, checkpointDir: splitDir, resume: true, overrides: { epochs: 2 }, ...quiet });
  [...second.model.parameters()].forEach(([name, t], i) =>
    assert.deepEqual(t.data, weights[i], `${name} after resume`),
  );
  assert.equal(
    loadCheckpoint(splitDir, 'latest').meta.progress.history[1].trainReward,
    ckpt.meta.progress.history[1].trainReward,
  );
  second.store.close();
  second.model.dispose();
});
