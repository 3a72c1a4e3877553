/**
 * One writer per folder (src/util/folder-lock.ts, used by `sat features` and `sat train`): a trained checkpoints
 * folder is refused without --resume or --force, a live holder is refused by pid, a dead holder's lock is taken
 * over, and of several processes racing to take over the same dead holder's lock exactly one wins.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, test } from 'node:test';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { lockFolder } from '../src/util/folder-lock.js';
import { bundledChild } from './helpers/child-bundle.js';
import { sat } from './helpers/cli-run.js';
import { oracleRun, tinyTrainFlags } from './helpers/oracle-run.js';
import { tempDir } from './helpers/train-fixture.js';

let run: string;
const TINY = tinyTrainFlags(8);

before(async () => {
  run = await oracleRun('sat-lock-', 16);
});

/** The pid of a process that has exited (a lock left by kill -9). */
const deadPid = () => spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid!;

test('sat train refuses a folder holding checkpoints unless --resume or --force; --force starts over', async () => {
  const checkpoints = path.join(run, 'checkpoints');
  await sat(['train', '--run', run, ...TINY, '--epochs', '2']);
  const trained = fs.readFileSync(path.join(checkpoints, 'best.safetensors'));
  await assert.rejects(
    sat(['train', '--run', run, ...TINY, '--epochs', '1']),
    (e: Error) =>
      e.message.includes(`${checkpoints} already holds checkpoints (2 epochs trained, saved `) &&
      /latest\.safetensors, best\.safetensors\. Continue that run with --resume, train into another folder with --checkpoints DIR, or pass --force/.test(
        e.message,
      ),
  );
  assert.deepEqual(fs.readFileSync(path.join(checkpoints, 'best.safetensors')), trained, 'the refusal touched nothing');
  await assert.rejects(sat(['train', '--run', run, ...TINY, '--resume', '--force']), /use one of them/);

  await sat(['train', '--run', run, ...TINY, '--epochs', '1', '--force']);
  assert.equal(loadCheckpoint(checkpoints, 'latest').meta.progress.epoch, 1);
  assert.equal(loadCheckpoint(checkpoints, 'best').meta.progress.epoch, 1, 'best belongs to the new run');
  assert.equal(fs.existsSync(path.join(checkpoints, 'writer.lock')), false, 'the lock is released');
});

test("sat train refuses a checkpoints folder locked by a live process and takes over a dead one's lock", async () => {
  const checkpoints = path.join(tempDir('sat-lock-live-'), 'checkpoints');
  fs.mkdirSync(checkpoints);
  const lock = path.join(checkpoints, 'writer.lock');
  fs.writeFileSync(
    lock,
    JSON.stringify({
      pid: process.ppid,
      host: os.hostname(),
      token: 'abc',
      command: 'sat train',
      since: '2026-01-01T00:00:00Z',
    }),
  );
  await assert.rejects(
    sat(['train', '--run', run, ...TINY, '--epochs', '1', '--checkpoints', checkpoints]),
    new RegExp(
      `is being written by another \`sat train\` \\(pid ${process.ppid}, since 2026-01-01T00:00:00Z\\)\\. Wait for it`,
    ),
  );
  fs.writeFileSync(lock, JSON.stringify({ pid: process.ppid, host: 'elsewhere.example', token: 'abc' }));
  await assert.rejects(
    sat(['train', '--run', run, ...TINY, '--epochs', '1', '--checkpoints', checkpoints]),
    /on host elsewhere\.example .*delete the lock file/,
  );
  fs.writeFileSync(lock, JSON.stringify({ pid: deadPid(), host: os.hostname(), token: 'abc' }));
  await sat(['train', '--run', run, ...TINY, '--epochs', '1', '--checkpoints', checkpoints]);
  assert.equal(loadCheckpoint(checkpoints, 'latest').meta.progress.epoch, 1);
  assert.deepEqual(
    fs.readdirSync(checkpoints).filter((f) => f.includes('lock')),
    [],
    'no lock or marker is left',
  );
});

test('a takeover interrupted by kill -9 (its marker left behind) does not block the folder', () => {
  const dir = tempDir('sat-lock-marker-');
  fs.writeFileSync(
    path.join(dir, 'writer.lock'),
    JSON.stringify({ pid: deadPid(), host: os.hostname(), token: 'stale1' }),
  );
  fs.writeFileSync(
    path.join(dir, 'writer.lock.takeover-stale1'),
    JSON.stringify({ pid: deadPid(), host: os.hostname(), token: 'taker' }),
  );
  const lock = lockFolder(dir, { command: 'test' });
  assert.match(fs.readFileSync(lock.file, 'utf8'), new RegExp(`"pid":${process.pid}`));
  lock.release();
  lock.release();
  assert.deepEqual(fs.readdirSync(dir), []);
});

test('several processes that all see the same dead holder: exactly one takes the lock over', async () => {
  const child = bundledChild('test/helpers/folder-lock-child.ts');
  const dir = tempDir('sat-lock-race-');
  const signals = tempDir('sat-lock-signals-');
  fs.writeFileSync(
    path.join(dir, 'writer.lock'),
    JSON.stringify({ pid: deadPid(), host: os.hostname(), token: 'dead' }),
  );
  // Every child loads, says "ready", and waits for "go": they all try at the same moment, and a winner holds the
  // lock until every child has answered, so "exactly one won" cannot come from turns taken one after another.
  const children = Array.from({ length: 8 }, () => {
    const p = spawn(process.execPath, [child, dir, signals], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines: string[] = [];
    let wake = () => {};
    p.stdout.setEncoding('utf8');
    let buffered = '';
    p.stdout.on('data', (d: string) => {
      buffered += d;
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      lines.push(...parts);
      wake();
    });
    const exited = new Promise<void>((resolve) =>
      p.on('close', () => {
        wake();
        resolve();
      }),
    );
    const line = async (k: number) => {
      while (lines.length <= k) {
        if (p.exitCode !== null) throw new Error(`child ${p.pid} exited after ${JSON.stringify(lines)}`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 200);
        });
      }
      return lines[k];
    };
    return { line, exited };
  });
  for (const c of children) assert.equal(await c.line(0), 'ready');
  fs.writeFileSync(path.join(signals, 'go'), '');
  const outputs = await Promise.all(children.map((c) => c.line(1)));
  fs.writeFileSync(path.join(signals, 'done'), '');
  await Promise.all(children.map((c) => c.exited));
  assert.equal(outputs.filter((o) => o === 'won').length, 1, JSON.stringify(outputs));
  for (const o of outputs.filter((x) => x !== 'won'))
    assert.match(o, /^refused: .* is being written by another `race` \(pid \d+/);
  assert.deepEqual(fs.readdirSync(dir), [], 'the winner released its lock; no marker or temporary file is left');
});
