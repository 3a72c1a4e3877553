/**
 * Does the exported fp32 bundle compute the native model? On the first N dev images of a prepared run:
 *
 *  1. stored features: the native model and the exported decoder graphs (onnxruntime-node) are stepped side by
 *     side along the native greedy path; the largest |log p(v) native - log p(v) onnx| over every image, step
 *     and vocabulary entry is reported (log-softmax in float64 of each side's logits);
 *  2. stored features: whole greedy and beam-3 decodes (the same src/decode searches, sync native vs async onnx):
 *     captions that differ, largest |logProb difference|;
 *  3. image files: `loadCaptioner(checkpoint, native)` (sat features' encoder graph + native decoder) vs
 *     `loadCaptioner(bundle, onnx)` (the bundle's encoder.onnx + decoder graphs), greedy and beam 3.
 *
 *   node --import tsx checks/export-equality.ts --model runs/f8k/ck-xe5-cblas \
 *     --encoder-weights ../shared/models/mobilenet_v2_1.0_224 [--run runs/f8k] [--images 200] [--json]
 *     [--max-log-prob-diff 1e-3] [--max-differ 0.01]
 *
 * Exits 1 when the lockstep log-probabilities differ by more than --max-log-prob-diff, or when more than the fraction
 * --max-differ of the captions of any decode differ (a near tie may flip one word on the way).
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { restoreModel } from '../src/checkpoint/checkpoint.js';
import { openCheckpointSource } from '../src/checkpoint/source.js';
import { decodeImages, decodeImagesAsync, decodeVocab } from '../src/decode/index.js';
import { logSumExpRows } from '../src/decode/logits.js';
import { buildBundle, writeBundle } from '../src/export/bundle.js';
import { loadCaptioner } from '../src/models/load-captioner.js';
import type { OrtNamespace } from '../src/encoders/onnx/runtime.js';
import { OnnxDecoderModel } from '../src/model/onnx-model.js';
import { openFeatureStore } from '../src/features/store.js';
import { createModel } from '../src/model/index.js';
import { loadRun } from '../src/dataset/prepare.js';
import { runFeatureDir } from '../src/features/run-feature-store.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    run: { type: 'string' },
    'encoder-weights': { type: 'string' },
    images: { type: 'string', default: '200' },
    out: { type: 'string', default: 'out/export-equality-bundle' },
    json: { type: 'boolean' },
    'max-log-prob-diff': { type: 'string', default: '1e-3' },
    'max-differ': { type: 'string', default: '0.01' },
  },
});
if (!values.model)
  throw new Error(
    'usage: node --import tsx checks/export-equality.ts --model RUN_OR_CHECKPOINT [--encoder-weights DIR] [--run DIR] [--images 200] [--json]',
  );
const N = Number(values.images);
const encoder = values['encoder-weights'] ? { weights: values['encoder-weights'] } : undefined;
const log = (s: string) => console.error(s);

const src = await openCheckpointSource(values.model!, encoder);
const runDir = values.run ?? src.ckpt.meta.run ?? path.dirname(path.resolve(values.model!));
const run = loadRun(runDir);
const dev = run.images.filter((im) => im.split === 'dev' && im.captions.length > 0).slice(0, N);
const store = openFeatureStore(runFeatureDir(runDir, { encoderId: src.ckpt.meta.encoder.id }));
const { locations: L, channels: C, vocabSize: V } = src.ckpt.meta.model;
const features = new Float32Array(dev.length * L * C);
dev.forEach((im, i) => store.read(im.id, features, i * L * C));
const vocab = decodeVocab(src.vocab);
const maxLength = Math.max(1, src.vocab.maxLength - 1);

log(`exporting ${src.ckpt.file} (fp32) ...`);
const bundle = await buildBundle(values.model!, { dtype: 'fp32', encoder });
writeBundle(values.out!, bundle);
const native = createModel(src.ckpt.meta.model);
restoreModel(native, src.ckpt, { optimizer: false });
const options = {
  executionProviders: ['cpu'],
  graphOptimizationLevel: 'all',
  intraOpNumThreads: 2,
  interOpNumThreads: 1,
};
const onnx = await OnnxDecoderModel.create(
  ort as unknown as OrtNamespace,
  bundle.manifest.model,
  { init: bundle.files.get('decoder-init.onnx')!, step: bundle.files.get('decoder-step.onnx')! },
  options,
);

// 1. lockstep log-probabilities along the native greedy path
let maxAll = 0,
  maxChosen = 0,
  steps = 0;
const batch = 50;
for (let first = 0; first < dev.length; first += batch) {
  const n = Math.min(batch, dev.length - first);
  const f = features.subarray(first * L * C, (first + n) * L * C);
  let a = native.encode(f, n),
    b = await onnx.encode(f, n);
  let tokens = new Int32Array(n).fill(vocab.start);
  for (let t = 0; t < maxLength; t++) {
    const oa = native.step(a, tokens),
      ob = await onnx.step(b, tokens);
    const la = logSumExpRows(oa.logits, n, V),
      lb = logSumExpRows(ob.logits, n, V);
    const next = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      let best = -1;
      for (let v = 0; v < V; v++) {
        const d = Math.abs(oa.logits[r * V + v] - la[r] - (ob.logits[r * V + v] - lb[r]));
        if (d > maxAll) maxAll = d;
        if (v !== vocab.pad && v !== vocab.start && (best < 0 || oa.logits[r * V + v] > oa.logits[r * V + best]))
          best = v;
      }
      next[r] = tokens[r] === vocab.end ? vocab.end : best;
      const d = Math.abs(oa.logits[r * V + next[r]] - la[r] - (ob.logits[r * V + next[r]] - lb[r]));
      if (d > maxChosen) maxChosen = d;
    }
    steps += n;
    a = { ...a, hidden: oa.hidden };
    b = { ...b, hidden: ob.hidden };
    tokens = next;
    if (tokens.every((x) => x === vocab.end)) break;
  }
}
log(`lockstep: max |d log p| ${maxAll.toExponential(3)} over ${steps} image-steps x ${V} words`);

// 2. whole decodes from stored features
const compare = (x: { words: string[]; logProb: number }[], y: { words: string[]; logProb: number }[]) => ({
  differ: x.filter((c, i) => c.words.join(' ') !== y[i].words.join(' ')).length,
  maxLogProbDiff: Math.max(...x.map((c, i) => Math.abs(c.logProb - y[i].logProb))),
});
const stored: Record<string, unknown> = {};
for (const [name, beam] of [
  ['greedy', 1],
  ['beam3', 3],
] as const) {
  const o = { beam, maxLength };
  const x = decodeImages(native, features, dev.length, vocab, o);
  const y = await decodeImagesAsync(onnx, features, dev.length, vocab, o);
  stored[name] = compare(x, y);
  log(`stored features ${name}: ${JSON.stringify(stored[name])}`);
}
native.dispose();
await onnx.release();

// 3. from the image files, through each side's encoder
const a = await loadCaptioner(values.model!, { backend: 'native', encoder });
const b = await loadCaptioner(values.out!, { backend: 'onnx' });
const files: Record<string, unknown> = {};
for (const [name, o] of [
  ['greedy', {}],
  ['beam3', { beam: 3 }],
] as const) {
  const x = [],
    y = [];
  for (let first = 0; first < dev.length; first += 16) {
    const chunk = dev.slice(first, first + 16).map((im) => im.path);
    x.push(...(await a.captionBatch(chunk, o)));
    y.push(...(await b.captionBatch(chunk, o)));
  }
  files[name] = compare(
    x.map((c) => ({ words: c.words.map((w) => w.word), logProb: c.logProb })),
    y.map((c) => ({ words: c.words.map((w) => w.word), logProb: c.logProb })),
  );
  log(`image files ${name}: ${JSON.stringify(files[name])}`);
}
await a.dispose();
await b.dispose();

const result = {
  checkpoint: src.ckpt.file,
  images: dev.length,
  lockstep: { maxAbsLogProbDiff: maxAll, maxAbsChosenLogProbDiff: maxChosen, imageSteps: steps, vocab: V },
  stored,
  files,
};
console.log(values.json ? JSON.stringify(result) : JSON.stringify(result, null, 2));

const maxLogProbDiff = Number(values['max-log-prob-diff']),
  maxDiffer = Number(values['max-differ']);
const failures: string[] = [];
if (!(maxAll <= maxLogProbDiff))
  failures.push(`lockstep log p differs by ${maxAll.toExponential(3)} > --max-log-prob-diff ${maxLogProbDiff}`);
for (const [where, decodes] of [
  ['stored features', stored],
  ['image files', files],
] as const) {
  for (const [name, c] of Object.entries(decodes as Record<string, { differ: number }>)) {
    if (c.differ > maxDiffer * dev.length)
      failures.push(`${where} ${name}: ${c.differ}/${dev.length} captions differ > --max-differ ${maxDiffer}`);
  }
}
for (const f of failures) console.error(`FAIL ${f}`);
if (failures.length === 0) console.error(`ok: the fp32 bundle computes the native model (${dev.length} images)`);
process.exitCode = failures.length === 0 ? 0 : 1;
