/**
 * Dynamic batching in front of a pool of CaptionEngine instances (model replicas), each running one
 * batch at a time.
 *
 * A request first takes a place in the queue (`reserve`, refused when `maxQueue` places are taken), then,
 * once its image is decoded, joins it as a job (`submit`). Batches form from the head of the queue: the
 * oldest job and every later job with the same decoding options, up to `maxBatch`; jobs with other
 * options wait for the next batch. When an instance is free, a batch starts at once if `maxBatch` jobs
 * are queued or no other admitted request is still on its way (reading its body, decoding its image);
 * otherwise it waits for those until `batchWaitMs` after the oldest queued job arrived.
 *
 * Every job has a deadline. A job still queued at its deadline leaves the queue; a job whose batch is
 * still running is answered at its deadline and its result is dropped when the batch ends. Neither
 * touches the other jobs.
 *
 * An engine whose `alive` turns false (its model thread crashed, exited or was ended) takes no batch until it
 * is alive again (a supervised engine comes back: `recovering`, `onRevive`). A batch it failed goes back to the
 * head of the queue once, for a live engine; when no engine is alive or recovering every job is refused with
 * NoEngineError, and so is every later submit.
 */
import type { CaptionOptions, CaptionResult } from '../decode/captioner-api.js';
import type { CaptionEngine } from './engine.js';

export interface BatcherOptions {
  maxBatch: number;
  batchWaitMs: number;
  maxQueue: number;
}

export interface BatcherHooks {
  onBatch?(size: number, modelMs: number, threadHeapBytes?: number): void;
  onQueueDepth?(depth: number): void;
}

export interface JobResult {
  caption: CaptionResult;
  /** From submit (image decoded) to the start of its batch. */
  queueMs: number;
  /** The whole batch's time in the model (encoder + decoder). */
  modelMs: number;
  batchSize: number;
}

/** The queue is full: answer 503 and ask the client to come back after `retryAfterS`. */
export class QueueFullError extends Error {
  constructor(
    readonly depth: number,
    readonly retryAfterS: number,
  ) {
    super(`the queue holds ${depth} requests, its limit`);
    this.name = 'QueueFullError';
  }
}

/** The job passed its deadline (queued or while its batch ran). */
export class DeadlineError extends Error {
  constructor(
    readonly waitedMs: number,
    readonly stage: 'queued' | 'running',
  ) {
    super(`no caption within the deadline (${Math.round(waitedMs)} ms, still ${stage})`);
    this.name = 'DeadlineError';
  }
}

/** No model instance is alive to run the job: the server cannot caption until it is restarted. */
export class NoEngineError extends Error {
  constructor(readonly lastFailure: Error | null) {
    super(`no model instance is running${lastFailure ? ` (the last one stopped: ${lastFailure.message})` : ''}`);
    this.name = 'NoEngineError';
  }
}

/** The model failed on the job's batch (the cause is the engine's error); the engine may still run other batches. */
export class EngineFailure extends Error {
  constructor(readonly engineError: Error) {
    super(engineError.message);
    this.name = 'EngineFailure';
  }
}

/** The ticket was released (its request was aborted or refused) before its image was submitted. */
export class TicketReleasedError extends Error {
  constructor() {
    super('the request gave up its place in the queue before its image was submitted');
    this.name = 'TicketReleasedError';
  }
}

/** The request went away (its client disconnected): a queued job leaves the queue, a running one's result is dropped. */
export class CancelledError extends Error {
  constructor() {
    super('the client went away before its caption was made');
    this.name = 'CancelledError';
  }
}

/** A place in the queue, held from the moment a request is admitted until its job starts running. */
export interface Ticket {
  readonly admittedAt: number;
  /** Give the place back without submitting (the request failed before its image was decoded). */
  release(): void;
}

interface HeldTicket extends Ticket {
  held: boolean;
}

interface Job {
  image: Uint8Array;
  options: CaptionOptions;
  key: string;
  admittedAt: number;
  queuedAt: number;
  timer: NodeJS.Timeout | null;
  done: boolean;
  /** Whether the job already went back to the queue once after its engine died. */
  retried: boolean;
  resolve(r: JobResult): void;
  reject(e: Error): void;
}

/** Jobs with equal keys decode together: the options as JSON, keys sorted. */
const optionsKey = (o: CaptionOptions) =>
  JSON.stringify(
    Object.entries(o)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1)),
  );

