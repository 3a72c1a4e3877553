import { formatServeBench, runServeBench } from '../bench/serve-bench.js';
import { BROWSER_BENCH_DEFAULTS, formatBrowserBench, runBrowserBench } from '../bench/browser.js';
import { FEATURES_BENCH_DEFAULTS, formatFeaturesBench, runFeaturesBench } from '../bench/features.js';
import { TRAIN_BENCH_DEFAULTS, formatTrainBench, runTrainBench, trainBenchSides } from '../bench/train.js';
import { UserError } from '../util/errors.js';
import { numberOption, requireString, type Command, type OptionSpec } from './command.js';
import { SERVE_BENCH_OPTIONS, SERVE_THREADS_DEFAULT, serveBenchOptionsFromArgs } from './bench-serve.js';
import { ENCODER_CLI_OPTIONS, encoderOptionsFromArgs } from './encoder-options.js';

/**
 * `sat bench <name>`: speed benchmarks that compare us with a peer measured in the same run (not tests).
 * Each benchmark contributes its options (prefixed "name:" in their help text) and a runner (src/bench/) that
 * returns a JSON-able result plus a human-readable formatter.
 */
interface Bench {
  summary: string;
  options: Record<string, OptionSpec>;
  run(values: Record<string, unknown>): Promise<{ json: unknown; text: string }>;
}

/** Options every benchmark with a PyTorch peer shares. */
const COMMON: Record<string, OptionSpec> = {
  python: {
    type: 'string',
    description: 'Python with PyTorch for the peers (features, serve: also torchvision)',
    default: TRAIN_BENCH_DEFAULTS.python,
  },
  'no-torch': { type: 'boolean', description: 'measure ours only, without the PyTorch peer' },
};

const python = (values: Record<string, unknown>) => (values['no-torch'] ? null : String(values.python));

const F = FEATURES_BENCH_DEFAULTS;
const features: Bench = {
  summary: 'JPEG files -> stored fp16 features, vs the PyTorch peer peers/features_torch.py',
  options: {
    images: {
      type: 'string',
      description: 'features, browser, serve: folder of JPEG files, e.g. ../shared/data/flickr8k/Flicker8k_Dataset',
    },
    limit: {
      type: 'string',
      description: 'features, serve: number of images (the first N by name)',
      default: String(F.limit),
    },
    batch: {
      type: 'string',
      description: 'features: images per inference batch, both sides',
      default: String(F.batch),
    },
    threads: {
      type: 'string',
      description: `features: compute threads, both sides (onnxruntime intra-op / torch.set_num_threads; default ${F.threads}); serve: sat serve --threads (onnxruntime threads per instance; default sat serve's, ${SERVE_THREADS_DEFAULT})`,
    },
    repeats: {
      type: 'string',
      description: 'features: timed repeats per side (median reported)',
      default: String(F.repeats),
    },
    spin: {
      type: 'boolean',
      description: 'features: let onnxruntime threads spin-wait between ops (as `sat features --spin`)',
    },
    ...ENCODER_CLI_OPTIONS,
  },
  async run(values) {
    const r = await runFeaturesBench({
      images: requireString(
        values,
        'images',
        'a folder of JPEG files, e.g. --images ../shared/data/flickr8k/Flicker8k_Dataset',
      ),
      limit: numberOption(values, 'limit', { integer: true, min: 1 })!,
      batch: numberOption(values, 'batch', { integer: true, min: 1, max: 256 })!,
      threads: numberOption(values, 'threads', { integer: true, min: 1, max: 256 }) ?? F.threads,
      repeats: numberOption(values, 'repeats', { integer: true, min: 1, max: 50 })!,
      spin: values.spin === true,
      python: python(values),
      encoder: encoderOptionsFromArgs(values),
    });
    return { json: r, text: formatFeaturesBench(r) };
  },
};

