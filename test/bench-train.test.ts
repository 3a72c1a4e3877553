/**
 * sat bench train (src/bench/train.ts) without timing anything: a PyTorch peer that cannot start fails with the fix
 * and leaves the process as it found it (matmul backend and threads restored, models released); the report prints
 * every ratio it computes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatTrainBench, runTrainBench, type TrainBenchResult, type Timing } from '../src/bench/train.js';
import { loadBinding } from '../src/model/binding.js';
import { TUTORIAL_MODEL_DEFAULTS } from '../src/model/types.js';

test('a PyTorch peer that cannot start: the fix is named, backend and threads are restored', async () => {
  const native = loadBinding();
  const before = { backend: native.gemmInfo().backend, threads: native.threads() };
  const other = native.gemmInfo().built.find((b) => b !== before.backend) ?? before.backend;
  native.setGemmBackend(other);
  native.setThreads(1, 1);
  try {
    await assert.rejects(
      runTrainBench({
        batch: 2,
        steps: 2,
        repeats: 1,
        threads: 2,
        python: '/nonexistent/python3',
        sides: ['cblas/fp32'],
      }),
      /the PyTorch peer failed \(\/nonexistent\/python3 .*train_torch\.py: spawn \/nonexistent\/python3 ENOENT\)\. Point --python at a Python with torch .*or pass --no-torch/,
    );
    assert.equal(native.gemmInfo().backend, other);
    assert.deepEqual(native.threads(), { blas: 1, workers: 1 });
  } finally {
    native.setGemmBackend(before.backend);
    native.setThreads(before.threads.blas, before.threads.workers);
  }
});

test('the report prints each ratio between sides, oneDNN bf16 against oneDNN fp32 included', () => {
  const timing = (tokensPerSecond: number): Timing => ({
    step_s: [1024 / tokensPerSecond],
    median_step_s: 1024 / tokensPerSecond,
    tokens_per_s: tokensPerSecond,
    gflops: 1,
    median_cpu_s: 1,
  });
  const side = (t: number) => ({ ...timing(t), roof: 'x', fraction_of_roof: 0.5 });
  const result: TrainBenchResult = {
    config: { ...TUTORIAL_MODEL_DEFAULTS, locations: 64, channels: 2048, vocabSize: 5001, batch: 64, steps: 16 },
    threads: 2,
    gflop_per_step: 100,
    kernels: { backend: 'onednn', built: ['cblas', 'onednn'], blas: 'OpenBLAS Haswell' },
    ours: { 'cblas/fp32': side(1500), 'onednn/fp32': side(3000), 'onednn/bf16': side(4800) },
    torch: null,
    roofs: {},
    ratios: { onednn_fp32_vs_cblas_fp32: 2, onednn_bf16_vs_onednn_fp32: 1.6 },
    loadavg_1min: [0.1, 0.2],
  };
  const text = formatTrainBench(result);
  assert.match(text, /tokens\/s ratios: oneDNN fp32 \/ CBLAS fp32 2\.00x; oneDNN bf16 \/ oneDNN fp32 1\.60x/);
});
