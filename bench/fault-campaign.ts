/**
 * The fault campaign: what `sat` promises under faults, tried at random (seeded) points and
 * printed as one table. Not part of `npm test`: without the COCO part a run takes about 25 minutes on two cores;
 * COCO at 1/8..1 takes hours.
 *
 *   kill      kill -9 during sat features / train / export, then the same command again: equal results
 *   diskfull  a full disk (RLIMIT_FSIZE and a small tmpfs) during the same commands: earlier files still load,
 *             the error is one clear line, and the command finishes once there is room
 *   soak      sat serve at concurrency 16 under good, bad, oversized, slow-upload, malformed-multipart and
 *             disconnecting clients: success rate, p95, statuses by kind, RSS and fd slopes, 500s
 *   attack    8 well-behaved clients alone, then beside 64 slow uploaders (a byte a second): success and p95
 *   coco      a generated COCO-format dataset (123,287 images x 5 captions at --scale 1) through sat prepare,
 *             sat features and one training epoch: wall time, throughput and peak RSS per size
 *
 * Usage: node --import tsx bench/fault-campaign.ts [--only kill,diskfull,soak,attack,coco] [--n 5] [--seed 1]
 *          [--images 300] [--epochs 12] [--disk fsize,tmpfs] [--soak-seconds 600] [--attack-seconds 60] [--attackers 64] [--model PATH]
 *          [--scale 1/8,1/4,1/2,1] [--work DIR] [--keep] [--sat src|dist] [--quiet]
 *          [--serve-args "FLAGS"] (more flags for the soak's sat serve, e.g. "--image-cache-mb 50")
 * Exit status 0 when every row kept its promise, 1 when any row lists failures, 2 for a bad flag.
 * docs/benchmarks.md ("The fault campaign") says how to read the table.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { formatTable, satCommand, type CampaignContext, type Row } from './fault-campaign/common.js';
import { attackCampaign } from './fault-campaign/attack.js';
import { cocoCampaign, parseScales } from './fault-campaign/coco.js';
import { canMountTmpfs, diskFullCampaign, type DiskMode } from './fault-campaign/diskfull.js';
import { makeShapesFixture, type ShapesFixture } from './fault-campaign/fixture.js';
import { killCampaign } from './fault-campaign/kill.js';
import { soakCampaign } from './fault-campaign/soak.js';

const SCENARIOS = ['kill', 'diskfull', 'soak', 'attack', 'coco'] as const;
type Scenario = (typeof SCENARIOS)[number];

const { values } = parseArgs({
  options: {
    only: { type: 'string', default: SCENARIOS.join(',') },
    n: { type: 'string', default: '5' },
    seed: { type: 'string', default: '1' },
    images: { type: 'string', default: '300' },
    epochs: { type: 'string', default: '12' },
    disk: { type: 'string', default: 'fsize,tmpfs' },
    'soak-seconds': { type: 'string', default: '600' },
    'attack-seconds': { type: 'string', default: '60' },
    attackers: { type: 'string', default: '64' },
    concurrency: { type: 'string', default: '16' },
    'serve-args': { type: 'string', default: '' },
    model: { type: 'string' },
    scale: { type: 'string', default: '1/8,1/4,1/2,1' },
    work: { type: 'string' },
    keep: { type: 'boolean', default: false },
    sat: { type: 'string', default: 'src' },
    quiet: { type: 'boolean', default: false },
  },
});

function fail(message: string): never {
  console.error(`fault-campaign: ${message}`);
  process.exit(2);
}
const int = (name: string, min: number) => {
  const v = Number(values[name as keyof typeof values]);
  if (!Number.isInteger(v) || v < min)
    fail(`--${name} must be an integer >= ${min}, got "${String(values[name as keyof typeof values])}".`);
  return v;
};

const only = String(values.only)
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
for (const s of only)
  if (!SCENARIOS.includes(s as Scenario)) fail(`--only: unknown scenario "${s}"; choose from ${SCENARIOS.join(', ')}.`);
if (values.sat !== 'src' && values.sat !== 'dist')
  fail(`--sat must be src (node --import tsx src/cli.ts) or dist (node dist/src/cli.js), got "${values.sat}".`);
const modes = String(values.disk)
  .split(',')
  .map((s) => s.trim()) as DiskMode[];
for (const m of modes)
  if (m !== 'fsize' && m !== 'tmpfs') fail(`--disk: unknown mode "${m}"; use fsize, tmpfs or both.`);
let scales: ReturnType<typeof parseScales> = [];
try {
  if (only.includes('coco')) scales = parseScales(String(values.scale));
} catch (e) {
  fail((e as Error).message);
}
if (scales.length === 0 && only.includes('coco')) fail('--scale: give sizes such as 1/8,1/4,1/2,1.');

const work = values.work ? path.resolve(values.work) : fs.mkdtempSync(path.join(os.tmpdir(), 'sat-fault-campaign-'));
fs.mkdirSync(work, { recursive: true });
const ctx: CampaignContext = {
  work,
  seed: int('seed', 0),
  sat: satCommand(values.sat),
  log: values.quiet ? () => {} : (line) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`),
};

/** The uninterrupted commands run twice: the references every trial is compared with must be reproducible. */
function baselineRow(fx: ShapesFixture): Row {
  const subjects = ['features', 'train', 'export'] as const;
  const differ = subjects.filter((s) => fx.repeatDiffers[s].length > 0);
  return {
    scenario: 'baseline',
    subject: 'uninterrupted x2',
    trials: subjects.length,
    ok: subjects.length - differ.length,
    figures: subjects.map((s) => `${s} ${fx.seconds[s].toFixed(1)} s`).join(', '),
    failures: differ.map((s) => `${s}: ${fx.repeatDiffers[s].join(', ')}`).join('; '),
  };
}

