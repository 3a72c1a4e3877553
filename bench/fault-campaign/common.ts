/**
 * What the fault-campaign scenarios share: running `sat` as a child process (timed, killable, under a file-size
 * limit), the seeded random source, how a failure message is judged, and the rows of the one table printed at
 * the end.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** One line of the campaign's table. `ok` is the count of trials that met the promise, out of `trials`. */
export interface Row {
  scenario: string;
  subject: string;
  trials: number | string;
  ok: number | string;
  figures: string;
  failures: string;
}

export interface CampaignContext {
  /** Scratch folder of this campaign (removed at the end unless --keep). */
  work: string;
  seed: number;
  /** How `sat` is started: ['node', '--import', 'tsx', 'src/cli.ts'] or ['node', 'dist/src/cli.js']. */
  sat: string[];
  log: (line: string) => void;
}

export function satCommand(kind: 'src' | 'dist'): string[] {
  return kind === 'dist'
    ? [process.execPath, path.join(REPO, 'dist/src/cli.js')]
    : [process.execPath, '--import', 'tsx', path.join(REPO, 'src/cli.ts')];
}

export interface SatRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
  /** True when the campaign killed it (killAfterMs) before it ended by itself. */
  killed: boolean;
}

export interface SatRunOptions {
  /** SIGKILL the process this many milliseconds after it starts. */
  killAfterMs?: number;
  /** RLIMIT_FSIZE in bytes (rounded down to whole KiB), with SIGXFSZ ignored so writes fail with EFBIG. */
  fileSizeLimit?: number;
  /** Wrap in /usr/bin/time -v, writing its report here (peak RSS). */
  timeReport?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Run `sat ARGS` to its end (or to its kill). The file-size limit goes through bash so that SIGXFSZ can be
 * ignored before exec (an ignored signal stays ignored across exec): `ulimit -f` counts 1024-byte blocks.
 */
export function runSat(ctx: CampaignContext, args: string[], opts: SatRunOptions = {}): Promise<SatRun> {
  let argv = [...ctx.sat, ...args];
  if (opts.timeReport) argv = ['/usr/bin/time', '-v', '-o', opts.timeReport, ...argv];
  if (opts.fileSizeLimit !== undefined) {
    const blocks = Math.max(1, Math.floor(opts.fileSizeLimit / 1024));
    argv = ['bash', '-c', `trap '' XFSZ; ulimit -f ${blocks}; exec "$@"`, 'bash', ...argv];
  }
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env },
      detached: true,
    });
    let stdout = '',
      stderr = '',
      killed = false;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer =
      opts.killAfterMs === undefined
        ? null
        : setTimeout(() => {
            killed = true;
            try {
              process.kill(-child.pid!, 'SIGKILL');
            } catch {
              /* already gone */
            }
          }, opts.killAfterMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout,
        stderr,
        seconds: (performance.now() - t0) / 1000,
        killed: killed && code === null,
      });
    });
  });
}

/** Run `sat ARGS` and throw with its output when it does not exit 0 (for the campaign's own setup steps). */
export async function runSatOk(ctx: CampaignContext, args: string[], opts: SatRunOptions = {}): Promise<SatRun> {
  const r = await runSat(ctx, args, opts);
  if (r.code !== 0)
    throw new Error(`sat ${args.join(' ')} failed (exit ${r.code ?? r.signal}):\n${r.stderr.slice(-3000)}`);
  return r;
}

/**
 * How a failed command told the user: 'clear' is a message without a JavaScript stack trace, 'stack' one with
 * frames ("    at fn (file:line)"), 'silent' nothing at all on stderr, 'signal' a death by signal.
 */
export function judgeFailure(r: SatRun): 'clear' | 'stack' | 'silent' | 'signal' {
  if (r.code === null) return 'signal';
  if (/^\s+at .+(\(|:\d+:\d+)/m.test(r.stderr)) return 'stack';
  return r.stderr.trim() === '' ? 'silent' : 'clear';
}

/** The last line of stderr that says something (the error message), cut to `max` characters. */
export function lastMessage(stderr: string, max = 160): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^at /.test(l) && !/^\^+$/.test(l));
  const line = lines.find((l) => l.startsWith('sat:') || /Error/.test(l)) ?? lines.at(-1) ?? '';
  return line.length > max ? line.slice(0, max - 1) + '…' : line;
}

export function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Every regular file under dir, as paths relative to it, sorted. */
export function listFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else if (e.isFile()) out.push(r);
    }
  };
  walk('');
  return out.sort();
}

export function copyDir(from: string, to: string): void {
  fs.rmSync(to, { recursive: true, force: true });
  fs.cpSync(from, to, { recursive: true });
}

/** Total bytes of the regular files under dir. */
export const dirBytes = (dir: string): number =>
  listFiles(dir).reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0);

/** "a (2), b (1)": counts of equal strings, most frequent first. */
export function tally(items: string[]): string {
  const m = new Map<string, number>();
  for (const it of items) m.set(it, (m.get(it) ?? 0) + 1);
  return [...m]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => (n > 1 ? `${k} (x${n})` : k))
    .join('; ');
}

/** Rows as one aligned text table; the `failures` cell, often long, comes last and is not padded. */
export function formatTable(rows: Row[]): string {
  const head: Row = {
    scenario: 'scenario',
    subject: 'subject',
    trials: 'trials',
    ok: 'ok',
    figures: 'figures',
    failures: 'failures',
  };
  const cols = ['scenario', 'subject', 'trials', 'ok', 'figures'] as const;
  const width = Object.fromEntries(
    cols.map((c) => [c, Math.max(...[head, ...rows].map((r) => String(r[c]).length))]),
  ) as Record<(typeof cols)[number], number>;
  const line = (r: Row) => cols.map((c) => String(r[c]).padEnd(width[c])).join('  ') + '  ' + (r.failures || '-');
  return [line(head), ...rows.map(line)].join('\n');
}
