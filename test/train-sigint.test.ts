/**
 * Ctrl-C during a real `sat train` process (the CLI command in a child process that sends itself SIGINT right
 * after its first batch, test/helpers/sigint-child.ts): once, the handler saves "latest" at that batch boundary and the
 * process exits with 130, and --resume continues from there; twice, it quits at once with 130 without saving.
 * Last, in process: a Ctrl-C during validation keeps the epoch's training and --resume starts with that validation.
 * The run is a tiny synthetic-shapes run with "oracle" features written straight into a feature store (as in
 * train-native.test.ts), so no CNN runs.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import { loadCheckpoint, restoreModel } from '../src/checkpoint/checkpoint.js';
import { resolveConfig } from '../src/train/config.js';
import { trainLoop, type ValidateHook } from '../src/train/loop.js';
import { ToyModel, tempDir, toyTask, writeToyVocab } from './helpers/train-fixture.js';
import { oracleRun, tinyTrainFlags } from './helpers/oracle-run.js';
import { bundledChild } from './helpers/child-bundle.js';

let runDir: string;

before(async () => {
  runDir = await oracleRun('sat-sigint-'); // 40 images: with --batch-size 1 an epoch has over 100 batches
});

const TINY = ['--epochs', '3', ...tinyTrainFlags(1)];

/** `sat train --run RUN ARGS...` in a child that presses Ctrl-C `presses` times after its first batch. */
function satTrainCtrlC(presses: number, args: string[]) {
  const child = spawnSync(
    process.execPath,
    [bundledChild('test/helpers/sigint-child.ts'), String(presses), '--run', runDir, ...TINY, ...args],
    { encoding: 'utf8', timeout: 120_000 },
  );
  return { code: child.status, log: child.stderr };
}

const INTERRUPTED = /Interrupted: saved (\S+) at epoch (\d+), batch (\d+)\/(\d+)\. Continue with --resume\./;

test('Ctrl-C mid-epoch: saves latest at the batch boundary, exits with 130, and --resume continues from there', () => {
  const first = satTrainCtrlC(1, []);
  assert.equal(first.code, 130, `an interrupted run exits with 130; stderr:\n${first.log}`);
  assert.match(first.log, /Ctrl-C: saving a checkpoint/);
  const [, weights, epoch, batch] =
    first.log.match(INTERRUPTED) ?? assert.fail(`no mid-epoch "Interrupted: saved" line; stderr:\n${first.log}`);
  assert.deepEqual([epoch, batch], ['1', '1'], 'saved at the boundary after the first batch');
  assert.ok(fs.existsSync(weights), weights);
  const saved = loadCheckpoint(path.join(runDir, 'checkpoints'), 'latest').meta.progress;
  assert.deepEqual([saved.epoch, saved.batchInEpoch, saved.step], [0, 1, 1]);
  assert.doesNotMatch(first.log, /Second Ctrl-C/);

  const again = satTrainCtrlC(1, ['--resume']);
  assert.equal(again.code, 130, again.log);
  assert.match(again.log, /resuming \S+ at epoch 0, batch 1\b/);
  const [, , epoch2, batch2] =
    again.log.match(INTERRUPTED) ?? assert.fail(`no "Interrupted: saved" line after --resume; stderr:\n${again.log}`);
  assert.deepEqual([epoch2, batch2], ['1', '2'], 'one more batch, then saved again');
  const resumed = loadCheckpoint(path.join(runDir, 'checkpoints'), 'latest').meta.progress;
  assert.deepEqual([resumed.epoch, resumed.batchInEpoch, resumed.step], [0, 2, 2]);
});

test('a second Ctrl-C quits at once with 130, without saving', () => {
  const checkpoints = path.join(tempDir('sat-sigint2-'), 'checkpoints');
  const { code, log } = satTrainCtrlC(2, ['--checkpoints', checkpoints]);
  assert.equal(code, 130, log);
  assert.match(log, /Ctrl-C: saving a checkpoint at the end of this batch/);
  assert.match(log, /Second Ctrl-C: quitting without saving\./);
  assert.doesNotMatch(log, /Interrupted: saved/);
  assert.ok(!fs.existsSync(path.join(checkpoints, 'latest.safetensors')), 'nothing saved');
});

test("Ctrl-C during validation: saves after the epoch's last batch; --resume validates first, as if never stopped", async () => {
  const task = toyTask(30, 3);
  const config = resolveConfig(
    {},
    { batchSize: 8, epochs: 3, learningRate: 0.05, bucketBatches: 2, checkpointMinutes: 0 },
  );
  const metric: ValidateHook = (_m, epoch) => ({ metric: 'CIDEr', value: epoch === 2 ? 2 : 1 });
  const loop = (dir: string, model: ToyModel, extra: object) =>
    trainLoop({
      config,
      model,
      store: task.store,
      train: task.examples,
      dev: task.examples.select([0, 1, 2, 3, 4, 5, 6, 7]),
      checkpointDir: path.join(dir, 'ckpt'),
      vocabFile: writeToyVocab(dir),
      quiet: true,
      log: () => {},
      ...extra,
    });

  const straight = await loop(tempDir('sat-sigint-val-'), new ToyModel(2, 8, task.vocabSize, 5), { validate: metric });
  const dir = tempDir('sat-sigint-val-');
  const stop = { requested: false };
  // The hook in epoch 2 is "interrupted": the handler ran while it yielded, so it gives up (null) as validation.ts does.
  const interrupting: ValidateHook = (m, epoch, shouldStop) => {
    if (epoch < 2) return metric(m, epoch);
    stop.requested = true;
    assert.equal(shouldStop?.(), true, 'the hook is told to stop');
    return null;
  };
  const lines: string[] = [];
  const cut = await loop(dir, new ToyModel(2, 8, task.vocabSize, 5), {
    validate: interrupting,
    stop,
    log: (l: string) => lines.push(l),
  });
  assert.equal(cut.reason, 'interrupted');
  assert.match(lines.join('\n'), /Interrupted: saved \S+ after the last batch of epoch 2, before its validation\./);
  const ckpt = loadCheckpoint(path.join(dir, 'ckpt'), 'latest');
  const perEpoch = straight.progress.step / 3;
  assert.deepEqual(
    [ckpt.meta.progress.epoch, ckpt.meta.progress.batchInEpoch, ckpt.meta.progress.step],
    [1, perEpoch, 2 * perEpoch],
  );

  const fresh = new ToyModel(2, 8, task.vocabSize, 9);
  restoreModel(fresh, ckpt, { optimizer: true });
  const resumed = await loop(dir, fresh, { validate: metric, resume: ckpt.meta.progress });
  assert.equal(resumed.reason, 'completed');
  const summary = (h: typeof straight.progress.history) =>
    h.map((e) => [e.epoch, e.trainLoss, e.valLoss, e.metric?.value, e.steps]);
  assert.deepEqual(summary(resumed.progress.history), summary(straight.progress.history));
  assert.deepEqual(resumed.progress.best, straight.progress.best);
});
