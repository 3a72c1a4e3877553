import { BROWSER_BENCH_OPTIONS, formatBrowserBench, runBrowserBench } from '../bench/browser.js';
import { FEATURES_BENCH_OPTIONS, formatFeaturesBench, runFeaturesBench } from '../features/bench.js';
import { UserError } from '../util/errors.js';
import { TRAIN_BENCH_OPTIONS, formatTrainBench, runTrainBench } from '../../bench/train-bench.js';
import type { Command, OptionSpec } from './command.js';

/**
 * `sat bench <name>`: speed benchmarks that compare us with a peer measured in the same run (not tests).
 * Each benchmark contributes its options (prefixed "name:" in their help text) and a runner that
 * returns a JSON-able result plus a human-readable formatter.
 */
interface Bench {
  summary: string;
  options: Record<string, OptionSpec>;
  run(values: Record<string, unknown>): Promise<{ json: unknown; text: string }>;
}

const features: Bench = {
  summary: 'JPEG files -> stored fp16 features, vs the PyTorch peer bench/features_torch.py',
  options: FEATURES_BENCH_OPTIONS,
  async run(values) {
    const r = await runFeaturesBench(values);
    return { json: r, text: formatFeaturesBench(r) };
  },
};

const train: Bench = {
  summary: 'native training step (tokens/s, GFLOP/s) vs the sgemm peak and the PyTorch peer bench/train_torch.py',
  options: TRAIN_BENCH_OPTIONS,
  async run(values) {
    const r = await runTrainBench(values);
    return { json: r, text: formatTrainBench(r) };
  },
};

const browser: Bench = {
  summary: 'ms per image (encoder + beam 3) in headless Chromium (onnxruntime-web), vs onnxruntime-node and the native backend',
  options: BROWSER_BENCH_OPTIONS,
  async run(values) {
    const r = await runBrowserBench(values);
    return { json: r, text: formatBrowserBench(r) };
  },
};

const BENCHES: Record<string, Bench> = {
  features,
  train,
  browser,
};

const command: Command = {
  name: 'bench',
  summary: `Benchmarks against peers measured in the same run: ${Object.keys(BENCHES).join(', ')}`,
  usage: `sat bench <${Object.keys(BENCHES).join('|')}> [options] [--json]`,
  allowPositionals: true,
  options: {
    json: { type: 'boolean', description: 'print the result as one JSON object on stdout' },
    ...Object.assign({}, ...Object.values(BENCHES).map((b) => b.options)),
  },
  async run({ values, positionals }) {
    const name = positionals[0];
    const bench = name ? BENCHES[name] : undefined;
    if (!bench || positionals.length > 1) {
      throw new UserError(`Usage: sat bench <name> [options]. Benchmarks:\n${Object.entries(BENCHES).map(([k, b]) => `  ${k}: ${b.summary}`).join('\n')}`);
    }
    const r = await bench.run(values);
    console.log(values.json ? JSON.stringify(r.json) : r.text);
  },
};

export default command;
