/**
 * Where a self-critical step's time goes on a real run: model calls (encode, decode steps, row selection,
 * the weighted train step) against everything else (sampling, CIDEr-D scoring in TypeScript).
 *   node --import tsx bench/scst-profile.ts RUN CHECKPOINT [FEATURES] [steps] [samples per image] [fp32|bf16]
 */
import { loadCheckpoint, restoreModel } from '../src/checkpoint/checkpoint.js';
import { createModel } from '../src/model/index.js';
import { loadRun } from '../src/dataset/prepare.js';
import { openFeatureStore } from '../src/features/store.js';
import { runFeatureDir } from '../src/features/run-feature-store.js';
import { selfCriticalExamples, selfCriticalObjective } from '../src/train/self-critical.js';
import { BatchAssembler } from '../src/train/batches.js';
import type { CaptionModel } from '../src/model/types.js';

const [runDir, ckptFile, featuresDir, stepsArg, samplesArg, precisionArg] = process.argv.slice(2);
const { vocab, images } = loadRun(runDir);
const store = openFeatureStore(runFeatureDir(runDir, { explicit: featuresDir || undefined }));
const ckpt = loadCheckpoint(ckptFile);
const model = createModel(ckpt.meta.model, { precision: precisionArg === 'bf16' ? 'bf16' : 'fp32' });
restoreModel(model, ckpt, { optimizer: false });
const t0 = performance.now();
const objective = selfCriticalObjective({
  images: images.filter((im) => im.split === 'train'),
  vocab,
  samples: Number(samplesArg ?? 5),
  captionsPerBatch: 64,
  maxLength: 20,
});
console.log(`scorer setup ${(performance.now() - t0).toFixed(0)} ms`);
const examples = selfCriticalExamples(images);
const assembler = new BatchAssembler(store, examples, objective.examplesPerBatch);
const spent: Record<string, number> = {};
for (const name of ['encode', 'step', 'selectRows', 'trainStep'] as const) {
  const m = model as unknown as Record<string, (...a: unknown[]) => unknown>;
  const f = m[name].bind(model);
  m[name] = (...a: unknown[]) => {
    const s = performance.now();
    const r = f(...a);
    spent[name] = (spent[name] ?? 0) + performance.now() - s;
    return r;
  };
}
const steps = Number(stepsArg ?? 10);
const start = performance.now();
for (let s = 0; s < steps; s++) {
  const idx = Array.from({ length: objective.examplesPerBatch }, (_, i) => s * objective.examplesPerBatch + i);
  objective.step(
    model as CaptionModel,
    assembler.assemble(idx),
    idx.map((i) => examples.image(i)),
    { learningRate: 5e-5 },
    s,
  );
}
const total = performance.now() - start;
const model_ = Object.values(spent).reduce((a, b) => a + b, 0);
console.log(
  `${steps} steps, ${(total / steps).toFixed(0)} ms/step: ` +
    Object.entries(spent)
      .map(([k, v]) => `${k} ${(v / steps).toFixed(0)}`)
      .join(', ') +
    `, other (sampling, scoring) ${((total - model_) / steps).toFixed(0)} ms`,
);
store.close();
