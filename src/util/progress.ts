/**
 * A terminal progress bar for anything that takes more than a few seconds.
 * Writes to stderr so `--json` output on stdout stays machine-readable. When stderr is not a
 * TTY (CI logs, pipes) it prints a plain line at most every `plainEveryMs`, never a carriage return storm.
 */
export interface ProgressOptions {
  total: number;
  label: string;
  unit?: string; // "img", "tok", "batch" ... used in the rate ("12.3 img/s")
  stream?: NodeJS.WriteStream;
  plainEveryMs?: number;
  silent?: boolean;
  /** Units already done before this bar started (a resumed job): shown in the count, left out of the rate. */
  initial?: number;
}

export class ProgressBar {
  private done = 0;
  private readonly start = Date.now();
  private lastDraw = 0;
  private extra = '';
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;

  constructor(private readonly opts: ProgressOptions) {
    this.done = opts.initial ?? 0;
    this.stream = opts.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY);
  }

  /** Advance by `n` units; `info` is shown after the bar (e.g. "loss 2.31"). */
  tick(n = 1, info?: string): void {
    this.done += n;
    if (info !== undefined) this.extra = info;
    const now = Date.now();
    const every = this.tty ? 100 : (this.opts.plainEveryMs ?? 10_000);
    if (now - this.lastDraw >= every || this.done >= this.opts.total) {
      this.lastDraw = now;
      this.draw();
    }
  }

  /** Units per second since the bar started. */
  rate(): number {
    const s = (Date.now() - this.start) / 1000;
    return s > 0 ? (this.done - (this.opts.initial ?? 0)) / s : 0;
  }

  finish(info?: string): void {
    if (info !== undefined) this.extra = info;
    this.draw();
    if (this.tty && !this.opts.silent) this.stream.write('\n');
  }

  private draw(): void {
    if (this.opts.silent) return;
    const { total, label, unit = 'it' } = this.opts;
    const frac = total > 0 ? Math.min(1, this.done / total) : 1;
    const rate = this.rate();
    const eta = rate > 0 ? (total - this.done) / rate : NaN;
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    const line =
      `${label} [${bar}] ${this.done}/${total} ${(frac * 100).toFixed(1)}% ` +
      `${rate.toFixed(rate < 10 ? 2 : 1)} ${unit}/s ETA ${formatDuration(eta)}${this.extra ? ' ' + this.extra : ''}`;
    if (this.tty)
      this.stream.write(
        '\r' +
          line.padEnd(this.stream.columns ? this.stream.columns - 1 : 100).slice(0, (this.stream.columns ?? 120) - 1),
      );
    else this.stream.write(line + '\n');
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600),
    m = Math.floor((s % 3600) / 60),
    r = s % 60;
  const mm = String(m).padStart(2, '0'),
    ss = String(r).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}
