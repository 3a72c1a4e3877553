/**
 * `sat serve --model RUN|CKPT|BUNDLE`: the HTTP captioning service and its web page (src/serve/server.ts).
 * The model runs on its own thread (src/serve/model-worker.ts). SIGTERM or SIGINT: stop taking requests,
 * finish those in flight, exit 0.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_SERVE_OPTIONS, startServer, type ServeOptions } from '../serve/server.js';
import { WorkerEngine } from '../serve/worker-engine.js';
import { UserError } from '../util/errors.js';
import { numberOption, requireString, type Command, type OptionSpec } from './command.js';
import { ENCODER_CLI_OPTIONS, encoderOptionsFromArgs } from './encoder-options.js';

const d = DEFAULT_SERVE_OPTIONS;

// The encoder comes from the checkpoint; these flags only fill in what it cannot know (no defaults here).
const encoderFlags: Record<string, OptionSpec> = Object.fromEntries(Object.entries(ENCODER_CLI_OPTIONS).map(([name, { default: _ignored, ...spec }]) => {
  const fromCheckpoint: Record<string, string> = {
    encoder: 'encoder override; normally read from the checkpoint (needed for a user .onnx encoder)',
    layer: 'InceptionV3 layer override; normally read from the checkpoint',
  };
  return [name, fromCheckpoint[name] ? { ...spec, description: fromCheckpoint[name] } : spec];
}));

export const SERVE_OPTIONS: Record<string, OptionSpec> = {
  model: { type: 'string', description: 'run folder, its checkpoints/ folder, or a .safetensors checkpoint' },
  host: { type: 'string', description: 'address to listen on (127.0.0.1: this machine only; 0.0.0.0 exposes the service)', default: d.host },
  port: { type: 'string', description: 'TCP port (0: any free port)', default: String(d.port) },
  'max-bytes': { type: 'string', description: 'largest request body (the image) in bytes; larger: 413', default: String(d.maxBytes) },
  'max-pixels': { type: 'string', description: 'most pixels (width x height) an image may have; more: 422', default: String(d.maxPixels) },
  'max-queue': { type: 'string', description: 'caption requests admitted and waiting; more: 503 with Retry-After', default: String(d.maxQueue) },
  'max-batch': { type: 'string', description: 'most images per model batch', default: String(d.maxBatch) },
  'batch-wait-ms': { type: 'string', description: 'how long a free model instance waits for requests still being read or decoded to join its batch', default: String(d.batchWaitMs) },
  timeout: { type: 'string', description: 'seconds a request may take from arrival to answer; longer: 503', default: String(d.timeoutMs / 1000) },
  'max-beam': { type: 'string', description: 'widest beam a request may ask for; wider: 400', default: String(d.maxBeam) },
  beam: { type: 'string', description: 'beam width for requests that name none (1: greedy)', default: String(d.defaultBeam) },
  instances: { type: 'string', description: 'model instances, each on its own thread, running batches side by side (one encodes while the other decodes)', default: '2' },
  threads: { type: 'string', description: 'onnxruntime threads for the image encoder, per instance', default: '2' },
  'blas-threads': { type: 'string', description: 'OpenBLAS threads for the decoder, per instance (1: the decoder\'s small matrices gain nothing from more, and idle OpenBLAS threads spin)', default: '1' },
  bundle: { type: 'string', description: 'export bundle folder (sat export) published at /v1/bundle/ so the page can caption in the browser too' },
  log: { type: 'boolean', description: 'log every request (JSON lines on stdout)' },
  ...encoderFlags,
};

/** ServeOptions from the flags, each checked with a message naming it. */
export function serveOptionsFromArgs(values: Record<string, unknown>): ServeOptions {
  const int = (name: string, min: number, max = Number.MAX_SAFE_INTEGER) => numberOption(values, name, { integer: true, min, max })!;
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
    log: Boolean(values.log),
    bundleDir: typeof values.bundle === 'string' ? values.bundle : null,
  };
  if (options.bundleDir && !fs.existsSync(path.join(options.bundleDir, 'manifest.json'))) {
    throw new UserError(`--bundle ${options.bundleDir}: no manifest.json there. Pass a folder written by \`sat export\`.`);
  }
  if (options.defaultBeam > options.maxBeam) throw new UserError(`--beam ${options.defaultBeam} is wider than --max-beam ${options.maxBeam}: lower --beam or raise --max-beam.`);
  return options;
}

const command: Command = {
  name: 'serve',
  summary: 'HTTP captioning service with a web page that shows where the model looks (batching, limits, metrics)',
  usage: 'sat serve --model RUN_OR_CHECKPOINT [--host 127.0.0.1] [--port 8080] [options]',
  options: SERVE_OPTIONS,
  async run({ values }) {
    const model = requireString(values, 'model', 'the run (or checkpoints) folder of a trained model, e.g. --model runs/f8k');
    const options = serveOptionsFromArgs(values);
    const encoderThreads = numberOption(values, 'threads', { integer: true, min: 1, max: 64 })!;
    const blasThreads = numberOption(values, 'blas-threads', { integer: true, min: 1, max: 64 })!;
    const encoder = encoderOptionsFromArgs(values);
    const instances = numberOption(values, 'instances', { integer: true, min: 1, max: 16 })!;
    const load = () => Promise.all(Array.from({ length: instances }, () => WorkerEngine.start({ source: model, options: { encoder, encoderThreads, blasThreads } })));
    const server = await startServer(load, options);
    console.error(`sat serve: listening on ${server.url} (loading ${model} ...)`);

    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      console.error(`sat serve: ${signal}: finishing the requests in flight, then exiting`);
      server.close().then(() => { console.error('sat serve: stopped'); process.exit(0); },
        (e: Error) => { console.error(`sat serve: error while stopping: ${e.message}`); process.exit(1); });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));

    try {
      const info = await server.ready;
      console.error(`sat serve: ready: model ${info.id} (encoder ${info.encoder.id}, ${info.encoder.inputSize} px); page at ${server.url}/`);
    } catch (e) {
      await server.close().catch(() => undefined);
      throw e;
    }
    await new Promise<never>(() => undefined); // serve until a signal
  },
};

export default command;
