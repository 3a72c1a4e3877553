/**
 * `sat serve [--model NAME|URL|RUN|CKPT|BUNDLE]` (default: the shipped model): the HTTP captioning service and its web page (src/serve/server.ts).
 * The model runs on threads of its own (src/serve/model-worker.ts, --instances of them). SIGTERM or SIGINT:
 * stop taking requests, finish those in flight, exit 0.
 */
import type { ResourceLimits } from 'node:worker_threads';
import type { EncoderOptions } from '../encoders/registry.js';
import type { Bundle } from '../export/bundle-backend.js';
import { readManifest } from '../export/bundle-folder.js';
import { checkBackend, DEFAULT_CAPTIONER_BACKEND } from '../models/load-captioner.js';
import { locateModel } from '../models/source.js';
import type { ModelWorkerData } from '../serve/model-worker.js';
import { DEFAULT_SERVE_OPTIONS, startServer, type ServeOptions } from '../serve/server.js';
import { bundleFiles, bundleFolderFiles, lazyFiles, type FileSource } from '../serve/static-files.js';
import { exportBundleInWorker, modelThreadLimits, shareBundle, WorkerEngine } from '../serve/worker-engine.js';
import { IMAGE_FORMATS } from '../serve/options.js';
import { parseOrigin } from '../serve/origin.js';
import { SupervisedEngine, type SupervisorOptions } from '../serve/supervisor.js';
import { UserError } from '../util/errors.js';
import { numberOption, type Command, type OptionSpec } from './command.js';
import { CHECKPOINT_ENCODER_OPTIONS, givenEncoderFlags } from './encoder-options.js';

const d = DEFAULT_SERVE_OPTIONS;

