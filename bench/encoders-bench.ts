/**
 * Encoder compute speed: our ONNX graph in onnxruntime-node vs the same architecture in PyTorch (torchvision,
 * peers/encoders_bench_torch.py), both on random float input, batch 8, 2 threads, measured in this run.
 * Decoding/resizing is not included (see `sat bench features` for the end-to-end figure).
 *
 *   node --import tsx bench/encoders-bench.ts [--encoder inception_v3_nsfwjs] [--layer mixed10] [--repeats 5] [--no-peer]
 */
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { resolveEncoder } from '../src/encoders/registry.js';
import { median } from '../src/util/stats.js';
import { torchPeerCommand } from '../src/bench/torch-peer.js';

const { values } = parseArgs({
  options: {
    encoder: { type: 'string', default: 'inception_v3_nsfwjs' },
    layer: { type: 'string' },
    'encoder-weights': { type: 'string' },
    batch: { type: 'string', default: '8' },
    threads: { type: 'string', default: '2' },
    repeats: { type: 'string', default: '5' },
    'no-peer': { type: 'boolean', default: false },
  },
});
const batch = Number(values.batch),
  threads = Number(values.threads),
  repeats = Number(values.repeats);

let t = performance.now();
const model = await resolveEncoder({
  encoder: values.encoder,
  layer: values.layer,
  weights: values['encoder-weights'],
});
const buildMs = performance.now() - t;
t = performance.now();
const session = await ort.InferenceSession.create(model.onnx, { intraOpNumThreads: threads, interOpNumThreads: 1 });
const sessionMs = performance.now() - t;
const s = model.spec.inputSize;
const x = new Float32Array(batch * s * s * 3).map(() => Math.random());
const feeds = { [model.spec.inputName]: new ort.Tensor('float32', x, [batch, s, s, 3]) };
await session.run(feeds); // warm-up
const ours: number[] = [];
for (let r = 0; r < repeats; r++) {
  t = performance.now();
  await session.run(feeds);
  ours.push((performance.now() - t) / batch);
}
const result: Record<string, unknown> = {
  encoder: model.spec.id,
  batch,
  threads,
  build_ms: Math.round(buildMs),
  session_ms: Math.round(sessionMs),
  onnx_mb: +(model.onnx.length / 2 ** 20).toFixed(1),
  ort_ms_per_image: +median(ours).toFixed(1),
  ort_runs: ours.map((v) => +v.toFixed(1)),
};
const arch = model.spec.id.startsWith('inception_v3')
  ? 'inception_v3'
  : model.spec.id.startsWith('mobilenet_v2')
    ? 'mobilenet_v2'
    : undefined;
if (!values['no-peer'] && arch) {
  const peer = torchPeerCommand('/usr/bin/python3', 'encoders_bench_torch', [
    '--arch',
    arch,
    '--batch',
    String(batch),
    '--threads',
    String(threads),
    '--repeats',
    String(repeats),
  ]);
  const out = execFileSync(peer.command, peer.args, { encoding: 'utf8', cwd: peer.cwd });
  const torchRuns = (JSON.parse(out) as { ms_per_image: number[] }).ms_per_image;
  result.torch_ms_per_image = +median(torchRuns).toFixed(1);
  result.torch_runs = torchRuns.map((v) => +v.toFixed(1));
  result.speedup_vs_torch = +(median(torchRuns) / median(ours)).toFixed(2);
}
console.log(JSON.stringify(result));
await session.release();
