/**
 * kill -9 at random (seeded) points of `sat features`, `sat train` and `sat export`, then the same command again
 * (`sat train --resume` when a latest checkpoint exists): the result must equal the uninterrupted run's, and
 * what the killed command left must load before the rerun (the feature store opens and every record passes its
 * CRC; the checkpoints load; the bundle folder holds a whole bundle, the previous one or the new one).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Rng } from '../../src/util/rng.js';
import { copyDir, lastMessage, runSat, runSatOk, tally, type CampaignContext, type Row } from './common.js';
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

type Subject = 'features' | 'train' | 'export';

/** One trial's target folder, what to run, and how to judge it after the kill and after the rerun. */
interface KillTarget {
  prepare(dir: string): Promise<void>;
  args(dir: string): string[];
  /** The command that finishes the job (null: the killed command's last checkpoint already holds every epoch). */
  resumeArgs(dir: string): string[] | null;
  afterKill(dir: string): Promise<string[]>;
  /** Files that are no part of the result: a kill -9 mid-write leaves its temporary; the rerun must remove it. */
  strays(dir: string): string[];
  differs(dir: string): string[];
}

/** Atomic writes' temporaries (FILE.tmp-PID) in `dir`. */
const listTemporaries = (dir: string): string[] =>
  fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /\.tmp-\d+$/.test(f)) : [];

function targets(fx: ShapesFixture, previousBundle: string): Record<Subject, KillTarget> {
  const ckpt = (dir: string) => path.join(dir, 'checkpoints');
  return {
    features: {
      prepare: async (dir) => copyDir(fx.prepared, dir),
      args: (dir) => fx.featuresArgs(dir),
      resumeArgs: (dir) => fx.featuresArgs(dir),
      afterKill: async (dir) => featureStoreHealth(storeOf(dir)),
      strays: (dir) => listTemporaries(storeOf(dir)),
      differs: (dir) => featureStoresDiffer(storeOf(dir), storeOf(fx.run)),
    },
    train: {
      prepare: async (dir) => {
        fs.mkdirSync(dir, { recursive: true });
      },
      args: (dir) => fx.trainArgs(ckpt(dir)),
      resumeArgs: (dir) => {
        const latest = path.join(ckpt(dir), 'latest');
        if (!fs.existsSync(`${latest}.json`) && !fs.existsSync(`${latest}.safetensors`)) return fx.trainArgs(ckpt(dir));
        const progress = fs.existsSync(`${latest}.json`)
          ? (
              JSON.parse(fs.readFileSync(`${latest}.json`, 'utf8')) as {
                progress: { epoch: number; batchInEpoch: number };
              }
            ).progress
          : null;
        return progress && progress.epoch >= fx.epochs && progress.batchInEpoch === 0
          ? null
          : [...fx.trainArgs(ckpt(dir)), '--resume'];
      },
      afterKill: async (dir) => checkpointHealth(ckpt(dir)),
      strays: (dir) => strayFiles(ckpt(dir), 'checkpoints'),
      differs: (dir) => checkpointsDiffer(ckpt(dir), fx.checkpoints),
    },
    export: {
      // The folder holds an earlier (fp16) bundle: a killed export must leave it, or the whole new one, loadable.
      prepare: async (dir) => copyDir(previousBundle, dir),
      args: (dir) => fx.exportArgs(dir),
      resumeArgs: (dir) => fx.exportArgs(dir),
      afterKill: async (dir) => bundleHealth(dir),
      strays: (dir) => strayFiles(dir, 'bundle'),
      differs: (dir) => bundlesDiffer(dir, fx.bundle),
    },
  };
}

/** Kill the command `at` seconds in, judge what it left, run it again and compare: the problems found. */
async function killTrial(
  ctx: CampaignContext,
  t: KillTarget,
  dir: string,
  at: number,
): Promise<{ killed: boolean; trial: string[]; strays: number }> {
  const killed = await runSat(ctx, t.args(dir), { killAfterMs: at * 1000 });
  const trial: string[] = (await t.afterKill(dir)).map((p) => `after kill: ${p.replaceAll(dir, '<dir>')}`);
  const strays = t.strays(dir).length;
  if (!killed.killed && killed.code !== 0)
    trial.push(`ended before the kill with exit ${killed.code ?? killed.signal}: ${lastMessage(killed.stderr)}`);
  const again = killed.killed ? t.resumeArgs(dir) : null;
  const resumed = again ? await runSat(ctx, again) : null;
  if (resumed && resumed.code !== 0)
    trial.push(`rerun exit ${resumed.code ?? resumed.signal}: ${lastMessage(resumed.stderr)}`);
  else {
    trial.push(...t.differs(dir).map((d) => `after rerun: ${d}`));
    trial.push(...t.strays(dir).map((f) => `after rerun: left over: ${f}`));
  }
  return { killed: killed.killed, trial, strays };
}

export async function killCampaign(ctx: CampaignContext, fx: ShapesFixture, n: number): Promise<Row[]> {
  const rng = new Rng(ctx.seed + 1);
  const previousBundle = path.join(ctx.work, 'kill', 'previous-bundle');
  await runSatOk(ctx, [...fx.exportArgs(previousBundle), '--dtype', 'fp16']);
  const all = targets(fx, previousBundle);
  const rows: Row[] = [];
  for (const subject of ['features', 'train', 'export'] as const) {
    const t = all[subject];
    const failures: string[] = [];
    let ok = 0,
      finishedFirst = 0,
      temporaries = 0;
    const points: number[] = [];
    for (let i = 0; i < n; i++) {
      const dir = path.join(ctx.work, 'kill', `${subject}-${i}`);
      await t.prepare(dir);
      const at = (0.02 + 0.96 * rng.next()) * fx.seconds[subject];
      points.push(at);
      const { killed, trial, strays } = await killTrial(ctx, t, dir, at).catch((e: Error) => ({
        killed: true,
        trial: [`campaign error: ${e.message.split('\n')[0]}`],
        strays: 0,
      }));
      if (!killed) finishedFirst++;
      temporaries += strays;
      if (trial.length === 0) ok++;
      failures.push(...trial);
      ctx.log(
        `kill ${subject} #${i} at ${at.toFixed(2)} s${killed ? '' : ' (had finished)'}: ${trial.length ? trial.join('; ') : 'ok'}`,
      );
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const diffs = failures.filter((f) => f.startsWith('after rerun')).length;
    rows.push({
      scenario: 'kill -9',
      subject: `sat ${subject}`,
      trials: n,
      ok,
      figures:
        `kills at ${Math.min(...points).toFixed(1)}-${Math.max(...points).toFixed(1)} s of ${fx.seconds[subject].toFixed(1)} s` +
        `${finishedFirst ? ` (${finishedFirst} had finished)` : ''}; ${diffs} difference(s) after rerun; ` +
        `${failures.filter((f) => f.startsWith('after kill')).length} unloadable after kill; ` +
        `${temporaries} temporary file(s) left by the kills, ${failures.filter((f) => f.includes('left over')).length} after rerun`,
      failures: tally(failures),
    });
  }
  return rows;
}
