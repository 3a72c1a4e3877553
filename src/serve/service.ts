/**
 * The model side of `sat serve`: loading -> ready -> closing (or failed), the instances and the batcher in front of
 * them, and the refusal for a caption request the model cannot take now. The routes see only this.
 */
import { Batcher } from './batcher.js';
import type { CaptionerInfo } from '../decode/captioner-api.js';
import type { CaptionEngine } from './engine.js';
import { ERRORS, refuse, type Refusal } from './errors.js';
import type { ServeMetrics } from './metrics.js';
import type { ServeOptions } from './options.js';

export type ServiceState = 'loading' | 'ready' | 'closing' | 'failed';

export class ModelService {
  state: ServiceState = 'loading';
  engine: CaptionEngine | null = null;
  batcher: Batcher | null = null;
  loadError: Error | null = null;
  /** The load started by `load`, settled with the instances (or the loader's error). */
  private loading: Promise<CaptionEngine[]> | null = null;

  constructor(
    private readonly opts: ServeOptions,
    private readonly metrics: ServeMetrics,
  ) {}

  /** Load the instances in the background; resolves with the model's facts, rejects with the loader's error. */
  load(loadEngine: () => Promise<CaptionEngine | CaptionEngine[]>): Promise<CaptionerInfo> {
    this.loading = loadEngine().then((loaded) => (Array.isArray(loaded) ? loaded : [loaded]));
    return this.loading.then(
      (instances) => {
        this.engine = instances[0];
        this.batcher = new Batcher(instances, this.opts, {
          onBatch: (size, modelMs, threadHeapBytes) => {
            this.metrics.batchSize.observe(size);
            if (threadHeapBytes !== undefined) this.metrics.threadHeap.set(threadHeapBytes);
            this.metrics.stage.observe({ stage: 'model' }, modelMs / 1000);
          },
          onQueueDepth: (depth) => this.metrics.queueDepth.set(depth),
        });
        if (this.state === 'loading') this.state = 'ready';
        return this.engine.info;
      },
      (e: Error) => {
        this.state = 'failed';
        this.loadError = e;
        throw e;
      },
    );
  }

  /** Instances able to take batches (0 before the model is loaded). */
  get liveInstances(): number {
    return this.batcher?.liveEngines ?? 0;
  }

  /** Whether caption requests are taken now. */
  get accepting(): boolean {
    return this.state === 'ready' && this.liveInstances > 0;
  }

  /** Why a caption request cannot be taken now. */
  notReady(): Refusal {
    if (this.state === 'failed') return refuse(ERRORS.model_failed, this.loadError?.message);
    if (this.state === 'ready' && this.liveInstances === 0) {
      if (this.batcher?.recovering)
        return refuse(ERRORS.model_unavailable, 'their threads are being replaced', {
          fix: 'retry in a few seconds (Retry-After); the server log says why the threads were replaced.',
        });
      return refuse(ERRORS.model_unavailable, 'their threads stopped');
    }
    if (this.state === 'closing') return refuse(ERRORS.shutting_down);
    return refuse(ERRORS.model_loading);
  }

  /** Stop taking requests (the routes refuse with shutting_down from now on). */
  beginClosing(): void {
    if (this.state !== 'failed') this.state = 'closing';
  }

  /** Resolves once nothing is queued or running. */
  drained(): Promise<void> {
    return this.batcher?.drained() ?? Promise.resolve();
  }

  /**
   * Stop every instance, waiting at most `ms` for a load still running (that one is stopped once it ends);
   * rejects, once all were asked, with the reasons of those that would not stop.
   */
  async dispose(ms: number): Promise<void> {
    if (!this.loading) return;
    const loading = this.loading.catch(() => [] as CaptionEngine[]);
    const loaded = await within(loading, ms);
    if (!loaded) return void loading.then(disposeAll).catch(() => undefined);
    await disposeAll(loaded);
  }
}

/** Resolves with `promise`'s value, or with undefined once `ms` have passed. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), Math.max(0, ms));
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function disposeAll(instances: CaptionEngine[]): Promise<void> {
  const results = await Promise.allSettled(instances.map((e) => e.dispose()));
  const failed = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
  if (failed.length > 0) throw new Error(failed.join('; '));
}

/** What every route module is given. */
export interface ServeContext {
  opts: ServeOptions;
  metrics: ServeMetrics;
  service: ModelService;
}
