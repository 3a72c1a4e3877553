/**
 * Greedy, beam and sampled decoding over a hand-written next-token table (test/helpers/fake-model.ts),
 * so every expected caption and log-prob below is worked out by hand in the comments.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeImages, type DecodedCaption, type DecodeOptions } from '../src/decode/index.js';
import type { CaptionOptions } from '../src/decode/options.js';
import { logSumExpRows } from '../src/decode/logits.js';
import { decodeStoreImages } from '../src/decode/store.js';
import type { FeatureStoreReader } from '../src/features/types.js';
import { Rng } from '../src/util/rng.js';
import {
  keyFeatures,
  STORY_TABLE,
  TABLE_VOCAB,
  TABLE_WORDS,
  tableRow,
  tableText,
  TableModel,
  type NextTokenTable,
} from './helpers/fake-model.js';

const WORDS = TABLE_WORDS;
const V = WORDS.length;
const L = 4;
const vocab = TABLE_VOCAB;
const p = tableRow;
const join = tableText;
/** Image 0's table, worked out in test/helpers/fake-model.ts (STORY_TABLE). */
const story = STORY_TABLE;

function decode(table: NextTokenTable, keys: number[], opts: Partial<DecodeOptions>) {
  const model = new TableModel(V, L, table);
  const captions = decodeImages(model, keyFeatures(keys, L), keys.length, vocab, { maxLength: 5, ...opts });
  return { captions, model };
}

function oneHot(location: number): Float32Array {
  const a = new Float32Array(L);
  a[location] = 1;
  return a;
}

test('greedy follows the argmax and stops at <end> (not a word)', () => {
  const [c] = decode(story, [0], {}).captions;
  assert.deepEqual(c.words, ['a', 'c']);
  assert.deepEqual(c.ids, [4, 6]);
  assert.equal(c.finished, true);
  assert.ok(Math.abs(c.logProb - Math.log(0.2)) < 1e-6);
  // attention per word is the step's one-hot at (fed token % L): <start>=1, then a=4 -> 0
  assert.deepEqual(c.attention, [oneHot(1), oneHot(0)]);
});

test('beam search finds the more likely caption greedy misses; width 1 is greedy', () => {
  const [b2] = decode(story, [0], { beam: 2 }).captions;
  assert.deepEqual(b2.words, ['b']);
  assert.ok(Math.abs(b2.logProb - Math.log(0.27)) < 1e-6);
  assert.deepEqual(b2.attention, [oneHot(1)]);
  assert.equal(b2.finished, true);

  const [b1] = decode(story, [0], { beam: 1 }).captions;
  const [g] = decode(story, [0], {}).captions;
  assert.deepEqual(b1, g);
});

test('length normalisation (alpha 1) prefers the longer caption with the better per-token score', () => {
  const [c] = decode(story, [0], { beam: 2, alpha: 1 }).captions;
  assert.deepEqual(c.words, ['a', 'c']);
  assert.ok(Math.abs(c.logProb - Math.log(0.2)) < 1e-6); // logProb stays the raw sum
  // the attention is read back along the chosen beam: fed <start> (1), then a (4 % 4 = 0)
  assert.deepEqual(c.attention, [oneHot(1), oneHot(0)]);
});

test('no beam ever reaches <end>: the best unfinished beam at maxLength, never an empty result', () => {
  const never: NextTokenTable = () => p({ a: 0.6, b: 0.4 });
  // <end> never ranks among the top k = 2 extensions (with k = 3 it would, at step 0: "" would be the answer)
  const rare: NextTokenTable = () => p({ a: 0.59, b: 0.4, '<end>': 0.01 });
  for (const table of [never, rare]) {
    const strategies: CaptionOptions[] = [{ beam: 2 }, { beam: 2, alpha: 0.7 }, {}];
    if (table === never) strategies.push({ beam: 5 });
    for (const strategy of strategies) {
      const [c] = decode(table, [0], { ...strategy, maxLength: 4 }).captions;
      assert.deepEqual(c.words, ['a', 'a', 'a', 'a'], `${JSON.stringify(strategy)}`);
      assert.equal(c.finished, false);
      assert.equal(c.attention.length, 4);
      const pa = table === never ? 0.6 : 0.59;
      assert.ok(Math.abs(c.logProb - 4 * Math.log(pa)) < 1e-5);
    }
  }
});

