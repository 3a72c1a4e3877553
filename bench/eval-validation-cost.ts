/**
 * What does the per-epoch validation metric cost on Flickr8k? Greedy decoding of the 1000 dev images at
 * the tutorial's shapes (64x2048 InceptionV3 features, E 256, U 512, A 512, vocabulary 5001) plus CIDEr-D /
 * BLEU-4 against the real dev references (../shared/data/flickr8k), next to the cost of one training epoch
 * (30,000 captions) measured with the same model in the same run.
 *
 *   node --import tsx bench/eval-validation-cost.ts [--images 1000] [--max-length 20] [--repeats 3]
 *
 * Weights and features are random (the cost does not depend on their values); an untrained model
 * rarely emits <end>, so every caption runs to --max-length: 20 tokens is the p95 Flickr8k train caption
 * length, an upper bound for a trained model's greedy captions (median 12). Medians of --repeats runs.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { readFlickr8k } from '../src/dataset/flickr8k.js';
import { decodeStoreImages } from '../src/decode/store.js';
import type { FeatureStoreReader } from '../src/features/types.js';
import { bleu } from '../src/metrics/bleu.js';
import { ciderD } from '../src/metrics/cider.js';
import { tokenizeCaption } from '../src/metrics/ptb-tokenizer.js';
import { createModel } from '../src/model/index.js';
import { TUTORIAL_MODEL_DEFAULTS } from '../src/model/types.js';
import { Rng } from '../src/util/rng.js';
import { median } from '../src/util/stats.js';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '1000' },
    'max-length': { type: 'string', default: '20' },
    repeats: { type: 'string', default: '3' },
    root: { type: 'string', default: '../shared/data/flickr8k' },
  },
});
const N = Number(values.images),
  maxLength = Number(values['max-length']),
  repeats = Number(values.repeats);
const L = 64,
  C = 2048,
  V = 5001;

/** Random features generated on read (deterministic per id), so 1000 images need no 0.5 GB buffer. */
class RandomStore implements FeatureStoreReader {
  readonly locations = L;
  readonly channels = C;
  readonly encoderId = 'random';
  ids() {
    return [];
  }
  has() {
    return true;
  }
  read(id: string, out = new Float32Array(L * C), offset = 0) {
    const rng = new Rng(Number(id.replace(/\D/g, '')) || 1);
    for (let i = 0; i < L * C; i++) out[offset + i] = rng.next() * 2;
    return out;
  }
  close() {}
}

const time = (fn: () => void) => {
  const t = performance.now();
  fn();
  return (performance.now() - t) / 1000;
};

const dev = readFlickr8k({ root: values.root })
  .images.filter((im) => im.split === 'dev')
  .slice(0, N);
const model = createModel({ ...TUTORIAL_MODEL_DEFAULTS, locations: L, channels: C, vocabSize: V }, { seed: 1 });
const vocab = { pad: 0, start: 1, end: 2, word: (id: number) => `w${id}` };
const store = new RandomStore();
const ids = dev.map((_, i) => `img${i + 1}`);

// The peer: training steps at batch 64 x 16 steps (the median Flickr8k caption is 12 words + <end>),
// timed in the same rounds as the decoding so both see the same machine load.
const B = 64,
  T = 16,
  rng = new Rng(7);
const features = Float32Array.from({ length: B * L * C }, () => rng.next() * 2);
const tokens = new Int32Array(B * (T + 1));
for (let i = 0; i < tokens.length; i++) tokens[i] = i % (T + 1) === 0 ? 1 : 3 + rng.int(V - 3);
const trainStep = () =>
  time(() => {
    model.trainStep({ size: B, steps: T, features, tokens }, { learningRate: 1e-4 });
  });
trainStep(); // warm-up
// One epoch = 30,000 captions of ~13 target tokens each.
const epochSeconds = (step: number) => step * (30000 / B) * (13 / T);

// Scoring: references tokenised once (as the validate hook does), hypotheses = another image's caption.
let refs: string[][] = [];
const tokRefS = time(() => {
  refs = dev.map((im) => im.captions.map(tokenizeCaption));
});
const hypsRaw = dev.map((_, i) => dev[(i + 1) % dev.length].captions[0]);

console.log(
  `${dev.length} Flickr8k dev images, greedy, max length ${maxLength}; load ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}`,
);
const decodeS: number[] = [],
  ciderS: number[] = [],
  bleuS: number[] = [],
  epochS: number[] = [],
  share: number[] = [];
let lengths = 0;
for (let r = 0; r < repeats; r++) {
  const steps = [trainStep(), trainStep()];
  const dec = time(() => {
    const caps = decodeStoreImages(model, store, ids, vocab, { maxLength, progress: `decode ${r + 1}/${repeats}` });
    lengths = caps.reduce((s, c) => s + c.ids.length + (c.finished ? 1 : 0), 0) / caps.length;
  });
  const cider = time(() => {
    ciderD(hypsRaw.map(tokenizeCaption), refs);
  });
  bleuS.push(
    time(() => {
      bleu(hypsRaw.map(tokenizeCaption), refs);
    }),
  );
  steps.push(trainStep(), trainStep());
  const epoch = epochSeconds(median(steps));
  decodeS.push(dec);
  ciderS.push(cider);
  epochS.push(epoch);
  share.push((dec + cider) / epoch);
}

const dec = median(decodeS);
console.log(
  `greedy decoding: median ${dec.toFixed(1)} s (${((1000 * dec) / dev.length).toFixed(1)} ms/image, mean ${lengths.toFixed(1)} tokens, ` +
    `${((1e6 * dec) / (dev.length * lengths)).toFixed(0)} us/image-token), runs ${decodeS.map((s) => s.toFixed(1)).join(' ')}`,
);
console.log(
  `references PTB-tokenised once: ${tokRefS.toFixed(2)} s; per epoch CIDEr-D ${median(ciderS).toFixed(2)} s, BLEU-4 ${median(bleuS).toFixed(2)} s (hypotheses tokenised)`,
);
console.log(
  `one training epoch (30,000 captions, from 4 steps of ${B}x${T} around each decoding run): median ${median(epochS).toFixed(0)} s; ` +
    `validation by CIDEr = ${share.map((x) => (100 * x).toFixed(1) + '%').join(' ')} of it (median ${(100 * median(share)).toFixed(1)}%)`,
);
model.dispose();