const rows: Row[] = [];
const started = performance.now();
try {
  let fixture: ShapesFixture | null = null;
  const shapes = async (): Promise<ShapesFixture> => {
    if (fixture) return fixture;
    fixture = await makeShapesFixture(ctx, { images: int('images', 20), epochs: int('epochs', 2) });
    rows.push(baselineRow(fixture));
    return fixture;
  };
  const runScenario = async (scenario: Scenario): Promise<Row[]> => {
    const model = async () => (values.model ? path.resolve(values.model) : (await shapes()).checkpoints);
    switch (scenario) {
      case 'kill':
        return killCampaign(ctx, await shapes(), int('n', 1));
      case 'diskfull': {
        let use = modes;
        if (use.includes('tmpfs') && !canMountTmpfs(path.join(work, 'mount-check'))) {
          ctx.log('disk full: cannot mount a tmpfs here (needs root); using RLIMIT_FSIZE only');
          use = use.filter((m) => m !== 'tmpfs');
        }
        return use.length > 0 ? diskFullCampaign(ctx, await shapes(), int('n', 1), use) : [];
      }
      case 'soak':
        return soakCampaign(ctx, {
          model: await model(),
          seconds: int('soak-seconds', 5),
          concurrency: int('concurrency', 1),
          serveArgs: values['serve-args'].split(/\s+/).filter(Boolean),
        });
      case 'attack':
        return attackCampaign(ctx, {
          model: await model(),
          seconds: int('attack-seconds', 5),
          good: 8,
          attackers: int('attackers', 1),
        });
      case 'coco':
        return cocoCampaign(ctx, scales);
    }
  };
  for (const scenario of SCENARIOS.filter((s) => only.includes(s))) {
    // A scenario that cannot run (a server that does not start, a setup command that fails) is a row, not the end.
    try {
      rows.push(...(await runScenario(scenario)));
    } catch (e) {
      ctx.log(`${scenario}: ${(e as Error).stack ?? String(e)}`);
      rows.push({
        scenario,
        subject: '(could not run)',
        trials: 0,
        ok: 0,
        figures: '-',
        failures: (e as Error).message.split('\n').slice(0, 3).join(' ').slice(0, 300),
      });
    }
  }
} finally {
  if (!values.keep) fs.rmSync(work, { recursive: true, force: true });
  else ctx.log(`kept ${work}`);
}
console.log(formatTable(rows));
console.log(`(${((performance.now() - started) / 60000).toFixed(1)} min, seed ${ctx.seed}, sat from ${values.sat})`);
// Exit 1 when any row names a failure: a broken promise, or a scenario that could not run.
if (rows.some((r) => r.failures !== '')) process.exitCode = 1;
