/**
 * What do the decoding options cost? Beam search and its options on a trained run's stored dev features, the
 * option sets interleaved and each repeated, as CPU milliseconds per image (user + system of this process, so a
 * busy machine's waiting does not count) and how many captions differ from plain beam search.
 *
 *   node --import tsx bench/decode-options.ts --run runs/f8k [--checkpoint FILE] [--images 300] [--beam 3] [--repeats 3]
 *
 * Plain beam search must not slow down for the options it does not use (src/decode/beam.ts keeps its plain
 * path); trigram blocking, diverse beam search, nucleus sampling and consensus reranking (with the caption memory of
 * the run's training images, whose one-off build time is printed apart) are listed with their own cost.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { loadCheckpoint, loadCheckpointVocab, restoreModel } from '../src/checkpoint/checkpoint.js';
import { loadRun } from '../src/dataset/prepare.js';
import { CaptionMemory } from '../src/decode/consensus.js';
import { decodeVocab } from '../src/decode/index.js';
import { buildRunMemory } from '../src/decode/run-memory.js';
import type { CaptionOptions } from '../src/decode/options.js';
import { decodeStoreImages } from '../src/decode/store.js';
import { runFeatureDir } from '../src/features/run-feature-store.js';
import { openFeatureStore } from '../src/features/store.js';
import { createModel } from '../src/model/index.js';
import { median } from '../src/util/stats.js';

const { values } = parseArgs({
  options: {
    run: { type: 'string' },
    checkpoint: { type: 'string' },
    images: { type: 'string', default: '300' },
    beam: { type: 'string', default: '3' },
    repeats: { type: 'string', default: '3' },
    'max-length': { type: 'string', default: '20' },
  },
});
if (!values.run)
  throw new Error(
    '--run RUN is required: a trained run folder with a feature store (sat prepare, sat features, sat train)',
  );
const beam = Number(values.beam),
  repeats = Number(values.repeats),
  maxLength = Number(values['max-length']);

const run = loadRun(values.run);
const ckpt = values.checkpoint ? loadCheckpoint(values.checkpoint) : loadCheckpoint(`${run.dir}/checkpoints`, 'best');
const vocab = decodeVocab(loadCheckpointVocab(ckpt));
const model = createModel(ckpt.meta.model);
restoreModel(model, ckpt, { optimizer: false });
const store = openFeatureStore(runFeatureDir(run.dir, { encoderId: ckpt.meta.encoder.id }));
const ids = run.images
  .filter((im) => im.split === 'dev' && store.has(im.id))
  .slice(0, Number(values.images))
  .map((im) => im.id);

const sets: [string, CaptionOptions][] = [
  [`beam ${beam}`, { beam }],
  [`beam ${beam} + blockTrigrams`, { beam, blockTrigrams: true }],
  [`beam ${2 * beam}`, { beam: 2 * beam }],
  [`beam ${2 * beam} groups 2`, { beam: 2 * beam, groups: 2 }],
  ['greedy', {}],
  ['sample topP 0.9', { sample: true, topP: 0.9, seed: 1 }],
  [`beam ${beam} + consensus 60`, { beam, consensus: 60 }],
  [`beam ${beam} + consensus 60, no samples`, { beam, consensus: 60, consensusSamples: 0 }],
];
const memoryStart = performance.now();
const memory = new CaptionMemory(buildRunMemory(run.dir, store, { progress: false }));
const memorySeconds = (performance.now() - memoryStart) / 1000;
const cpuMs: number[][] = sets.map(() => []);
const captions: string[][] = [];
decodeStoreImages(model, store, ids.slice(0, 8), vocab, { beam, maxLength, progress: false }); // warm-up
for (let r = 0; r < repeats; r++) {
  sets.forEach(([, options], i) => {
    const before = process.cpuUsage();
    const out = decodeStoreImages(model, store, ids, vocab, { ...options, maxLength, memory, progress: false });
    const used = process.cpuUsage(before);
    cpuMs[i].push((used.user + used.system) / 1000 / ids.length);
    captions[i] = out.map((c) => c.words.join(' '));
  });
}
console.log(
  `${ids.length} dev images of ${run.dir}, checkpoint ${ckpt.file}, max length ${maxLength}, ${repeats} repeats, load ${loadavg()[0].toFixed(1)}`,
);
console.log(`caption memory: ${memory.size} training images, built in ${memorySeconds.toFixed(1)} s`);
sets.forEach(([name], i) => {
  const changed = captions[i].filter((c, j) => c !== captions[0][j]).length;
  console.log(
    `${name.padEnd(36)} ${median(cpuMs[i]).toFixed(2).padStart(7)} CPU ms/image  (runs ${cpuMs[i].map((x) => x.toFixed(2)).join(', ')}); ` +
      `${changed} captions differ from ${sets[0][0]}`,
  );
});
model.dispose();
store.close();