export const SERVE_OPTIONS: Record<string, OptionSpec> = {
  model: {
    type: 'string',
    description:
      "an installed model's name (`sat models`), a bundle folder from sat export, a run folder, its checkpoints/ folder, a .safetensors checkpoint, or the https URL of a bundle's manifest.json (installed once; #sha256=HEX pins it). Default: the shipped model",
  },
  backend: {
    type: 'string',
    description:
      'native (the C++ decoder; checkpoints only) or onnx (onnxruntime-node; a checkpoint is exported in memory once, and the export is shared by the model threads and the page)',
    default: DEFAULT_CAPTIONER_BACKEND,
  },
  host: {
    type: 'string',
    description: 'address to listen on (127.0.0.1: this machine only; 0.0.0.0 exposes the service)',
    default: d.host,
  },
  port: { type: 'string', description: 'TCP port (0: any free port)', default: String(d.port) },
  'max-bytes': {
    type: 'string',
    description: 'largest request body (the image) in bytes; larger: 413',
    default: String(d.maxBytes),
  },
  'max-pixels': {
    type: 'string',
    description:
      'most pixels an image may have, counted at memory cost (8-bit RGB 1 a pixel; 16-bit samples, a fourth channel and interlacing more); more: 422',
    default: String(d.maxPixels),
  },
  'max-queue': {
    type: 'string',
    description: 'caption requests whose body has arrived, waiting for the model; more: 503 with Retry-After',
    default: String(d.maxQueue),
  },
  'max-batch': { type: 'string', description: 'most images per model batch', default: String(d.maxBatch) },
  'warmup-batch': {
    type: 'string',
    description:
      'blank images each model thread captions (at --beam) before it is ready, so its memory reaches a full batch at start; default: --max-batch; 0 = none',
  },
  'batch-wait-ms': {
    type: 'string',
    description: 'how long a free model instance waits for requests still being read or decoded to join its batch',
    default: String(d.batchWaitMs),
  },
  timeout: {
    type: 'string',
    description:
      'seconds a request may take from arrival to answer; longer: 503 (an upload still arriving then: 408). SIGTERM waits at most this long for requests in flight',
    default: String(d.timeoutMs / 1000),
  },
  'max-beam': {
    type: 'string',
    description: 'widest beam a request may ask for; wider: 400',
    default: String(d.maxBeam),
  },
  beam: {
    type: 'string',
    description: 'beam width for requests that name none (1: greedy)',
    default: String(d.defaultBeam),
  },
  'max-consensus': {
    type: 'string',
    description:
      'most nearest training images a consensus-reranking request (consensus=K) may ask for; more: 400 (the model needs a caption memory: sat export --memory)',
    default: String(d.maxConsensus),
  },
  'max-consensus-samples': {
    type: 'string',
    description:
      'most sampled captions per image a consensus-reranking request may ask for (consensus_samples, default the smaller of 20 and this); more: 400',
    default: String(d.maxConsensusSamples),
  },
  'max-uploads': {
    type: 'string',
    description:
      'caption requests whose bodies are still arriving, counted apart from the queue (memory: at most this x --max-bytes); more: 503, unless an upload below --min-upload-rate is cut to make room',
    default: String(d.maxUploads),
  },
  'min-upload-rate': {
    type: 'string',
    description:
      'bytes/s an upload must average after --upload-grace; slower: 408 and the connection closed (0: no minimum)',
    default: String(d.minUploadRate),
  },
  'upload-grace': {
    type: 'string',
    description: 'seconds an upload may take before --min-upload-rate applies',
    default: String(d.uploadGraceMs / 1000),
  },
  'headers-timeout': {
    type: 'string',
    description: "seconds a request's headers may take to arrive; longer: 408",
    default: String(d.headersTimeoutMs / 1000),
  },
  'max-connections': {
    type: 'string',
    description: 'open connections; more are closed at once',
    default: String(d.maxConnections),
  },
  linger: {
    type: 'string',
    description:
      'seconds a connection refused before its body was read (413, 408, 415 ...) is read on and the rest discarded, so the client can finish sending and read the answer; then it is closed (0: at once)',
    default: String(d.lingerMs / 1000),
  },
  'linger-bytes': {
    type: 'string',
    description: 'most bytes read on and discarded from such a connection before it is closed',
    default: String(d.lingerBytes),
  },
  'allow-origin': {
    type: 'string',
    multiple: true,
    description:
      "an origin (https://name[:port]) whose pages may use this server, and whose host name it answers to (a proxy, DNS); repeatable; '*' turns the Host and Origin checks off. Default: only its own page, addressed by IP or localhost",
  },
  'image-formats': {
    type: 'string',
    description: 'image formats decoded, comma-separated, of jpeg, png, webp, gif, tiff, heif (AVIF too)',
    default: d.imageFormats.join(','),
  },
  'image-timeout': {
    type: 'string',
    description: 'seconds decoding one image may take; longer: 422',
    default: String(d.imageTimeoutMs / 1000),
  },
  'image-cache-mb': {
    type: 'string',
    description:
      "megabytes of libvips' operation cache (0: none; every upload is a new image, so a cache only holds memory)",
    default: String(d.imageCacheMb),
  },
  'batch-timeout': {
    type: 'string',
    description:
      'seconds a model batch may run before its thread is ended and replaced (its requests go to another instance once); default: --timeout',
  },
  'thread-heap-mb': {
    type: 'string',
    description:
      "JavaScript heap limit of each model thread (worker resourceLimits; the model's native memory is outside it); over it the thread is replaced",
    default: '1024',
  },
  instances: {
    type: 'string',
    description:
      'model instances, each on its own thread, running batches side by side (one encodes while the other decodes)',
    default: '2',
  },
  threads: {
    type: 'string',
    description: 'onnxruntime threads per instance (the encoder; with --backend onnx also the decoder)',
    default: '2',
  },
  'blas-threads': {
    type: 'string',
    description:
      '--backend native: OpenBLAS threads for the decoder (1: its small matrices gain nothing from more, and idle OpenBLAS threads spin)',
    default: '1',
  },
  bundle: {
    type: 'string',
    description:
      'the export bundle the page loads to caption in the browser, e.g. an int8 `sat export` of the model (default: the --model bundle, or the checkpoint exported in memory, fp32, on first use)',
  },
  'no-bundle': {
    type: 'boolean',
    description:
      "publish no export bundle: the model's weights stay on the server and the page's in-browser switch is off",
  },
  log: { type: 'boolean', description: 'log every request (JSON lines on stdout)' },
  ...CHECKPOINT_ENCODER_OPTIONS,
};

