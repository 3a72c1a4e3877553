/**
 * `sat --help`, the executable itself (one child process: a user mistake is exit status 2 with one line and no
 * stack trace), and `sat train`'s flags, which are generated from the training config's fields.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import train, { configFromFlags, flagOf, OLD_TRAIN_FLAGS } from '../src/cli/train.js';
import { parseCommandArgs, commandHelp } from '../src/cli/command.js';
import { DEFAULT_TRAIN_CONFIG } from '../src/train/config.js';
import { UserError } from '../src/util/errors.js';
import { sat } from './helpers/cli-run.js';
import { bundledChild } from './helpers/child-bundle.js';

test('sat --help lists the commands; the executable exits 2 on a mistake, with one line and no stack trace', async () => {
  const help = await sat(['--help']);
  for (const name of ['prepare', 'features', 'train', 'caption', 'eval', 'score', 'demo', 'bench'])
    assert.match(help, new RegExp(`^  ${name} `, 'm'));
  const bad = spawnSync(
    process.execPath,
    [bundledChild('src/cli.ts'), 'train', '--run', 'runs/none', '--batch-size', 'many'],
    { encoding: 'utf8' },
  );
  assert.equal(bad.status, 2, bad.stderr);
  assert.equal(bad.stderr, 'sat: --batch-size must be an integer >= 1, got "many".\n');
});

test('sat train: one flag per config field, in kebab-case, and nothing else that sets the config', () => {
  assert.equal(flagOf('batchSize'), 'batch-size');
  assert.equal(flagOf('featureCacheMB'), 'feature-cache-mb');
  assert.equal(flagOf('lrStepEpochs'), 'lr-step-epochs');
  const visible = Object.keys(train.options).filter((f) => !train.options[f].hidden);
  for (const field of Object.keys(DEFAULT_TRAIN_CONFIG))
    assert.ok(visible.includes(flagOf(field)), `--${flagOf(field)} for ${field}`);
  const help = commandHelp(train);
  for (const old of Object.keys(OLD_TRAIN_FLAGS))
    assert.doesNotMatch(help, new RegExp(`--${old} `), `old --${old} is not advertised`);
  const values = parseCommandArgs(train, [
    '--batch-size',
    '32',
    '--learning-rate',
    '3e-4',
    '--lr-schedule',
    'step',
    '--feature-cache-mb',
    '0',
  ]).values;
  assert.deepEqual(configFromFlags(values), {
    batchSize: 32,
    learningRate: 3e-4,
    lrSchedule: 'step',
    featureCacheMB: 0,
  });
  assert.throws(
    () => configFromFlags({ 'clip-norm': '-1' }),
    (e) => e instanceof UserError && /--clip-norm must be a number >= 0/.test(e.message),
  );
  assert.throws(() => configFromFlags({ 'val-metric': 'meteor' }), /"valMetric" must be one of cider, bleu4, loss/);
});

test('sat train: the old spellings work for one release, each with one line naming its new flag', () => {
  const lines: string[] = [];
  const old = [
    '--batch',
    '8',
    '--lr',
    '0.01',
    '--clip',
    '1',
    '--bucket',
    '0',
    '--val-max',
    '5',
    '--max-length',
    '12',
    '--cache-mb',
    '1',
    '--early-stop',
    '2',
    '--lr-factor',
    '0.25',
    '--lr-step',
    '3',
  ];
  const patch = configFromFlags(parseCommandArgs(train, old).values, (l) => lines.push(l));
  assert.deepEqual(patch, {
    batchSize: 8,
    learningRate: 0.01,
    clipNorm: 1,
    bucketBatches: 0,
    maxValExamples: 5,
    maxCaptionLength: 12,
    featureCacheMB: 1,
    earlyStopPatience: 2,
    lrDecayFactor: 0.25,
    lrStepEpochs: 3,
  });
  assert.equal(lines.length, Object.keys(OLD_TRAIN_FLAGS).length);
  assert.ok(
    lines.includes('sat train: --lr is now --learning-rate (the old name works until the next release).'),
    lines.join('\n'),
  );
  assert.throws(
    () => configFromFlags({ batch: '8', 'batch-size': '16' }, () => {}),
    (e) => e instanceof UserError && /give only --batch-size/.test(e.message),
  );
});
