/**
 * Slow uploads against `sat serve`: `good` well-behaved client loops alone for `seconds` (the unattacked
 * figures), then the same with `attackers` more loops that each announce a 1,000,000-byte body, send one byte a
 * second until the server answers or closes, and reconnect. The promise: the well-behaved keep at least 95%
 * success and a p95 within 2x of the unattacked p95.
 */
import sharp from 'sharp';
import { quantile } from '../../src/util/stats.js';
import { tally, type CampaignContext, type Row } from './common.js';
import { header, rawRequest, startServer, stopServer, waitReady } from './soak.js';

export interface AttackOptions {
  model: string;
  seconds: number;
  good: number;
  attackers: number;
}

interface Phase {
  statuses: string[];
  okMs: number[];
  attackerStatuses: string[];
}

async function phase(url: URL, jpeg: Buffer, opts: AttackOptions, attackers: number): Promise<Phase> {
  const end = Date.now() + opts.seconds * 1000;
  const result: Phase = { statuses: [], okMs: [], attackerStatuses: [] };
  const stop = () => Date.now() >= end;
  const goodLoop = async () => {
    while (!stop()) {
      const t0 = performance.now();
      const status = await rawRequest(url, header(url, '/v1/captions?beam=1', 'image/jpeg', jpeg.length), jpeg);
      result.statuses.push(status);
      if (status === '200') result.okMs.push(performance.now() - t0);
    }
  };
  const attackLoop = async () => {
    while (!stop()) {
      const status = await rawRequest(
        url,
        header(url, '/v1/captions', 'image/jpeg', 1_000_000),
        Buffer.alloc(1_000_000, 1),
        { slowMs: 1000, stop },
      );
      if (status !== 'stopped') result.attackerStatuses.push(status);
    }
  };
  await Promise.all([...Array.from({ length: opts.good }, goodLoop), ...Array.from({ length: attackers }, attackLoop)]);
  return result;
}

export async function attackCampaign(ctx: CampaignContext, opts: AttackOptions): Promise<Row[]> {
  const jpeg = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 40, g: 40, b: 200 } } })
    .jpeg()
    .toBuffer();
  ctx.log(
    `attack: ${opts.good} good clients for ${opts.seconds} s alone, then beside ${opts.attackers} slow uploaders`,
  );
  const server = await startServer(ctx, opts.model);
  try {
    await waitReady(server.url, 300);
    const url = new URL(server.url);
    const alone = await phase(url, jpeg, opts, 0);
    const attacked = await phase(url, jpeg, opts, opts.attackers);
    const p95 = (p: Phase) => (p.okMs.length ? quantile(p.okMs, 0.95) : NaN);
    const rate = (p: Phase) => (100 * p.okMs.length) / Math.max(1, p.statuses.length);
    const ratio = p95(attacked) / p95(alone);
    const row = (subject: string, p: Phase, extra: string, ok: boolean | string, failures = ''): Row => ({
      scenario: 'slow attack',
      subject,
      trials: p.statuses.length,
      ok: typeof ok === 'string' ? ok : ok ? 'yes' : 'no',
      figures: `${rate(p).toFixed(1)}% success, p95 ${p95(p).toFixed(0)} ms${extra}; statuses: ${tally(p.statuses)}`,
      failures,
    });
    const kept = rate(attacked) >= 95 && ratio <= 2;
    return [
      row(`${opts.good} good alone`, alone, '', '-'),
      row(
        `${opts.good} good + ${opts.attackers} slow`,
        attacked,
        ` (${ratio.toFixed(2)}x unattacked); attackers got: ${tally(attacked.attackerStatuses) || 'no answer'}`,
        kept,
        kept ? '' : `target >= 95% success and p95 <= 2x: got ${rate(attacked).toFixed(1)}% and ${ratio.toFixed(2)}x`,
      ),
    ];
  } finally {
    await stopServer(server.child);
  }
}