/** ServeOptions from the flags, each checked with a message naming it. */
export function serveOptionsFromArgs(values: Record<string, unknown>): ServeOptions {
  const int = (name: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
    numberOption(values, name, { integer: true, min, max })!;
  const host = typeof values.host === 'string' ? values.host : d.host;
  const options: ServeOptions = {
    host,
    port: int('port', 0, 65535),
    maxBytes: int('max-bytes', 1024),
    maxPixels: int('max-pixels', 1),
    maxQueue: int('max-queue', 1),
    maxBatch: int('max-batch', 1, 256),
    batchWaitMs: numberOption(values, 'batch-wait-ms', { min: 0, max: 10_000 })!,
    timeoutMs: numberOption(values, 'timeout', { min: 0.001, max: 86_400 })! * 1000,
    maxBeam: int('max-beam', 1, 100),
    defaultBeam: int('beam', 1, 100),
    maxConsensus: int('max-consensus', 1, 1000),
    maxConsensusSamples: int('max-consensus-samples', 0, 1000),
    maxUploads: int('max-uploads', 1, 100_000),
    minUploadRate: int('min-upload-rate', 0),
    uploadGraceMs: numberOption(values, 'upload-grace', { min: 0, max: 3600 })! * 1000,
    headersTimeoutMs: numberOption(values, 'headers-timeout', { min: 0.001, max: 3600 })! * 1000,
    maxConnections: int('max-connections', 1, 1_000_000),
    lingerMs: numberOption(values, 'linger', { min: 0, max: 3600 })! * 1000,
    lingerBytes: int('linger-bytes', 0),
    allowOrigins: allowOrigins(values['allow-origin']),
    imageFormats: imageFormats(values['image-formats']),
    imageTimeoutMs: numberOption(values, 'image-timeout', { min: 0.001, max: 3600 })! * 1000,
    imageCacheMb: int('image-cache-mb', 0, 1_000_000),
    log: Boolean(values.log),
  };
  if (options.defaultBeam > options.maxBeam)
    throw new UserError(
      `--beam ${options.defaultBeam} is wider than --max-beam ${options.maxBeam}: lower --beam or raise --max-beam.`,
    );
  return options;
}

function allowOrigins(value: unknown): string[] {
  const given = value === undefined ? [] : Array.isArray(value) ? value.map(String) : [String(value)];
  const origins = given
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
  for (const o of origins) {
    try {
      parseOrigin(o);
    } catch (e) {
      throw new UserError((e as Error).message);
    }
  }
  return origins;
}

function imageFormats(value: unknown): string[] {
  const formats = String(value ?? d.imageFormats.join(','))
    .split(',')
    .map((f) => f.trim().toLowerCase())
    .filter(Boolean)
    .map((f) => (f === 'jpg' ? 'jpeg' : f === 'avif' ? 'heif' : f));
  const unknown = formats.filter((f) => !IMAGE_FORMATS.includes(f));
  if (unknown.length > 0 || formats.length === 0) {
    throw new UserError(
      `--image-formats ${JSON.stringify(value)}: ${unknown.length ? `unknown ${unknown.join(', ')}` : 'none given'}; choose from ${IMAGE_FORMATS.join(', ')} (avif is heif).`,
    );
  }
  return [...new Set(formats)];
}

/** The checkpoint exported once, on first use, on a thread of its own, its files shared between threads (shareBundle). */
function exportOnce(model: string, encoder: EncoderOptions | undefined): () => Promise<Bundle> {
  let exported: Promise<Bundle> | null = null;
  return () => {
    exported ??= exportBundleInWorker({ source: model, options: { encoder } }).then(shareBundle);
    exported.catch(() => {
      exported = null;
    }); // a failure is not kept: the next use tries again
    return exported;
  };
}

/** The bundle for the page's in-browser captioning: --bundle, the --model bundle, or the checkpoint's export. */
function bundleSource(
  model: string,
  values: Record<string, unknown>,
  exported: (() => Promise<Bundle>) | null,
): FileSource {
  if (values['no-bundle']) {
    if (values.bundle !== undefined) throw new UserError('--bundle and --no-bundle exclude each other: choose one.');
    return { none: 'sat serve runs with --no-bundle' };
  }
  if (typeof values.bundle === 'string') {
    const dir = values.bundle;
    readManifest(dir); // refuses a folder that is not a bundle now, not at the first request
    return lazyFiles(async () => bundleFolderFiles(dir));
  }
  if (!exported) return lazyFiles(async () => bundleFolderFiles(model));
  return lazyFiles(async () => bundleFiles(await exported()));
}

/**
 * Starts `count` model threads, each under its supervisor (watchdog, restart with backoff); if any fails to load,
 * the others are stopped before its error is passed on.
 */
async function startEngines(
  count: number,
  data: () => Promise<ModelWorkerData>,
  limits: ResourceLimits,
  supervision: SupervisorOptions,
): Promise<SupervisedEngine[]> {
  const workerData = await data();
  const start = () => WorkerEngine.start(workerData, limits);
  const started = await Promise.allSettled(Array.from({ length: count }, start));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  const engines = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  if (failed) {
    await Promise.allSettled(engines.map((e) => e.dispose()));
    throw failed.reason;
  }
  return engines.map((thread) => new SupervisedEngine(thread, start, supervision));
}

const command: Command = {
  name: 'serve',
  summary: 'HTTP captioning service with a web page that shows where the model looks (batching, limits, metrics)',
  usage:
    'sat serve [--model NAME_URL_RUN_CHECKPOINT_OR_BUNDLE] [--backend onnx|native] [--host 127.0.0.1] [--port 8080] [options]',
  options: SERVE_OPTIONS,
  async run({ values }) {
    const located = await locateModel(typeof values.model === 'string' ? values.model : undefined, { silent: false });
    const model = located.path;
    const backend = checkBackend(values.backend, '--backend');
    const threads = numberOption(values, 'threads', { integer: true, min: 1, max: 64 })!;
    const blasThreads = numberOption(values, 'blas-threads', { integer: true, min: 1, max: 64 })!;
    const encoder = givenEncoderFlags(values);
    const instances = numberOption(values, 'instances', { integer: true, min: 1, max: 16 })!;
    // A checkpoint is exported at most once: for the onnx model threads at start, and for the page's bundle.
    const exported = located.kind === 'bundle' ? null : exportOnce(model, encoder);
    const options: ServeOptions = { ...serveOptionsFromArgs(values), bundle: bundleSource(model, values, exported) };
    const limits = modelThreadLimits(
      numberOption(values, 'thread-heap-mb', { integer: true, min: 64, max: 1_000_000 })!,
    );
    const supervision: SupervisorOptions = {
      batchTimeoutMs:
        (numberOption(values, 'batch-timeout', { min: 0.001, max: 86_400 }) ?? options.timeoutMs / 1000) * 1000,
      restartBackoffMs: { first: 500, max: 30_000 },
      onEvent: (message) => console.error(`sat serve: ${message}`),
    };
    const warmupImages = numberOption(values, 'warmup-batch', { integer: true, min: 0, max: 256 }) ?? options.maxBatch;
    const load = () =>
      startEngines(
        instances,
        async () => ({
          source: model,
          options: { backend, encoder, threads, blasThreads },
          warmup: { images: warmupImages, options: { beam: options.defaultBeam } },
          exported: backend === 'onnx' && exported ? await exported() : undefined,
        }),
        limits,
        supervision,
      );
    const server = await startServer(load, options);
    console.error(`sat serve: listening on ${server.url} (loading ${located.name ?? model} ...)`);

    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      console.error(`sat serve: ${signal}: finishing the requests in flight, then exiting`);
      // process.exit would wait for a model thread stuck in native code; SIGKILL does not.
      server.close().then(
        () => {
          console.error('sat serve: stopped');
          process.exit(0);
        },
        (e: Error) => {
          console.error(`sat serve: error while stopping: ${e.message}`);
          process.kill(process.pid, 'SIGKILL');
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));

    try {
      const info = await server.ready;
      console.error(
        `sat serve: ready: model ${info.modelId} on ${info.backend} (encoder ${info.encoderId}, ${info.inputSize} px); page at ${server.url}/`,
      );
      const published = typeof values.bundle === 'string' ? readManifest(values.bundle).modelId : null;
      if (published && published !== info.modelId) {
        console.error(
          `sat serve: warning: --bundle ${values.bundle} holds model ${published}, not the served ${info.modelId}: the page's in-browser captions may differ from the server's.`,
        );
      }
    } catch (e) {
      await server.close().catch(() => undefined);
      throw e;
    }
    await new Promise<never>(() => undefined); // serve until a signal
  },
};

export default command;
