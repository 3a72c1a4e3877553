/**
 * A full disk at random (seeded) points of `sat features`, `sat train --resume` and `sat export`, each starting
 * from earlier good files (a store with the train split only, checkpoints of half the epochs, an fp16 bundle):
 *
 *   fsize  RLIMIT_FSIZE (bash `ulimit -f` with SIGXFSZ ignored): a write that starts past the limit fails with
 *          EFBIG, one that crosses it is cut short; half of the limits are drawn log-uniformly between 1 KiB and
 *          1.1x the largest file the command writes, half 1 B-4 KiB short of one of its files' sizes.
 *   tmpfs  the output folder on a tmpfs (mount -t tmpfs, root only) whose size leaves a random part of the
 *          room the command needs: writes fail with ENOSPC.
 *
 * Each trial ends one of three ways, and only the first two keep the promise:
 *   completed  exit 0 and the result equals the uninterrupted run's (the limit was never reached);
 *   refused    a non-zero exit with a message and no stack trace, every file in place still loads, and the same
 *              command without the limit then finishes with the uninterrupted run's result;
 *   failed     anything else: exit 0 with files that differ or do not load, a stack trace, broken files left.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Rng } from '../../src/util/rng.js';
import {
  copyDir,
  dirBytes,
  judgeFailure,
  lastMessage,
  listFiles,
  runSat,
  runSatOk,
  tally,
  type CampaignContext,
  type Row,
  type SatRun,
} from './common.js';
import { storeOf, type ShapesFixture } from './fixture.js';
import {
  bundleHealth,
  bundlesDiffer,
  checkpointHealth,
  checkpointsDiffer,
  featureStoreHealth,
  featureStoresDiffer,
  strayFiles,
} from './inspect.js';

export type DiskMode = 'fsize' | 'tmpfs';
type Subject = 'features' | 'train' | 'export';

interface DiskTarget {
  /** Fill `dir` (the folder that will be on the tmpfs) with the earlier good files. */
  prepare(dir: string): void;
  args(dir: string): string[];
  /** The command after the disk is freed. */
  rerunArgs(dir: string): string[];
  health(dir: string): Promise<string[]>;
  differs(dir: string): string[];
  /** Bytes of the finished output (sizes the tmpfs before the limit is set). */
  outputBytes: number;
  /** The largest file the command writes: the range of the RLIMIT_FSIZE limits drawn. */
  largestFile: number;
  /** Sizes of the files the command writes: half of the limits fall just below one of them (the end of a write). */
  fileSizes: number[];
  /** Free bytes the command needs on top of the earlier files in `dir`: the range of the tmpfs room drawn. */
  roomNeeded(dir: string): number;
}

const sizes = (dir: string) => listFiles(dir).map((f) => fs.statSync(path.join(dir, f)).size);
const largest = (dir: string) => Math.max(...sizes(dir));

async function diskTargets(ctx: CampaignContext, fx: ShapesFixture): Promise<Record<Subject, DiskTarget>> {
  const base = path.join(ctx.work, 'diskfull');
  // Earlier good files of each command.
  const partialRun = path.join(base, 'partial-run');
  copyDir(fx.prepared, partialRun);
  await runSatOk(ctx, [...fx.featuresArgs(partialRun), '--split', 'train']);
  const halfCheckpoints = path.join(base, 'half-checkpoints');
  await runSatOk(ctx, fx.trainArgs(halfCheckpoints, Math.max(1, Math.floor(fx.epochs / 2))));
  const previousBundle = path.join(base, 'previous-bundle');
  await runSatOk(ctx, [...fx.exportArgs(previousBundle), '--dtype', 'fp16']);
  const resume = (dir: string) => [...fx.trainArgs(dir), '--resume'];
  return {
    features: {
      prepare: (dir) => copyDir(partialRun, dir),
      args: (dir) => fx.featuresArgs(dir),
      rerunArgs: (dir) => fx.featuresArgs(dir),
      health: async (dir) => featureStoreHealth(storeOf(dir)),
      differs: (dir) => featureStoresDiffer(storeOf(dir), storeOf(fx.run)),
      outputBytes: dirBytes(storeOf(fx.run)),
      largestFile: largest(storeOf(fx.run)),
      fileSizes: sizes(storeOf(fx.run)),
      roomNeeded: (dir) => dirBytes(storeOf(fx.run)) - dirBytes(storeOf(dir)), // the store only grows
    },
    train: {
      prepare: (dir) => copyDir(halfCheckpoints, dir),
      args: resume,
      rerunArgs: resume,
      health: async (dir) => [
        ...checkpointHealth(dir),
        ...strayFiles(dir, 'checkpoints').map((f) => `left over: ${f}`),
      ],
      differs: (dir) => checkpointsDiffer(dir, fx.checkpoints),
      outputBytes: dirBytes(fx.checkpoints),
      largestFile: largest(fx.checkpoints),
      fileSizes: sizes(fx.checkpoints),
      roomNeeded: () => largest(fx.checkpoints), // a new checkpoint beside the old one until the rename
    },
    export: {
      prepare: (dir) => copyDir(previousBundle, dir),
      args: (dir) => fx.exportArgs(dir),
      rerunArgs: (dir) => fx.exportArgs(dir),
      health: async (dir) => [...(await bundleHealth(dir)), ...strayFiles(dir, 'bundle').map((f) => `left over: ${f}`)],
      differs: (dir) => bundlesDiffer(dir, fx.bundle),
      outputBytes: dirBytes(fx.bundle),
      largestFile: largest(fx.bundle),
      fileSizes: sizes(fx.bundle),
      roomNeeded: (dir) => Math.max(dirBytes(fx.bundle) - dirBytes(dir), largest(fx.bundle)),
    },
  };
}

