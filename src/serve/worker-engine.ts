/**
 * A CaptionEngine that lives on its own thread (src/serve/model-worker.ts), seen from the server thread.
 * Batches go over as messages (the images copied, a few hundred KB each); results come back the same way.
 * Also the export of a bundle on a thread of its own (src/serve/export-worker.ts), and the bundle shared
 * between threads without copies (shareBundle).
 */
import { Worker, type ResourceLimits } from 'node:worker_threads';
import type { Bundle } from '../export/bundle-backend.js';
import type { BundleManifest } from '../export/manifest.js';
import { UserError } from '../util/errors.js';
import type { CaptionerInfo, CaptionOptions } from '../decode/captioner-api.js';
import type { BatchResult, CaptionEngine } from './engine.js';
import type { ExportWorkerData } from './export-worker.js';
import type { ModelWorkerData } from './model-worker.js';

type Outgoing =
  | { type: 'ready'; info: CaptionerInfo; details?: Record<string, unknown> }
  | { type: 'failed'; message: string; userError: boolean }
  | { type: 'result'; id: number; result: BatchResult }
  | { type: 'error'; id: number; message: string };

/** A thread running `entry` (a module beside this one); under tsx (running from src/) it registers tsx first so it can load .ts. */
export function spawnWorker(
  entry: 'model-worker' | 'export-worker',
  data: unknown,
  resourceLimits?: ResourceLimits,
): Worker {
  const url = new URL(`./${entry}${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);
  if (!url.pathname.endsWith('.ts')) return new Worker(url, { workerData: data, resourceLimits });
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { eval: true, workerData: data, resourceLimits });
}

/**
 * The limits a model thread runs under (worker resourceLimits: V8's heaps and stack; the model's native memory,
 * onnxruntime's and the addon's, is outside them). A thread over them is ended (ERR_WORKER_OUT_OF_MEMORY), and
 * replaced by its supervisor (src/serve/supervisor.ts).
 */
export const modelThreadLimits = (heapMb: number): ResourceLimits => ({
  maxOldGenerationSizeMb: heapMb,
  maxYoungGenerationSizeMb: Math.min(64, Math.max(4, heapMb / 8)),
  stackSizeMb: 4,
});

/**
 * The bundle with every file copied once into a SharedArrayBuffer: posted to any number of threads, its bytes are
 * shared, not copied (the model threads and the server's /v1/bundle/ read the same memory).
 */
export function shareBundle(bundle: Bundle): Bundle {
  const files = new Map<string, Uint8Array>();
  for (const [name, bytes] of bundle.files) {
    const shared = new Uint8Array(new SharedArrayBuffer(bytes.byteLength));
    shared.set(bytes);
    files.set(name, shared);
  }
  return { manifest: bundle.manifest, files };
}

/** `buildBundle(source, options)` on a thread of its own (src/serve/export-worker.ts). */
export function exportBundleInWorker(data: ExportWorkerData): Promise<Bundle> {
  const worker = spawnWorker('export-worker', data);
  return new Promise((resolve, reject) => {
    worker.once(
      'message',
      (
        m:
          | { type: 'done'; manifest: BundleManifest; files: [string, Uint8Array][] }
          | { type: 'failed'; message: string },
      ) => {
        if (m.type === 'done') resolve({ manifest: m.manifest, files: new Map(m.files) });
        else reject(new Error(m.message));
      },
    );
    worker.once('error', reject);
    worker.once('exit', (code) =>
      reject(
        new Error(
          `the export thread exited (code ${code}) without a bundle: ` +
            'start sat serve with --log to see why, or pass --bundle DIR (a `sat export` of the model) or --no-bundle',
        ),
      ),
    );
  });
}

const CLOSE_GRACE_MS = 10_000;
const TERMINATE_GRACE_MS = 3_000;

export class WorkerEngine implements CaptionEngine {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(r: BatchResult): void; reject(e: Error): void }>();
  private exited: Error | null = null;
  private readonly gone: Promise<Error>;

  private constructor(
    private readonly worker: Worker,
    readonly info: CaptionerInfo,
    readonly details?: Record<string, unknown>,
  ) {
    worker.on('message', (m: Outgoing) => {
      if (m.type !== 'result' && m.type !== 'error') return;
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.type === 'result') p?.resolve(m.result);
      else p?.reject(new Error(m.message));
    });
    let ended: (why: Error) => void = () => undefined;
    this.gone = new Promise((resolve) => (ended = resolve));
    const fail = (why: Error) => {
      if (!this.exited) ended(why);
      this.exited ??= why;
      for (const p of this.pending.values()) p.reject(why);
      this.pending.clear();
    };
    worker.on('error', (e) => fail(new Error(`the model thread crashed: ${e.message}`)));
    worker.on('exit', (code) => fail(new Error(`the model thread exited (code ${code})`)));
  }

  /** Start the thread and load the model; rejects with the loader's error (a UserError stays one). */
  static start(data: ModelWorkerData, resourceLimits?: ResourceLimits): Promise<WorkerEngine> {
    const worker = spawnWorker('model-worker', data, resourceLimits);
    return new Promise((resolve, reject) => {
      const onMessage = (m: Outgoing) => {
        if (m.type === 'ready') {
          cleanup();
          resolve(new WorkerEngine(worker, m.info, m.details));
        }
        if (m.type === 'failed') {
          cleanup();
          void worker.terminate();
          reject(m.userError ? new UserError(m.message) : new Error(m.message));
        }
      };
      const onError = (e: Error) => {
        cleanup();
        reject(e);
      };
      const onExit = (code: number) => {
        cleanup();
        reject(new Error(`the model thread exited while loading (code ${code})`));
      };
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
  }

  /** The limits the thread runs under (as the Worker reports them). */
  get resourceLimits(): ResourceLimits | undefined {
    return this.worker.resourceLimits;
  }

  /** Resolves with the reason once the thread has crashed or exited. */
  whenGone(): Promise<Error> {
    return this.gone;
  }

  /** End the thread now, whatever it is doing (a batch in flight is rejected). */
  async terminate(): Promise<void> {
    await this.worker.terminate();
  }

  /** Whether the thread is still there to take batches. */
  get alive(): boolean {
    return this.exited === null;
  }

  captionBatch(images: Uint8Array[], options: CaptionOptions): Promise<BatchResult> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'batch', id, images, options });
    });
  }

  /**
   * Let the thread release the model and exit; a thread still running a batch, or not gone within CLOSE_GRACE_MS,
   * is terminated. Rejects when even that does not stop it within TERMINATE_GRACE_MS (stuck in native code, which
   * only ending the process stops).
   */
  async dispose(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<boolean>((resolve) => this.worker.once('exit', () => resolve(true)));
    const after = (ms: number) => new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms).unref());
    if (this.pending.size === 0) {
      this.worker.postMessage({ type: 'close' });
      if (await Promise.race([gone, after(CLOSE_GRACE_MS)])) return;
    }
    void this.worker.terminate();
    if (await Promise.race([gone, after(TERMINATE_GRACE_MS)])) return;
    throw new Error(
      `a model thread did not stop within ${TERMINATE_GRACE_MS / 1000} s of being terminated (stuck in native code): end the process (SIGKILL)`,
    );
  }
}
