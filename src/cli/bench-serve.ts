/**
 * The flags of `sat bench serve` (src/bench/serve-bench.ts), registered by src/cli/bench.ts. The flags it shares
 * with the other benchmarks (--model, --images, --limit, --beam, --threads, --python, --no-torch,
 * --encoder-weights) are declared there. Flags that configure our server are sat serve's own, with its names and
 * defaults (SERVE_OPTIONS); the PyTorch peer's are --peer-*.
 */
import { SERVE_BENCH_DEFAULTS, type ServeBenchOptions } from '../bench/serve-bench.js';
import { checkBackend } from '../models/load-captioner.js';
import { UserError } from '../util/errors.js';
import { numberOption, requireString, type OptionSpec } from './command.js';
import { SERVE_OPTIONS } from './serve.js';

/** sat serve's flag `name`, as `sat bench serve` passes it to the server it starts. */
const serveFlag = (name: string): OptionSpec => ({
  ...SERVE_OPTIONS[name],
  description: `serve: sat serve --${name}: ${SERVE_OPTIONS[name].description}`,
});

/** The default of `sat serve --threads`, which bench serve's --threads (declared with the features bench's) passes on. */
export const SERVE_THREADS_DEFAULT = String(SERVE_OPTIONS.threads.default);

export const SERVE_BENCH_OPTIONS: Record<string, OptionSpec> = {
  concurrency: { type: 'string', description: 'serve: clients sending requests at once', default: '8' },
  seconds: {
    type: 'string',
    description: 'serve: measured seconds per side (split into --rounds alternating rounds)',
    default: '20',
  },
  rounds: { type: 'string', description: 'serve: alternating rounds (ours, peer, ours, peer ...)', default: '2' },
  backend: serveFlag('backend'),
  instances: serveFlag('instances'),
  'blas-threads': serveFlag('blas-threads'),
  'max-batch': serveFlag('max-batch'),
  'batch-wait-ms': serveFlag('batch-wait-ms'),
  'max-queue': {
    ...serveFlag('max-queue'),
    default: String(SERVE_BENCH_DEFAULTS.maxQueue),
    description: `serve: sat serve --max-queue (the overload burst is 4x this; sat serve's own default: ${SERVE_OPTIONS['max-queue'].default})`,
  },
  // no declared default, so that a given --peer-threads can be told apart (see serverThreads)
  'peer-threads': {
    type: 'string',
    description: `serve: torch.set_num_threads of the PyTorch peer (default ${SERVE_BENCH_DEFAULTS.peerThreads})`,
  },
  'encoder-threads': {
    type: 'string',
    description: 'serve: the old spelling of --threads (until the next release)',
    hidden: true,
  },
  overload: {
    type: 'boolean',
    description:
      'serve: the overload check (a burst of 4x --max-queue between two throughput runs) instead of the peer comparison',
  },
};

/** --threads, or its old spelling --encoder-threads (with a note); notes go to `note`. */
function serverThreads(values: Record<string, unknown>, note: (line: string) => void): Record<string, unknown> {
  if (values['encoder-threads'] === undefined) {
    if (values.threads !== undefined && values['peer-threads'] === undefined) {
      note(
        "sat bench serve: --threads sets sat serve --threads (onnxruntime threads per instance); the PyTorch peer's threads are --peer-threads (before this release, --threads set the peer's).",
      );
    }
    return values;
  }
  if (values.threads !== undefined)
    throw new UserError('--encoder-threads is the old spelling of --threads: give only --threads.');
  note(
    'sat bench serve: --encoder-threads is now --threads, as sat serve spells it; the old spelling is read until the next release.',
  );
  return { ...values, threads: values['encoder-threads'] };
}

export function serveBenchOptionsFromArgs(
  given: Record<string, unknown>,
  note: (line: string) => void = (line) => console.error(line),
): ServeBenchOptions {
  const values = serverThreads(given, note);
  const int = (name: string, min: number, max = 1_000_000) => numberOption(values, name, { integer: true, min, max })!;
  return {
    model: requireString(
      values,
      'model',
      'the run folder or checkpoint to serve (the peer loads its weights), e.g. --model runs/f8k',
    ),
    encoderWeights: typeof values['encoder-weights'] === 'string' ? values['encoder-weights'] : undefined,
    images: requireString(
      values,
      'images',
      'a folder of JPEG files, e.g. --images ../shared/data/flickr8k/Flicker8k_Dataset',
    ),
    limit: int('limit', 1),
    concurrency: int('concurrency', 1, 1024),
    seconds: numberOption(values, 'seconds', { min: 1, max: 3600 })!,
    rounds: int('rounds', 1, 100),
    beam: int('beam', 1, 10),
    server: {
      backend: checkBackend(values.backend, '--backend'),
      instances: int('instances', 1, 16),
      threads: numberOption({ threads: values.threads ?? SERVE_THREADS_DEFAULT }, 'threads', {
        integer: true,
        min: 1,
        max: 64,
      })!,
      blasThreads: int('blas-threads', 1, 64),
      maxBatch: int('max-batch', 1, 256),
      batchWaitMs: numberOption(values, 'batch-wait-ms', { min: 0, max: 10_000 })!,
      maxQueue: int('max-queue', 1),
    },
    peerThreads:
      numberOption(values, 'peer-threads', { integer: true, min: 1, max: 64 }) ?? SERVE_BENCH_DEFAULTS.peerThreads,
    python: values['no-torch'] ? null : String(values.python),
    overload: Boolean(values.overload),
  };
}
