/**
 * The flags of `sat bench serve` (src/bench/serve-bench.ts), registered by src/cli/bench.ts. The flags it shares
 * with the other benchmarks (--model, --images, --limit, --beam, --threads, --python, --no-torch,
 * --encoder-weights) are declared there.
 */
import type { ServeBenchOptions } from '../bench/serve-bench.js';
import { DEFAULT_ENGINE_BACKEND } from '../serve/engine.js';
import { DEFAULT_SERVE_OPTIONS } from '../serve/server.js';
import { UserError } from '../util/errors.js';
import { numberOption, requireString, type OptionSpec } from './command.js';

export const SERVE_BENCH_OPTIONS: Record<string, OptionSpec> = {
  concurrency: { type: 'string', description: 'serve: clients sending requests at once', default: '8' },
  seconds: { type: 'string', description: 'serve: measured seconds per side (split into --rounds alternating rounds)', default: '20' },
  rounds: { type: 'string', description: 'serve: alternating rounds (ours, peer, ours, peer ...)', default: '2' },
  // defaults: sat serve's own
  backend: { type: 'string', description: 'serve: sat serve --backend (native or onnx)', default: DEFAULT_ENGINE_BACKEND },
  instances: { type: 'string', description: 'serve: sat serve --instances', default: '2' },
  'encoder-threads': { type: 'string', description: 'serve: sat serve --threads (onnxruntime threads per instance)', default: '2' },
  'blas-threads': { type: 'string', description: 'serve: sat serve --blas-threads (per instance)', default: '1' },
  'max-batch': { type: 'string', description: 'serve: sat serve --max-batch', default: String(DEFAULT_SERVE_OPTIONS.maxBatch) },
  'batch-wait-ms': { type: 'string', description: 'serve: sat serve --batch-wait-ms', default: String(DEFAULT_SERVE_OPTIONS.batchWaitMs) },
  'max-queue': { type: 'string', description: 'serve: sat serve --max-queue (the overload burst is 4x this)', default: '16' },
  overload: { type: 'boolean', description: 'serve: the overload check (a burst of 4x --max-queue between two throughput runs) instead of the peer comparison' },
};

function backendOption(value: unknown): 'native' | 'onnx' {
  if (value === 'native' || value === 'onnx') return value;
  throw new UserError(`--backend ${String(value)} is not known: use onnx or native.`);
}

export function serveBenchOptionsFromArgs(values: Record<string, unknown>): ServeBenchOptions {
  const int = (name: string, min: number, max = 1_000_000) => numberOption(values, name, { integer: true, min, max })!;
  return {
    model: requireString(values, 'model', 'the run folder or checkpoint to serve (the peer loads its weights), e.g. --model runs/f8k'),
    encoderWeights: typeof values['encoder-weights'] === 'string' ? values['encoder-weights'] : undefined,
    images: requireString(values, 'images', 'a folder of JPEG files, e.g. --images ../shared/data/flickr8k/Flicker8k_Dataset'),
    limit: int('limit', 1),
    concurrency: int('concurrency', 1, 1024),
    seconds: numberOption(values, 'seconds', { min: 1, max: 3600 })!,
    rounds: int('rounds', 1, 100),
    beam: int('beam', 1, 10),
    server: {
      backend: backendOption(values.backend),
      instances: int('instances', 1, 16), encoderThreads: int('encoder-threads', 1, 64), blasThreads: int('blas-threads', 1, 64),
      maxBatch: int('max-batch', 1, 256), batchWaitMs: numberOption(values, 'batch-wait-ms', { min: 0, max: 10_000 })!, maxQueue: int('max-queue', 1),
    },
    peerThreads: int('threads', 1, 64),
    python: values['no-torch'] ? null : String(values.python ?? '/usr/bin/python3'),
    overload: Boolean(values.overload),
  };
}