const T = TRAIN_BENCH_DEFAULTS;
const train: Bench = {
  summary:
    'native training step (tokens/s, GFLOP/s) per matmul backend and precision vs the matmul roofs and the PyTorch peers (fp32, bf16 autocast) of peers/train_torch.py',
  options: {
    'train-batch': { type: 'string', description: 'train: batch size B', default: String(T.batch) },
    'train-steps': { type: 'string', description: 'train: decoder steps T per caption', default: String(T.steps) },
    'train-repeats': {
      type: 'string',
      description: 'train: timed rounds after one warm-up round (medians reported)',
      default: String(T.repeats),
    },
    'train-threads': {
      type: 'string',
      description: 'train: threads, every side (OpenBLAS + OpenMP workers / torch.set_num_threads)',
      default: String(T.threads),
    },
    'train-sides': {
      type: 'string',
      description:
        'train: our sides as backend/precision, comma-separated (default: each of cblas/fp32, onednn/fp32, onednn/bf16 that runs here)',
    },
    'train-profile': {
      type: 'boolean',
      description: 'train: time the sections of our step per side (matmul vs elementwise), means over the timed rounds',
    },
  },
  async run(values) {
    const r = await runTrainBench({
      batch: numberOption(values, 'train-batch', { integer: true, min: 1 })!,
      steps: numberOption(values, 'train-steps', { integer: true, min: 1 })!,
      repeats: numberOption(values, 'train-repeats', { integer: true, min: 1 })!,
      threads: numberOption(values, 'train-threads', { integer: true, min: 1 })!,
      python: python(values),
      sides: trainBenchSides(typeof values['train-sides'] === 'string' ? values['train-sides'] : undefined),
      profile: values['train-profile'] === true,
    });
    return { json: r, text: formatTrainBench(r) };
  },
};

/** Encoder flags for --checkpoint: the checkpoint names its encoder, so --encoder counts only as a user .onnx file. */
function checkpointEncoder(values: Record<string, unknown>) {
  const given = encoderOptionsFromArgs(values);
  return { ...given, encoder: given.encoder?.endsWith('.onnx') ? given.encoder : undefined };
}

const B = BROWSER_BENCH_DEFAULTS;
const browser: Bench = {
  summary:
    'ms per image (encoder + beam 3) in headless Chromium (onnxruntime-web), vs onnxruntime-node and the native backend',
  options: {
    model: {
      type: 'string',
      description:
        'browser: bundle folder (sat export); serve: run folder or checkpoint to serve (the peer loads its weights)',
    },
    checkpoint: {
      type: 'string',
      description:
        'browser: the checkpoint the bundle came from, to time the native backend too (encoder flags as for features)',
    },
    count: {
      type: 'string',
      description: 'browser: images to time, the first N JPEG/PNG files of --images by name',
      default: String(B.count),
    },
    beam: {
      type: 'string',
      description: 'browser, serve: beam width (serve: of every request, both sides)',
      default: String(B.beam),
    },
    chromium: { type: 'string', description: 'browser: Chromium executable', default: B.chromium },
    consensus: {
      type: 'string',
      description:
        'browser: rerank by consensus with this many nearest training images (the bundle needs a caption memory)',
    },
  },
  async run(values) {
    const r = await runBrowserBench({
      bundle: requireString(values, 'model', 'a bundle folder written by `sat export`, e.g. --model bundles/f8k-int8'),
      images: requireString(
        values,
        'images',
        'a folder of JPEG files, e.g. --images ../shared/data/flickr8k/Flicker8k_Dataset',
      ),
      count: numberOption(values, 'count', { integer: true, min: 1 })!,
      beam: numberOption(values, 'beam', { integer: true, min: 1, max: 100 })!,
      consensus: numberOption(values, 'consensus', { integer: true, min: 1, max: 1000 }),
      chromium: String(values.chromium),
      checkpoint: typeof values.checkpoint === 'string' ? values.checkpoint : undefined,
      encoder: checkpointEncoder(values),
    });
    return { json: r, text: formatBrowserBench(r) };
  },
};

const serve: Bench = {
  summary:
    'sat serve under load (captions/s, p50/p95/p99 latency, errors) vs the PyTorch peer peers/serve_torch.py; --overload',
  options: SERVE_BENCH_OPTIONS,
  async run(values) {
    const r = await runServeBench(serveBenchOptionsFromArgs(values));
    return { json: r, text: formatServeBench(r) };
  },
};

const BENCHES: Record<string, Bench> = {
  features,
  train,
  browser,
  serve,
};

const command: Command = {
  name: 'bench',
  summary: `Benchmarks against peers measured in the same run: ${Object.keys(BENCHES).join(', ')}`,
  usage: `sat bench <${Object.keys(BENCHES).join('|')}> [options] [--json]`,
  allowPositionals: true,
  options: {
    json: { type: 'boolean', description: 'print the result as one JSON object on stdout' },
    ...COMMON,
    ...Object.assign({}, ...Object.values(BENCHES).map((b) => b.options)),
  },
  async run({ values, positionals }) {
    const name = positionals[0];
    const bench = name ? BENCHES[name] : undefined;
    if (!bench || positionals.length > 1) {
      throw new UserError(
        `Usage: sat bench <name> [options]. Benchmarks:\n${Object.entries(BENCHES)
          .map(([k, b]) => `  ${k}: ${b.summary}`)
          .join('\n')}`,
      );
    }
    const r = await bench.run(values);
    console.log(values.json ? JSON.stringify(r.json) : r.text);
  },
};

export default command;