export class Batcher {
  private readonly queue: Job[] = [];
  private reserved = 0;
  private readonly engines: CaptionEngine[];
  private readonly free: CaptionEngine[];
  /** The error of the last engine that died, for NoEngineError. */
  private lastDeath: Error | null = null;
  private running = 0;
  private readonly busy = new Set<CaptionEngine>();
  private waitTimer: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];
  /** Exponentially weighted mean batch duration, for Retry-After. */
  private batchMs = 0;

  constructor(
    engines: CaptionEngine | CaptionEngine[],
    private readonly opts: BatcherOptions,
    private readonly hooks: BatcherHooks = {},
  ) {
    this.engines = Array.isArray(engines) ? [...engines] : [engines];
    if (this.engines.length === 0) throw new Error('Batcher: no engine');
    this.free = [...this.engines];
    for (const engine of this.engines) {
      engine.onRevive?.(() => {
        if (!this.free.includes(engine) && !this.busy.has(engine)) this.free.push(engine);
        this.schedule();
      });
    }
  }

  /** Engines still able to take batches (running one or free). */
  get liveEngines(): number {
    return this.engines.filter(isAlive).length;
  }

  /** Whether an engine that is not alive now is coming back (its thread being replaced). */
  get recovering(): boolean {
    return this.engines.some((e) => e.recovering === true);
  }

  /** Requests admitted and not yet running: reserved places plus queued jobs. */
  get depth(): number {
    return this.reserved + this.queue.length;
  }

  /** Nothing queued, reserved or running. */
  get idle(): boolean {
    return this.depth === 0 && this.running === 0;
  }

  /** Seconds a client refused now should wait: the batches ahead of it, at the recent batch duration. */
  retryAfterSeconds(): number {
    const batchesAhead = Math.ceil(Math.max(1, this.depth) / this.opts.maxBatch);
    return Math.max(1, Math.ceil((batchesAhead * Math.max(this.batchMs, 100)) / 1000));
  }

  /** Take a place in the queue, or throw QueueFullError. */
  reserve(now = performance.now()): Ticket {
    if (this.depth >= this.opts.maxQueue) throw new QueueFullError(this.depth, this.retryAfterSeconds());
    this.reserved++;
    this.hooks.onQueueDepth?.(this.depth);
    const ticket: HeldTicket = {
      admittedAt: now,
      held: true,
      release: () => {
        if (!ticket.held) return;
        ticket.held = false;
        this.reserved--;
        this.hooks.onQueueDepth?.(this.depth);
        this.schedule(); // a batch may have been waiting for this request
        this.notifyIdle();
      },
    };
    return ticket;
  }

  /**
   * Queue one decoded image on its ticket; resolves with its caption, or rejects with DeadlineError
   * `deadlineMs` after the ticket was admitted, or with CancelledError when `signal` aborts (a queued job then
   * leaves the queue: its image never reaches the model).
   */
  submit(
    ticket: Ticket,
    image: Uint8Array,
    options: CaptionOptions,
    deadlineMs: number,
    signal?: AbortSignal,
  ): Promise<JobResult> {
    const held = ticket as HeldTicket;
    if (!held.held) return Promise.reject(new TicketReleasedError());
    if (signal?.aborted) {
      ticket.release();
      return Promise.reject(new CancelledError());
    }
    return new Promise<JobResult>((resolve, reject) => {
      const now = performance.now();
      const job: Job = {
        image,
        options,
        key: optionsKey(options),
        admittedAt: ticket.admittedAt,
        queuedAt: now,
        timer: null,
        done: false,
        retried: false,
        resolve: (r) => {
          if (!job.done) {
            job.done = true;
            clearTimeout(job.timer!);
            resolve(r);
          }
        },
        reject: (e) => {
          if (!job.done) {
            job.done = true;
            clearTimeout(job.timer!);
            reject(e);
          }
        },
      };
      held.held = false; // the place moves from the ticket to the job
      this.reserved--;
      this.queue.push(job);
      const left = ticket.admittedAt + deadlineMs - now;
      job.timer = setTimeout(() => this.expire(job), Math.max(0, left));
      signal?.addEventListener('abort', () => this.cancel(job), { once: true });
      this.hooks.onQueueDepth?.(this.depth);
      this.schedule();
    });
  }

  /** Resolves once nothing is queued, reserved or running (for a graceful shutdown). */
  drained(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private cancel(job: Job): void {
    if (job.done) return;
    const at = this.queue.indexOf(job);
    if (at >= 0) {
      this.queue.splice(at, 1);
      this.hooks.onQueueDepth?.(this.depth);
      this.notifyIdle();
    }
    job.reject(new CancelledError());
  }

  private expire(job: Job): void {
    const at = this.queue.indexOf(job);
    if (at >= 0) {
      this.queue.splice(at, 1);
      this.hooks.onQueueDepth?.(this.depth);
      this.notifyIdle();
    }
    job.reject(new DeadlineError(performance.now() - job.admittedAt, at >= 0 ? 'queued' : 'running'));
  }

  private schedule(): void {
    for (let i = this.free.length - 1; i >= 0; i--) if (!isAlive(this.free[i])) this.free.splice(i, 1);
    if (this.queue.length > 0 && this.liveEngines === 0 && !this.engines.some((e) => e.recovering))
      return this.refuseAll();
    while (this.free.length > 0 && this.queue.length > 0) {
      // "full": as many jobs as one batch takes, counting only those with the head's options
      const key = this.queue[0].key;
      const full = this.queue.reduce((n, j) => n + (j.key === key ? 1 : 0), 0) >= this.opts.maxBatch;
      const waited = performance.now() - this.queue[0].queuedAt;
      if (!full && this.reserved > 0 && waited < this.opts.batchWaitMs) {
        // Requests are on their way: give them until batchWaitMs to join this batch.
        this.waitTimer ??= setTimeout(() => {
          this.waitTimer = null;
          this.schedule();
        }, this.opts.batchWaitMs - waited);
        return;
      }
      this.startBatch(this.free.pop()!);
    }
  }

  private startBatch(engine: CaptionEngine): void {
    if (this.waitTimer) {
      clearTimeout(this.waitTimer);
      this.waitTimer = null;
    }
    const key = this.queue[0].key;
    const batch: Job[] = [];
    for (let i = 0; i < this.queue.length && batch.length < this.opts.maxBatch;) {
      if (this.queue[i].key === key) batch.push(...this.queue.splice(i, 1));
      else i++;
    }
    this.hooks.onQueueDepth?.(this.depth);
    this.running++;
    this.busy.add(engine);
    void this.runBatch(engine, batch).finally(() => {
      this.running--;
      this.busy.delete(engine);
      if (isAlive(engine)) this.free.push(engine);
      this.schedule();
      this.notifyIdle();
    });
  }

  /** No engine is alive: every queued job is refused (nothing would ever run it). */
  private refuseAll(): void {
    const jobs = this.queue.splice(0);
    this.hooks.onQueueDepth?.(this.depth);
    for (const job of jobs) job.reject(new NoEngineError(this.lastDeath));
    this.notifyIdle();
  }

  private async runBatch(engine: CaptionEngine, batch: Job[]): Promise<void> {
    const started = performance.now();
    try {
      const result = await engine.captionBatch(
        batch.map((j) => j.image),
        batch[0].options,
      );
      const took = performance.now() - started;
      this.batchMs = this.batchMs === 0 ? took : 0.8 * this.batchMs + 0.2 * took;
      this.hooks.onBatch?.(batch.length, result.modelMs, result.threadHeapBytes);
      batch.forEach((job, i) =>
        job.resolve({
          caption: result.captions[i],
          queueMs: started - job.queuedAt,
          modelMs: result.modelMs,
          batchSize: batch.length,
        }),
      );
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e));
      if (isAlive(engine)) {
        for (const job of batch) job.reject(new EngineFailure(error));
        return;
      }
      // The engine died under this batch: its jobs go back to the head of the queue once, for a live engine.
      this.lastDeath = error;
      const again = batch.filter((job) => !job.done && !job.retried);
      for (const job of batch) if (job.retried) job.reject(new NoEngineError(error));
      for (const job of again) job.retried = true;
      this.queue.unshift(...again);
      this.hooks.onQueueDepth?.(this.depth);
    }
  }

  private notifyIdle(): void {
    if (!this.idle) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

const isAlive = (engine: CaptionEngine) => engine.alive !== false;
