/**
 * One model instance kept working: a model thread watched by a per-batch watchdog and replaced when it ends.
 *
 *   a batch that runs past --batch-timeout: the batch is rejected and the thread retired (ended once its batch
 *     settles, terminated if it stays stuck: RETIRE_GRACE_MS); the batcher
 *     sees the instance dead and gives the batch's jobs to a live instance once (src/serve/batcher.ts)
 *   a thread that crashes or exits (out of memory under its resource limits, a native crash it survived): the same
 *   either way a new thread is started after a backoff (first, 2 x first, 4 x first ... at most max; a thread that
 *     captions a batch resets it); while it starts the instance is not alive, so GET /readyz answers 503 when no
 *     instance is alive, and its batches wait for the others (or are refused when none is left)
 *
 * dispose() stops the thread and any restart for good.
 */
import type { CaptionerInfo, CaptionOptions } from '../decode/captioner-api.js';
import type { BatchResult, CaptionEngine } from './engine.js';

/** How long a retired thread whose batch never settles may keep running before it is terminated mid-run. */
export const RETIRE_GRACE_MS = 30_000;

/** A model thread as the supervisor sees it (WorkerEngine is one). */
export interface ModelThread extends CaptionEngine {
  readonly alive: boolean;
  /** Resolves with the reason once the thread has ended. */
  whenGone(): Promise<Error>;
  /** End the thread now, whatever it is doing. */
  terminate(): Promise<void>;
}

export interface SupervisorOptions {
  /** A batch running longer than this ends its thread (0: no watchdog). */
  batchTimeoutMs: number;
  /** A retired thread whose batch never settles is terminated mid-run after this long (default RETIRE_GRACE_MS). */
  retireGraceMs?: number;
  /** Backoff before a new thread is started: the first, doubled after each failure to start or early end, up to max. */
  restartBackoffMs: { first: number; max: number };
  /** What happened (a thread replaced, a restart failed), for the server's log. */
  onEvent?(message: string): void;
}

export class SupervisedEngine implements CaptionEngine {
  readonly info: CaptionerInfo;
  readonly details?: Record<string, unknown>;
  private thread: ModelThread | null;
  private closed = false;
  private restartTimer: NodeJS.Timeout | null = null;
  /** Failures since the last batch that went well: the exponent of the backoff. */
  private failures = 0;
  private readonly revived: (() => void)[] = [];
  /** Threads started, the first one included. */
  starts = 1;

  constructor(
    first: ModelThread,
    private readonly start: () => Promise<ModelThread>,
    private readonly opts: SupervisorOptions,
  ) {
    this.info = first.info;
    this.details = first.details;
    this.thread = null;
    this.adopt(first);
  }

  get alive(): boolean {
    return !this.closed && this.thread !== null && this.thread.alive;
  }

  /** Not alive now, but a new thread is on its way. */
  get recovering(): boolean {
    return !this.closed && !this.alive;
  }

  onRevive(listener: () => void): void {
    this.revived.push(listener);
  }

  async captionBatch(images: Uint8Array[], options: CaptionOptions): Promise<BatchResult> {
    const thread = this.thread;
    if (!thread || !this.alive) throw new Error('the model thread is being replaced');
    let timer: NodeJS.Timeout | undefined;
    const batch = thread.captionBatch(images, options);
    const overrun = new Promise<never>((_, reject) => {
      if (this.opts.batchTimeoutMs <= 0) return;
      timer = setTimeout(() => {
        const why = `a batch of ${images.length} ran past --batch-timeout ${this.opts.batchTimeoutMs / 1000} s`;
        this.replace(thread, why, batch);
        reject(new Error(`the model thread was ended: ${why}`));
      }, this.opts.batchTimeoutMs);
    });
    try {
      const result = await Promise.race([batch, overrun]);
      this.failures = 0;
      return result;
    } finally {
      clearTimeout(timer);
    }
  }

  async dispose(): Promise<void> {
    this.closed = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const thread = this.thread;
    this.thread = null;
    await thread?.dispose();
  }

  private adopt(thread: ModelThread): void {
    this.thread = thread;
    void thread.whenGone().then((why) => this.replace(thread, why.message));
  }

  /**
   * Retire `thread` (if it is still the current one) and start another after the backoff. A thread with a batch
   * still running is ended once that batch settles, or after retireGraceMs if it never does: terminating a thread
   * while onnxruntime's native code runs for it can abort the whole process, so only a thread that stays stuck is
   * terminated mid-run.
   */
  private replace(thread: ModelThread, why: string, running?: Promise<unknown>): void {
    if (this.thread !== thread || this.closed) return;
    this.thread = null;
    const end = () => void thread.terminate().catch(() => undefined);
    if (running) {
      const stuck = setTimeout(end, this.opts.retireGraceMs ?? RETIRE_GRACE_MS);
      stuck.unref();
      running.then(
        () => (clearTimeout(stuck), end()),
        () => (clearTimeout(stuck), end()),
      );
    } else {
      end();
    }
    this.scheduleRestart(`model thread replaced: ${why}`);
  }

  private scheduleRestart(event: string): void {
    const { first, max } = this.opts.restartBackoffMs;
    const delay = Math.min(max, first * 2 ** this.failures++);
    this.opts.onEvent?.(`${event}; a new one starts in ${delay} ms`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.closed) return;
      this.starts++;
      this.start().then(
        (fresh) => {
          if (this.closed) return void fresh.dispose().catch(() => undefined);
          this.adopt(fresh);
          this.opts.onEvent?.('model thread replaced: the new one is ready');
          for (const listener of this.revived) listener();
        },
        (e: Error) => this.scheduleRestart(`a new model thread could not start: ${e.message}`),
      );
    }, delay);
    this.restartTimer.unref();
  }
}