/** Whether this process may mount a tmpfs (root in a container that allows it). */
export function canMountTmpfs(dir: string): boolean {
  fs.mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'ignore' });
    execFileSync('umount', [dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const usedBytes = (dir: string) => {
  const s = fs.statfsSync(dir);
  return (s.blocks - s.bfree) * s.bsize;
};
const setTmpfsSize = (dir: string, bytes: number) =>
  execFileSync('mount', ['-o', `remount,size=${Math.ceil(bytes / 4096) * 4096}`, dir], { stdio: 'ignore' });

interface Trial {
  outcome: 'completed' | 'refused' | 'failed';
  problems: string[];
  broken: number;
  run: SatRun;
  limit: string;
}

/** Run the command once against the limit; `mount` is the trial's folder (a tmpfs mount point in tmpfs mode). */
async function diskTrial(ctx: CampaignContext, t: DiskTarget, mode: DiskMode, mount: string, rng: Rng): Promise<Trial> {
  const dir = path.join(mount, 'target'); // inside the mount point, which cannot itself be removed or replaced
  fs.mkdirSync(mount, { recursive: true });
  const roomy = Math.ceil((4 * t.outputBytes + 4 * 2 ** 20) / 4096) * 4096;
  if (mode === 'tmpfs')
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${roomy}`, 'tmpfs', mount], { stdio: 'ignore' });
  try {
    t.prepare(dir);
    let limit: string, run: SatRun;
    if (mode === 'fsize') {
      // Half log-uniform over all sizes, half 1 B-4 KiB short of one file's size (a write that ends past the limit).
      const file = t.fileSizes[rng.int(t.fileSizes.length)];
      const bytes =
        rng.next() < 0.5
          ? Math.round(1024 * Math.pow((1.1 * t.largestFile) / 1024, rng.next()))
          : Math.max(1024, file - 1 - rng.int(4096));
      limit = `fsize ${(bytes / 1024).toFixed(0)} KiB`;
      run = await runSat(ctx, t.args(dir), { fileSizeLimit: bytes });
    } else {
      const room = Math.round(rng.next() * 1.2 * t.roomNeeded(dir));
      setTmpfsSize(mount, usedBytes(mount) + room);
      limit = `tmpfs +${(room / 1024).toFixed(0)} KiB`;
      run = await runSat(ctx, t.args(dir));
      setTmpfsSize(mount, roomy);
    }
    const broken = (await t.health(dir)).map((p) => p.replaceAll(dir, '<dir>'));
    const problems = broken.map((p) => `left in place: ${p}`);
    if (run.code === 0) {
      problems.push(...t.differs(dir).map((d) => `exit 0 but ${d}`)); // the worst case: a silent loss
      return { outcome: problems.length ? 'failed' : 'completed', problems, broken: broken.length, run, limit };
    }
    const how = judgeFailure(run);
    if (how !== 'clear')
      problems.push(
        how === 'stack'
          ? `stack trace (${lastMessage(run.stderr, 100)})`
          : `${how} failure (exit ${run.code ?? run.signal})`,
      );
    const rerun = await runSat(ctx, t.rerunArgs(dir));
    if (rerun.code !== 0)
      problems.push(`rerun without the limit: exit ${rerun.code ?? rerun.signal} (${lastMessage(rerun.stderr, 100)})`);
    else problems.push(...t.differs(dir).map((d) => `rerun without the limit: ${d}`));
    return { outcome: problems.length ? 'failed' : 'refused', problems, broken: broken.length, run, limit };
  } finally {
    if (mode === 'tmpfs') execFileSync('umount', [mount], { stdio: 'ignore' });
  }
}

export async function diskFullCampaign(
  ctx: CampaignContext,
  fx: ShapesFixture,
  n: number,
  modes: DiskMode[],
): Promise<Row[]> {
  const rng = new Rng(ctx.seed + 2);
  const all = await diskTargets(ctx, fx);
  const rows: Row[] = [];
  for (const subject of ['features', 'train', 'export'] as const) {
    const trials: Trial[] = [];
    for (let i = 0; i < n; i++) {
      const mode = modes[i % modes.length];
      const dir = path.join(ctx.work, 'diskfull', `${subject}-${i}`);
      const trial = await diskTrial(ctx, all[subject], mode, dir, rng).catch((e: Error): Trial => ({
        outcome: 'failed',
        problems: [`campaign error: ${e.message.split('\n')[0]}`],
        broken: 0,
        limit: '?',
        run: { code: null, signal: null, stdout: '', stderr: '', seconds: 0, killed: false },
      }));
      trials.push(trial);
      ctx.log(
        `disk full ${subject} #${i} (${trial.limit}): exit ${trial.run.code ?? trial.run.signal}, ${trial.outcome}` +
          `${trial.run.code !== 0 ? `, said "${lastMessage(trial.run.stderr, 200)}"` : ''}${trial.problems.length ? `: ${trial.problems.join('; ')}` : ''}`,
      );
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const count = (o: Trial['outcome']) => trials.filter((t) => t.outcome === o).length;
    rows.push({
      scenario: 'disk full',
      subject: `sat ${subject}`,
      trials: n,
      ok: count('completed') + count('refused'),
      figures:
        `${count('completed')} completed, ${count('refused')} refused cleanly, ${count('failed')} failed; ` +
        `${trials.reduce((s, t) => s + t.broken, 0)} file(s) left unreadable/stray`,
      failures: tally(trials.flatMap((t) => t.problems)), // each trial's message is in the log (stderr)
    });
  }
  return rows;
}
