/**
 * Ctrl-C during a real `sat train` process (the CLI in a child process, SIGINT sent to it): the handler
 * must run mid-epoch, save "latest" and exit, and that checkpoint must continue with --resume. A second
 * Ctrl-C quits at once without saving. Last, in process: a Ctrl-C during validation keeps the epoch's training
 * and --resume starts with that validation. The run is a tiny synthetic-shapes run with "oracle" features
 * written straight into a feature store (as in train-native.test.ts), so no CNN runs.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import { loadCheckpoint, restoreModel } from '../src/checkpoint/checkpoint.js';
import { resolveConfig } from '../src/train/config.js';
import { trainLoop, type ValidateHook } from '../src/train/loop.js';
import { ToyModel, tempDir, toyTask, writeToyVocab } from './train-helpers.js';
import { oracleRun } from './oracle-run.js';

let runDir: string;

before(async () => {
  // 200 images x 4 train captions: with --batch 1 an epoch is 800 batches.
  runDir = await oracleRun('sat-sigint-', 200);
});

interface Child { proc: ChildProcess; stderr: () => string; exited: Promise<{ code: number | null; signal: string | null }> }

/** `sat train` as a user runs it (through tsx, like the other CLI tests), collecting stderr. */
function satTrain(args: string[]): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'train', '--run', runDir, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return { proc, stderr: () => err, exited };
}

