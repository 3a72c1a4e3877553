/**
 * Which consensus settings suit a dataset? Decodes a split's candidates once (the beam's hypotheses and N samples
 * per image, from stored features; a checkpoint or comma-separated ensemble), then reranks them for every
 * combination of neighbours k, vote temperature and fluency weight, with the caption memory of the run's training
 * images. Prints BLEU-4 and CIDEr-D on the whole split and on its two halves (CIDEr-D's document frequencies come
 * from the scored set, so only rows of one column compare), so a setting picked on one half can be checked on the
 * other. Temperature 0 gives every neighbour the same vote.
 *
 *   node --import tsx bench/consensus-sweep.ts --run runs/f8k --checkpoint runs/f8k/ck-scst10/best.safetensors \
 *     [--split dev] [--beam 3] [--samples 20] [--k 15,30,60,100] [--temperature 0,0.05] [--weight 0,0.05,0.1]
 */
import { parseArgs } from 'node:util';
import { loadCheckpoint, loadCheckpointVocab, restoreModel } from '../src/checkpoint/checkpoint.js';
import { loadRun } from '../src/dataset/prepare.js';
import { CaptionMemory, pooledVectors, type ConsensusCandidate } from '../src/decode/consensus.js';
import { ensembleModel } from '../src/decode/ensemble.js';
import { decodeVocab } from '../src/decode/index.js';
import { buildRunMemory } from '../src/decode/run-memory.js';
import { decodeStoreImages } from '../src/decode/store.js';
import { runFeatureDir } from '../src/features/run-feature-store.js';
import { openFeatureStore } from '../src/features/store.js';
import { tokenizeCaption } from '../src/metrics/ptb-tokenizer.js';
import { scoreTokenized } from '../src/metrics/score.js';
import { createModel } from '../src/model/index.js';
import { defaultMaxLength } from '../src/vocab/vocabulary.js';

const { values } = parseArgs({
  options: {
    run: { type: 'string' },
    checkpoint: { type: 'string' },
    split: { type: 'string', default: 'dev' },
    beam: { type: 'string', default: '3' },
    alpha: { type: 'string', default: '0.5' },
    samples: { type: 'string', default: '20' },
    seed: { type: 'string', default: '0' },
    k: { type: 'string', default: '15,30,60,100' },
    temperature: { type: 'string', default: '0,0.05' },
    weight: { type: 'string', default: '0,0.05,0.1' },
  },
});
if (!values.run || !values.checkpoint)
  throw new Error('--run RUN and --checkpoint FILE[,FILE...] are required (a trained run with its feature store)');
const list = (s: string) => s.split(',').map(Number);
const beam = Number(values.beam),
  samples = Number(values.samples);

const run = loadRun(values.run);
const ckpts = values.checkpoint.split(',').map((f) => loadCheckpoint(f));
const vocab = loadCheckpointVocab(ckpts[0]);
const members = ckpts.map((c) => {
  const m = createModel(c.meta.model);
  restoreModel(m, c, { optimizer: false });
  return m;
});
const model = ensembleModel(members);
const store = openFeatureStore(runFeatureDir(run.dir, { encoderId: ckpts[0].meta.encoder.id }));
const images = run.images.filter((im) => im.split === values.split && im.captions.length > 0 && store.has(im.id));
const ids = images.map((im) => im.id);
const refs = images.map((im) => im.captions.map(tokenizeCaption));
const maxLength = defaultMaxLength(vocab);
const dv = decodeVocab(vocab);

const t0 = performance.now();
const searched = decodeStoreImages(model, store, ids, dv, {
  beam,
  alpha: Number(values.alpha),
  alternatives: true,
  maxLength,
  progress: 'beam',
});
const sampled =
  samples > 0
    ? decodeStoreImages(model, store, ids, dv, {
        sample: true,
        seed: Number(values.seed),
        samplesPerImage: samples,
        maxLength,
        progress: 'samples',
      } as never)
    : [];
const decodeSeconds = (performance.now() - t0) / 1000;
const memory = new CaptionMemory(buildRunMemory(run.dir, store, { progress: 'caption memory' }));
const { locations: L, channels: C } = model.config;
const queries = ids.map((id) => pooledVectors(store.read(id), 1, L, C));
const candidates: ConsensusCandidate[][] = searched.map((top, i) => [
  ...(top.alternatives ?? [top]),
  ...sampled.slice(i * samples, (i + 1) * samples),
]);

const half = Math.floor(ids.length / 2);
const scores = (hyps: string[]) =>
  [
    [0, ids.length],
    [0, half],
    [half, ids.length],
  ].map(([a, b]) => {
    const s = scoreTokenized(hyps.slice(a, b), refs.slice(a, b));
    return `${s['BLEU-4'].toFixed(4)} ${s.CIDEr.toFixed(4)}`;
  });
console.log(
  `${ids.length} ${values.split} images, ${ckpts.length} model(s), beam ${beam} + ${samples} samples: decoded in ${decodeSeconds.toFixed(0)} s`,
);
console.log(`${'setting'.padEnd(34)} ${'all: B4 CIDEr'.padEnd(16)} ${'half 1'.padEnd(16)} half 2`);
console.log(
  `${'the beam alone'.padEnd(34)} ${scores(searched.map((c) => tokenizeCaption(c.words.join(' ')))).join('   ')}`,
);
for (const temperature of list(values.temperature))
  for (const k of list(values.k))
    for (const weight of list(values.weight)) {
      const hyps = candidates.map((cs, i) => {
        const best = memory.rerank(cs, queries[i], k, weight, temperature)[0].candidate;
        return tokenizeCaption(best.words.join(' '));
      });
      const name = `k ${k}, temperature ${temperature}, weight ${weight}`;
      console.log(`${name.padEnd(34)} ${scores(hyps).join('   ')}`);
    }
model.dispose();
store.close();