test('<pad> and <start> are never emitted; <unk> only when not suppressed', () => {
  const pushy: NextTokenTable = (_k, words) =>
    words.length === 0 ? p({ '<pad>': 0.4, '<start>': 0.2, '<unk>': 0.25, a: 0.15 }) : p({ '<end>': 1 });
  const [g] = decode(pushy, [0], {}).captions;
  assert.deepEqual(g.words, ['<unk>']);
  assert.ok(Math.abs(g.logProb - Math.log(0.25 / 0.4)) < 1e-6); // renormalised without <pad>, <start>
  for (const strategy of [{}, { beam: 3 }, { sample: true, seed: 3 }]) {
    const [c] = decode(pushy, [0], { ...strategy, suppressUnk: true }).captions;
    assert.deepEqual(c.words, ['a'], JSON.stringify(strategy));
  }
});

test('ties go to the lower token id (greedy) and the lower beam (beam search)', () => {
  const tied: NextTokenTable = (_k, words) =>
    words.length === 0 ? p({ a: 0.4, b: 0.4, '<end>': 0.2 }) : p({ '<end>': 1 });
  assert.deepEqual(decode(tied, [0], {}).captions[0].words, ['a']);
  assert.deepEqual(decode(tied, [0], { beam: 2 }).captions[0].words, ['a']);
  assert.deepEqual(decode(tied, [0], { beam: 3 }).captions[0].words, ['a']);
});

/** Per-image random tables: image key k seeds its own distribution for every prefix. */
function randomTable(words: number[] = [3, 4, 5, 6]): NextTokenTable {
  return (key, prefix) => {
    const rng = new Rng(((key * 7919) ^ prefix.reduce((h, t) => Math.imul(h, 31) + t + 1, 17)) >>> 0);
    const row = new Array(V).fill(0);
    row[vocab.end] = 0.05 + rng.next() * (0.1 + 0.2 * prefix.length);
    for (const w of words) row[w] = rng.next();
    return row;
  };
}

test('a batch of images (chunked or not) decodes exactly as each image alone', () => {
  const table = randomTable();
  const keys = [3, 1, 4, 1, 5, 9, 2];
  const strategies: CaptionOptions[] = [
    {},
    { beam: 3 },
    { beam: 4, alpha: 0.7 },
    { sample: true, seed: 11, temperature: 0.8 },
  ];
  for (const strategy of strategies) {
    const together = decode(table, keys, { ...strategy, maxLength: 6 }).captions;
    const chunked = decode(table, keys, { ...strategy, maxLength: 6, batchSize: 3 }).captions;
    assert.deepEqual(chunked, together, JSON.stringify(strategy));
    assert.equal(together.length, keys.length);
    if (strategy.sample) continue; // a sampled image's stream depends on its index in the call
    keys.forEach((key, i) => {
      const alone = decode(table, [key], { ...strategy, maxLength: 6 }).captions[0];
      assert.deepEqual(together[i], alone, `${JSON.stringify(strategy)} image ${i}`);
    });
    assert.deepEqual(together[1], together[3]); // same key, same caption
  }
});

/** Exhaustive search: the best complete caption (or, if none can end, nothing) by normalised log-prob. */
function bruteForce(
  table: NextTokenTable,
  key: number,
  maxLength: number,
  alpha: number,
): { ids: number[]; logProb: number } {
  let best = { ids: [] as number[], logProb: -Infinity, score: -Infinity };
  const visit = (prefix: number[], logProb: number) => {
    const logits = Float32Array.from(table(key, prefix), (q) => Math.log(q));
    for (const id of [vocab.pad, vocab.start]) logits[id] = -Infinity;
    const lse = logSumExpRows(logits, 1, V)[0];
    const lp = Array.from(logits, (x) => x - lse);
    const done = logProb + lp[vocab.end];
    const score = done / Math.pow(prefix.length + 1, alpha);
    if (score > best.score) best = { ids: prefix, logProb: done, score };
    if (prefix.length + 1 >= maxLength) return;
    for (let v = 0; v < V; v++) if (v !== vocab.end && lp[v] > -Infinity) visit([...prefix, v], logProb + lp[v]);
  };
  visit([], 0);
  return best;
}

test('a beam wide enough to keep every hypothesis finds the exhaustive optimum', () => {
  const table = randomTable([4, 5]);
  for (const alpha of [0, 0.7, 1]) {
    for (let key = 0; key < 6; key++) {
      const [c] = decode(table, [key], { beam: 32, alpha, maxLength: 4 }).captions;
      const want = bruteForce(table, key, 4, alpha);
      assert.deepEqual(c.ids, want.ids, `key ${key} alpha ${alpha}`);
      assert.ok(Math.abs(c.logProb - want.logProb) < 1e-9);
      assert.equal(c.finished, true);
    }
  }
});