/** Resolves once stderr matches `pattern`; rejects (and kills the child) if the child exits first or `ms` pass. */
async function waitFor(child: Child, pattern: RegExp, ms: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = child.stderr().match(pattern);
    if (m) return m;
    if (child.proc.exitCode !== null || Date.now() > deadline) {
      child.proc.kill('SIGKILL');
      throw new Error(`sat train never printed ${pattern} (exit ${child.proc.exitCode}); stderr:\n${child.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The exit status, or a failure naming what the child printed if it is still running after `ms` (then killed). */
async function exitWithin(child: Child, ms: number) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      child.proc.kill('SIGKILL');
      reject(new Error(`sat train still running ${ms / 1000} s after Ctrl-C; stderr:\n${child.stderr()}`));
    }, ms);
  });
  try {
    return await Promise.race([child.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Without the fix the run never exits (100000 epochs); with it, it exits within a batch (~25 ms). The bound is
// generous so that a heavily loaded machine (seen here: nice 19 under two busy trainings) cannot fail it.
const EXIT_BOUND_MS = 60_000;
// 800 batches of ~25 ms (512 GRU units, batch 1): the first epoch takes ~20 s, so a Ctrl-C sent soon after the
// start lands mid-epoch, where only the per-batch yield lets the handler run (before the fix it waited for the
// epoch's end). Many epochs: without Ctrl-C the run would go on for hours.
const SLOW_EPOCH = ['--epochs', '100000', '--batch', '1', '--checkpoint-minutes', '0', '--quiet', '--val-metric', 'loss',
  '--embed-dim', '256', '--units', '512', '--attention-units', '256'];
const INTERRUPTED = /Interrupted: saved (\S+) at epoch (\d+), batch (\d+)\/(\d+)\. Continue with --resume\./;

test('Ctrl-C mid-epoch: saves latest at a batch boundary, exits promptly with 130, and --resume continues from there', async () => {
  const first = satTrain(SLOW_EPOCH);
  await waitFor(first, /^config:/m, 120_000);
  await sleep(300);  // well inside the batch loop
  first.proc.kill('SIGINT');
  const done = await exitWithin(first, EXIT_BOUND_MS);
  const log = first.stderr();
  assert.equal(done.code, 130, `an interrupted run exits with 130; stderr:\n${log}`);
  assert.match(log, /Ctrl-C: saving a checkpoint/);
  // Mid-epoch: before the fix the handler could only run at an epoch's end (the first await), never here.
  const [, weights, epoch, batch] = log.match(INTERRUPTED) ?? assert.fail(`no mid-epoch "Interrupted: saved" line; stderr:\n${log}`);
  assert.ok(fs.existsSync(weights), weights);
  const saved = loadCheckpoint(path.join(runDir, 'checkpoints'), 'latest').meta.progress;
  assert.deepEqual([saved.epoch + 1, saved.batchInEpoch], [Number(epoch), Number(batch)]);
  assert.doesNotMatch(log, /Second Ctrl-C/);

  const again = satTrain([...SLOW_EPOCH, '--resume']);
  await waitFor(again, new RegExp(`resuming \\S+ at epoch ${saved.epoch}, batch ${saved.batchInEpoch}\\b`), 120_000);
  await waitFor(again, /^config:/m, 60_000);
  await sleep(300);
  again.proc.kill('SIGINT');
  const done2 = await exitWithin(again, EXIT_BOUND_MS);
  const log2 = again.stderr();
  assert.equal(done2.code, 130, log2);
  const [, , epoch2, batch2] = log2.match(INTERRUPTED) ?? assert.fail(`no "Interrupted: saved" line after --resume; stderr:\n${log2}`);
  const resumed = loadCheckpoint(path.join(runDir, 'checkpoints'), 'latest').meta.progress;
  assert.ok(resumed.step > saved.step, `training went on from step ${saved.step} (now ${resumed.step})`);
  assert.deepEqual([resumed.epoch + 1, resumed.batchInEpoch], [Number(epoch2), Number(batch2)]);
  assert.ok(Number(epoch2) > Number(epoch) || Number(batch2) > Number(batch), 'continued after the saved batch');
});

test('a second Ctrl-C quits at once with 130, without saving', async () => {
  // Big batches (768 units x 128 captions, ~2 s each here): both signals arrive during the first batch, so
  // both handlers run at its end and the second exits before the loop can save.
  const checkpoints = path.join(tempDir('sat-sigint2-'), 'checkpoints');
  const child = satTrain(['--epochs', '100000', '--batch', '128', '--checkpoint-minutes', '0', '--quiet', '--val-metric', 'loss',
    '--embed-dim', '384', '--units', '768', '--attention-units', '384', '--checkpoints', checkpoints]);
  await waitFor(child, /^config:/m, 120_000);
  await sleep(150);
  child.proc.kill('SIGINT');
  await sleep(150);
  child.proc.kill('SIGINT');
  const done = await exitWithin(child, EXIT_BOUND_MS);
  const log = child.stderr();
  assert.equal(done.code, 130, log);
  assert.match(log, /Second Ctrl-C: quitting without saving\./);
  assert.doesNotMatch(log, /Interrupted: saved/);
  assert.ok(!fs.existsSync(path.join(checkpoints, 'latest.safetensors')), 'nothing saved');
});

test('Ctrl-C during validation: saves after the epoch\'s last batch; --resume validates first, as if never stopped', async () => {
  const task = toyTask(30, 3);
  const config = resolveConfig({}, { batchSize: 8, epochs: 3, learningRate: 0.05, bucketBatches: 2, checkpointMinutes: 0 });
  const metric: ValidateHook = (_m, epoch) => ({ metric: 'CIDEr', value: epoch === 2 ? 2 : 1 });
  const loop = (dir: string, model: ToyModel, extra: object) => trainLoop({ config, model, store: task.store, train: task.examples,
    dev: task.examples.slice(0, 8), checkpointDir: path.join(dir, 'ckpt'), vocabFile: writeToyVocab(dir), quiet: true, log: () => {}, ...extra });

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
  const cut = await loop(dir, new ToyModel(2, 8, task.vocabSize, 5), { validate: interrupting, stop, log: (l: string) => lines.push(l) });
  assert.equal(cut.reason, 'interrupted');
  assert.match(lines.join('\n'), /Interrupted: saved \S+ after the last batch of epoch 2, before its validation\./);
  const ckpt = loadCheckpoint(path.join(dir, 'ckpt'), 'latest');
  const perEpoch = straight.progress.step / 3;
  assert.deepEqual([ckpt.meta.progress.epoch, ckpt.meta.progress.batchInEpoch, ckpt.meta.progress.step], [1, perEpoch, 2 * perEpoch]);

  const fresh = new ToyModel(2, 8, task.vocabSize, 9);
  restoreModel(fresh, ckpt, { optimizer: true });
  const resumed = await loop(dir, fresh, { validate: metric, resume: ckpt.meta.progress });
  assert.equal(resumed.reason, 'completed');
  const summary = (h: typeof straight.progress.history) => h.map((e) => [e.epoch, e.trainLoss, e.valLoss, e.metric?.value, e.steps]);
  assert.deepEqual(summary(resumed.progress.history), summary(straight.progress.history));
  assert.deepEqual(resumed.progress.best, straight.progress.best);
});
