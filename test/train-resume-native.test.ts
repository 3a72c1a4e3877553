/**
 * Resume of the native model, for real: `sat train` in a child process saves "latest" mid-epoch periodically
 * (--checkpoint-minutes 0.00001: at every batch boundary), and is killed with SIGKILL (kill -9) or interrupted with
 * SIGINT (Ctrl-C) a few saves in (test/helpers/interrupt-child.ts); `--resume` then finishes the run, and its losses
 * (every epoch's training and validation loss), weights and Adam moments are bit-equal to an uninterrupted run's.
 * Dropout is on, so the masks' seeds (from the seed and the optimizer step) must resume too; fp32 and bf16 (bf16
 * required where the CPU has it: test/helpers/capabilities.ts). The run is a tiny synthetic-shapes run with "oracle"
 * features (test/helpers/oracle-run.ts), so no CNN runs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { before, test } from 'node:test';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { bf16Unavailable, type Precision } from '../src/model/index.js';
import { flagOf } from '../src/cli/train.js';
import type { TrainConfig } from '../src/train/config.js';
import { train, type TrainOutcome } from '../src/train/train.js';
import { oracleRun, QUIET_TRAIN } from './helpers/oracle-run.js';
import { testNeeding } from './helpers/capabilities.js';
import { bundledChild } from './helpers/child-bundle.js';

let runDir: string;
before(async () => {
  runDir = await oracleRun('sat-resume-native-');
});

const SETTINGS: Partial<TrainConfig> = {
  epochs: 2,
  batchSize: 4,
  dropout: 0.3,
  attentionLambda: 0.2,
  embedDim: 8,
  units: 16,
  attentionUnits: 8,
  learningRate: 1e-2,
  valMetric: 'loss',
  bucketBatches: 2,
  earlyStopPatience: 0,
  checkpointMinutes: 1e-5,
};
const SAVES_BEFORE_SIGNAL = 3;
const quiet = QUIET_TRAIN;

function cliArgs(settings: Partial<TrainConfig>): string[] {
  return ['--run', runDir, '--quiet', ...Object.entries(settings).flatMap(([k, v]) => [`--${flagOf(k)}`, String(v)])];
}

/** `sat train` in a child that sends itself `signal` after the SAVES_BEFORE_SIGNAL-th save of latest. */
function interruptedChild(signal: 'SIGKILL' | 'SIGINT', checkpoints: string, settings: Partial<TrainConfig>) {
  const child = spawn(
    process.execPath,
    [
      bundledChild('test/helpers/interrupt-child.ts'),
      signal,
      String(SAVES_BEFORE_SIGNAL),
      checkpoints,
      ...cliArgs(settings),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr.on('data', (d) => {
    log += d;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; log: string }>((resolve) => {
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      resolve({ code, signal: sig, log });
    });
  });
}

function summary(o: TrainOutcome) {
  const { history } = o.progress;
  const state = (
    o.model as unknown as {
      optimizerState(): {
        step: number;
        m: Map<string, { data: Float32Array }>;
        v: Map<string, { data: Float32Array }>;
      };
    }
  ).optimizerState();
  const arrays = (m: Map<string, { data: Float32Array }>) => [...m].map(([name, t]) => [name, t.data] as const);
  return {
    losses: history.map((e) => [e.epoch, e.steps, e.trainLoss, e.valLoss]),
    weights: arrays(o.model.parameters()),
    m: arrays(state.m),
    v: arrays(state.v),
    step: state.step,
  };
}

async function resumeExactly(precision: Precision) {
  const settings = { ...SETTINGS, precision };
  const dir = (name: string) => path.join(runDir, `${precision}-${name}`);
  const children = Promise.all([
    interruptedChild('SIGKILL', dir('killed'), settings),
    interruptedChild('SIGINT', dir('interrupted'), settings),
  ]);
  const straight = await train({
    runDir,
    checkpointDir: dir('straight'),
    overrides: { ...settings, checkpointMinutes: 0 },
    ...quiet,
  });
  const expected = summary(straight);
  const stepsPerEpoch = straight.progress.history[0].steps;
  assert.ok(stepsPerEpoch > 2 * SAVES_BEFORE_SIGNAL, `${stepsPerEpoch} batches an epoch`);
  straight.store.close();
  straight.model.dispose();

  const [killed, interrupted] = await children;
  assert.equal(killed.signal, 'SIGKILL', `the first child is killed by SIGKILL; stderr:\n${killed.log}`);
  assert.equal(interrupted.code, 130, `the second child exits with 130 after Ctrl-C; stderr:\n${interrupted.log}`);
  assert.match(interrupted.log, /Interrupted: saved \S+ at epoch 1, batch \d+\/\d+\. Continue with --resume\./);
  for (const name of ['killed', 'interrupted']) {
    const { progress } = loadCheckpoint(dir(name), 'latest').meta;
    assert.equal(progress.epoch, 0, `${name}: stopped in the first epoch`);
    assert.ok(
      progress.batchInEpoch >= SAVES_BEFORE_SIGNAL && progress.batchInEpoch < stepsPerEpoch,
      `${name}: saved mid-epoch (batch ${progress.batchInEpoch} of ${stepsPerEpoch})`,
    );
    const resumed = await train({ runDir, checkpointDir: dir(name), overrides: {}, resume: true, ...quiet });
    assert.equal(resumed.reason, 'completed');
    const got = summary(resumed);
    assert.deepEqual(got.losses, expected.losses, `${name}: every epoch's losses, bit for bit`);
    assert.equal(got.step, expected.step);
    for (const key of ['weights', 'm', 'v'] as const) {
      got[key].forEach(([param, data], i) =>
        assert.ok(
          Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(
            Buffer.from(expected[key][i][1].buffer, expected[key][i][1].byteOffset, expected[key][i][1].byteLength),
          ),
          `${name}: ${key} ${param} bit for bit`,
        ),
      );
    }
    resumed.store.close();
    resumed.model.dispose();
  }
}

test('fp32: killed (SIGKILL) or interrupted (SIGINT) mid-epoch after periodic saves, --resume ends bit-equal to a straight run', async () => {
  await resumeExactly('fp32');
});

const unavailable = bf16Unavailable();
testNeeding(
  'bf16',
  unavailable,
  'bf16: killed or interrupted mid-epoch after periodic saves, --resume ends bit-equal to a straight run',
  async () => {
    await resumeExactly('bf16');
  },
);