test('finished captions leave the batch: greedy steps only the rows still decoding', () => {
  // image key 0 ends after 1 word, key 1 after 3 words
  const lengths: NextTokenTable = (key, words) =>
    words.length >= (key === 0 ? 1 : 3) ? p({ '<end>': 1 }) : p({ a: 1 });
  const { captions, model } = decode(lengths, [0, 1], { maxLength: 10 });
  assert.deepEqual(
    captions.map((c) => c.words.length),
    [1, 3],
  );
  assert.equal(model.steps, 4);
  assert.equal(model.rowsStepped, 2 + 2 + 1 + 1);
});

test('sampling: reproducible per seed, temperature -> 0 is greedy, frequencies follow the model', () => {
  const coin: NextTokenTable = (_k, words) => (words.length === 0 ? p({ a: 0.7, b: 0.3 }) : p({ '<end>': 1 }));
  const keys = new Array(2000).fill(0);
  const run = (seed: number, temperature = 1) => decode(coin, keys, { sample: true, seed, temperature }).captions;
  const a = run(5);
  assert.deepEqual(run(5), a);
  const share = (cs: DecodedCaption[]) => cs.filter((c) => c.words[0] === 'a').length / cs.length;
  assert.ok(Math.abs(share(a) - 0.7) < 0.04, `share of "a" ${share(a)}`);
  assert.notDeepEqual(
    run(6).map((c) => c.words[0]),
    a.map((c) => c.words[0]),
  );
  // T = 2 flattens 0.7 / 0.3 to sqrt(0.7) : sqrt(0.3) = 0.604; T = 0.01 is greedy
  assert.ok(Math.abs(share(run(7, 2)) - Math.sqrt(0.7) / (Math.sqrt(0.7) + Math.sqrt(0.3))) < 0.04);
  assert.equal(share(run(8, 0.01)), 1);
  // logProb is under the model (T = 1) whatever the temperature
  const b = run(9, 2).find((c) => c.words[0] === 'b')!;
  assert.ok(Math.abs(b.logProb - Math.log(0.3)) < 1e-6);
});

test('samplesPerImage: K samples per image, each image encoded once, equal to decoding the image K times', () => {
  const keys = [0, 1, 2];
  const strategy = { sample: true, seed: 4 };
  const repeated = decode(
    story,
    keys.flatMap((k) => [k, k, k, k]),
    strategy,
  );
  for (const batchSize of [1, 2, 64]) {
    const { captions, model } = decode(story, keys, { ...strategy, samplesPerImage: 4, batchSize });
    assert.deepEqual(captions, repeated.captions, `batchSize ${batchSize}`);
    assert.equal(model.encodedRows, keys.length, 'each image encoded once');
  }
  assert.throws(() => decode(story, keys, { beam: 2, samplesPerImage: 2 }), /samplesPerImage/);
  assert.throws(() => decode(story, keys, { ...strategy, samplesPerImage: 0 }), /samplesPerImage/);
});

test('bad options are refused with the option named', () => {
  assert.throws(() => decode(story, [0], { beam: 0 }), /^Error: beam must be an integer from 1 to 100, got 0\.$/);
  assert.throws(() => decode(story, [0], { maxLength: 0 }), /maxLength/);
  assert.throws(() => decode(story, [0], { sample: true, temperature: 0 }), /temperature/);
  const model = new TableModel(V, L, story);
  assert.throws(() => decodeImages(model, new Float32Array(3), 1, vocab, { maxLength: 3 }), /expected n \* L \* C/);
});

test('decoding from a feature store reads one batch at a time and matches decoding the features directly', () => {
  const table = randomTable();
  const keys = [2, 7, 1, 8, 2, 8, 1];
  const ids = keys.map((_, i) => `img${i}`);
  const features = keyFeatures(keys, L);
  let reads = 0;
  const store: FeatureStoreReader = {
    locations: L,
    channels: 1,
    encoderId: 'keys',
    ids: () => ids,
    has: (id) => ids.includes(id),
    close: () => {},
    read(id, out = new Float32Array(L), offset = 0) {
      reads++;
      const i = ids.indexOf(id);
      out.set(features.subarray(i * L, (i + 1) * L), offset);
      return out;
    },
  };
  const strategy = { beam: 3 };
  const direct = decodeImages(new TableModel(V, L, table), features, keys.length, vocab, { ...strategy, maxLength: 6 });
  const fromStore = decodeStoreImages(new TableModel(V, L, table), store, ids, vocab, {
    ...strategy,
    maxLength: 6,
    batchSize: 3,
    progress: false,
  });
  assert.deepEqual(fromStore, direct);
  assert.equal(reads, keys.length);
  assert.throws(
    () =>
      decodeStoreImages(new TableModel(V, L, table), store, ['nope'], vocab, {
        ...strategy,
        maxLength: 6,
        progress: false,
      }),
    /no stored features/,
  );
});
