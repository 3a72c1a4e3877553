/**
 * Consensus reranking (src/decode/consensus.ts): the memory's nearest images are the brute-force ones, the ranking
 * is the agreement CIDEr-D says plus the fluency term, and a search with `consensus` returns the winning candidate
 * decoded along its own words (its attention and log-probability), with the ranked candidates as alternatives. The
 * memory travels in a bundle (int8 rows, memory-files.ts) and a captioner without one refuses consensus.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CaptionMemory,
  NEIGHBOUR_TEMPERATURE,
  pooledVectors,
  type CaptionMemoryData,
} from '../src/decode/consensus.js';
import { decodeImages, decodeImagesAsync } from '../src/decode/index.js';
import { checkCaptionOptions, resolveCaptionOptions } from '../src/decode/options.js';
import { createCaptioner, type CaptionRuntime } from '../src/decode/captioner-api.js';
import { dequantiseRows, memoryBundleFiles, quantiseRows, readBundleMemory } from '../src/export/memory-files.js';
import { CiderD } from '../src/metrics/cider.js';
import { Rng } from '../src/util/rng.js';
import { AsyncTableModel, keyFeatures, STORY_TABLE, TableModel, TABLE_VOCAB } from './helpers/fake-model.js';

const L = 4;
const story = () => new TableModel(TABLE_WORDS_COUNT, L, STORY_TABLE);
const TABLE_WORDS_COUNT = 7;

/**
 * A memory whose first images hold `captions`, then two images of unrelated captions, so CIDEr-D's document
 * frequencies give the voting n-grams weight. C = 1: every image is equally near, so the k nearest are the first k.
 */
function votingMemory(captions: string[][]): CaptionMemory {
  const all = [...captions, ['x y z'], ['w v']];
  return new CaptionMemory({
    encoderId: 'table',
    channels: 1,
    vectors: new Float32Array(all.length).fill(1),
    captions: all,
  });
}

test('pooledVectors: the mean over locations, L2-normalised; zero features stay zero', () => {
  const f = Float32Array.from([1, 2, 3, 4, 0, 0, 0, 0]); // image 0: [1,2],[3,4]; image 1: zeros (L 2, C 2)
  const v = pooledVectors(f, 2, 2, 2);
  const n = Math.hypot(2, 3);
  assert.deepEqual(
    Array.from(v.subarray(0, 2)).map((x) => +x.toFixed(6)),
    [+(2 / n).toFixed(6), +(3 / n).toFixed(6)],
  );
  assert.deepEqual(Array.from(v.subarray(2)), [0, 0]);
  assert.throws(() => pooledVectors(f, 3, 2, 2), /expected n \* L \* C/);
});

test('nearest: the k memory images of highest cosine similarity, most similar first, as brute force says', () => {
  const rng = new Rng(11);
  const M = 60,
    C = 5;
  const raw = Float32Array.from({ length: M * C }, () => rng.next() - 0.5);
  const vectors = pooledVectors(raw, M, 1, C);
  const memory = new CaptionMemory({
    encoderId: 'x',
    channels: C,
    vectors,
    captions: Array.from({ length: M }, (_, j) => [`caption ${j}`]),
  });
  for (let q = 0; q < 10; q++) {
    const query = pooledVectors(
      Float32Array.from({ length: C }, () => rng.next() - 0.5),
      1,
      1,
      C,
    );
    const sims = Array.from({ length: M }, (_, j) => {
      let s = 0;
      for (let c = 0; c < C; c++) s += vectors[j * C + c] * query[c];
      return { j, s };
    }).sort((a, b) => b.s - a.s || a.j - b.j);
    for (const k of [1, 7, M, M + 5])
      assert.deepEqual(
        memory.nearest(query, k),
        sims.slice(0, k).map((x) => x.j),
      );
  }
  assert.throws(() => memory.nearest(new Float32Array(C + 1), 3), /a query of 6 values, expected 5/);
});

test('rerank: CIDEr-D against each neighbour, weighted by its votes, plus weight x logProb / length^0.5, duplicates once', () => {
  const captions = [['a b c', 'a b'], ['a b'], ['b c', 'c'], ['a c']];
  const memory = new CaptionMemory({
    encoderId: 'x',
    channels: 2,
    vectors: Float32Array.from([1, 0, 0.8, 0.6, 0, 1, -1, 0]),
    captions,
  });
  const cider = new CiderD(captions);
  for (const text of ['a b', 'b c x', ''])
    assert.deepEqual(
      cider.scoreImages(text, [3, 0, 3]),
      [3, 0, 3].map((j) => cider.score(text, j)),
    );
  const candidates = [
    { words: ['b', 'c'], logProb: -1, finished: true },
    { words: ['a', 'b'], logProb: -3, finished: true },
    { words: ['a', 'b'], logProb: -3, finished: true },
    { words: ['a'], logProb: -0.5, finished: false },
  ];
  const query = Float32Array.from([1, 0]); // nearest: image 0 (cos 1), then image 1 (cos 0.8)
  const votes = [1, Math.exp(-0.2 / NEIGHBOUR_TEMPERATURE)].map((v, _, all) => v / (all[0] + all[1]));
  CaptionMemory.votes(memory.neighbours(query, 2)).forEach((v, j) => assert.ok(Math.abs(v - votes[j]) < 1e-6));
  for (const weight of [0, 0.05, 5]) {
    const ranked = memory.rerank(candidates, query, 2, weight);
    assert.equal(ranked.length, 3, 'the repeated "a b" is ranked once');
    const expected = [candidates[0], candidates[1], candidates[3]]
      .map((c) => {
        const text = c.words.join(' ');
        const agreement = votes[0] * cider.score(text, 0) + votes[1] * cider.score(text, 1);
        const length = c.words.length + (c.finished ? 1 : 0);
        return { text, score: agreement + (weight * c.logProb) / Math.sqrt(length) };
      })
      .sort((a, b) => b.score - a.score);
    assert.deepEqual(
      ranked.map((r) => r.candidate.words.join(' ')),
      expected.map((e) => e.text),
      `weight ${weight}`,
    );
    ranked.forEach((r, i) => assert.ok(Math.abs(r.score - expected[i].score) < 1e-6));
  }
  assert.equal(memory.rerank(candidates, query, 2, 0)[0].candidate.words.join(' '), 'a b', 'the neighbours say "a b"');
  assert.equal(
    memory.rerank(candidates, query, 2, 100)[0].candidate.words.join(' '),
    'a',
    'fluency wins at weight 100',
  );
});

test('a consensus search returns the winner decoded along its own words, with the ranked candidates', async () => {
  // STORY_TABLE: beam 2 (alpha 0) gives "b"; the beam's other hypothesis is "a c". The memory votes for "a c".
  const features = keyFeatures([1, 1], L);
  const memory = votingMemory([['a c'], ['a c', 'a']]); // the 2 nearest
  const o = { beam: 2, consensus: 2, consensusSamples: 0, consensusWeight: 0, alternatives: true, maxLength: 8 };
  const plain = decodeImages(story(), features, 2, TABLE_VOCAB, { beam: 2, maxLength: 8 });
  assert.deepEqual(plain[0].words, ['b']);
  const reranked = decodeImages(story(), features, 2, TABLE_VOCAB, { ...o, memory });
  for (const c of reranked) {
    assert.deepEqual(c.words, ['a', 'c']);
    assert.ok(c.finished);
    assert.ok(Math.abs(c.logProb - Math.log(0.5 * 0.4 * 1)) < 1e-6, `log p of "a c": ${c.logProb}`);
    // the table's attention is one-hot at (fed token % L): <start> (1) then "a" (4 -> 0)
    assert.deepEqual(
      c.attention.map((row) => Array.from(row).indexOf(1)),
      [1, 0],
    );
    assert.deepEqual(
      c.alternatives!.map((a) => a.words.join(' ')),
      ['a c', 'b'],
    );
    assert.ok(c.alternatives![0].score > c.alternatives![1].score);
  }
  const viaAsync = await decodeImagesAsync(new AsyncTableModel(story()), features, 2, TABLE_VOCAB, { ...o, memory });
  assert.deepEqual(viaAsync, reranked, 'the asynchronous search (ONNX backends) reranks the same');
  assert.throws(() => decodeImages(story(), features, 2, TABLE_VOCAB, o), /needs a caption memory/);
  const wide = new CaptionMemory({
    encoderId: 't',
    channels: 2,
    vectors: Float32Array.from([1, 0]),
    captions: [['a']],
  });
  assert.throws(
    () => decodeImages(story(), features, 2, TABLE_VOCAB, { ...o, memory: wide }),
    /holds 2-channel features; this model reads 1/,
  );
});

test('consensus samples: seeded, the same whatever the batch, and candidates next to the beam', () => {
  const features = keyFeatures([1, 1, 1, 1, 1], L);
  const memory = votingMemory([['a b c'], ['a b']]);
  const o = {
    beam: 2,
    consensus: 2,
    consensusSamples: 6,
    consensusWeight: 0,
    alternatives: true,
    maxLength: 8,
    memory,
  };
  const whole = decodeImages(story(), features, 5, TABLE_VOCAB, { ...o, seed: 3 });
  const batched = decodeImages(story(), features, 5, TABLE_VOCAB, { ...o, seed: 3, batchSize: 2 });
  assert.deepEqual(batched, whole);
  // Sampled captions join the beam's two hypotheses: more than two distinct candidates are ranked.
  assert.ok(whole.some((c) => c.alternatives!.length > 2));
  for (const c of whole) assert.ok(c.alternatives!.every((a, i, all) => i === 0 || all[i - 1].score >= a.score));
});

test('option checks: consensus settings only with consensus, not with sampling, and two candidates at least', () => {
  const bad: [object, RegExp][] = [
    [{ consensusSamples: 5 }, /consensusSamples applies to consensus reranking only: add consensus K/],
    [
      { consensusWeight: 1, consensusSamples: 2 },
      /consensusSamples and consensusWeight apply to consensus reranking only/,
    ],
    [{ consensus: 5, sample: true }, /consensus reranks beam search's hypotheses .* leave sample out/],
    [{ consensus: 5, consensusSamples: 0 }, /consensus needs candidates to choose from/],
    [{ consensus: 0 }, /consensus must be an integer from 1 to 1000, got 0/],
    [{ consensus: 5, consensusSamples: 1001 }, /consensusSamples must be an integer from 0 to 1000/],
    [{ consensus: 5, consensusWeight: -1 }, /consensusWeight must be a number from 0 to 100/],
    [
      { consensus: 5, beam: 3, consensusSamples: 2, alternatives: 6 },
      /alternatives must be .* from 0 to beam \+ consensusSamples \(5\)/,
    ],
  ];
  for (const [o, message] of bad) assert.throws(() => checkCaptionOptions(o), message, JSON.stringify(o));
  checkCaptionOptions({ consensus: 5, seed: 4 }); // the seed draws the consensus samples
  checkCaptionOptions({ consensus: 5, beam: 3, consensusSamples: 0, alternatives: 3 });
  const r = resolveCaptionOptions({ consensus: 30, beam: 3, alternatives: true }, 20);
  assert.deepEqual([r.consensus, r.consensusSamples, r.consensusWeight, r.alternatives], [30, 20, 0.05, 23]);
  const off = resolveCaptionOptions({ beam: 3 }, 20);
  assert.deepEqual([off.consensus, off.consensusSamples, off.consensusWeight], [0, 0, 0]);
});

test('bundle memory files: int8 rows within a step of the vectors, checked sizes, read back as a memory', () => {
  const rng = new Rng(2);
  const M = 9,
    C = 16;
  const vectors = pooledVectors(
    Float32Array.from({ length: M * C }, () => rng.next() - 0.3),
    M,
    1,
    C,
  );
  const back = dequantiseRows(quantiseRows(vectors, M, C), M, C);
  for (let j = 0; j < M; j++) {
    const row = vectors.subarray(j * C, (j + 1) * C);
    const step = Math.max(...Array.from(row, Math.abs)) / 127;
    row.forEach((x, c) => assert.ok(Math.abs(back[j * C + c] - x) <= step / 2 + 1e-7));
  }
  const data: CaptionMemoryData = {
    encoderId: 'enc',
    channels: C,
    vectors,
    captions: Array.from({ length: M }, (_, j) => [`w${j} x`, 'y']),
  };
  const { entry, files } = memoryBundleFiles(data, { run: 'r', split: 'train' });
  assert.deepEqual([entry.images, entry.channels, entry.dtype], [M, C, 'int8']);
  assert.equal(files.get(entry.vectors)!.byteLength, M * 4 + M * C);
  const memory = readBundleMemory(entry, files);
  assert.equal(memory.size, M);
  const query = back.subarray(3 * C, 4 * C);
  assert.equal(memory.nearest(query, 1)[0], 3);
  const short = new Map(files);
  short.set(entry.vectors, files.get(entry.vectors)!.subarray(1));
  assert.throws(() => readBundleMemory(entry, short), /expected 9 scales and 9 x 16 int8 values/);
  const broken = new Map(files);
  broken.set(entry.captions, new TextEncoder().encode('[["a"]]'));
  assert.throws(() => readBundleMemory(entry, broken), /must hold 9 lists of caption strings/);
});

test('a captioner without a memory refuses consensus, naming the fix; with one it reranks', async () => {
  const runtime = (memory?: CaptionMemory): CaptionRuntime<number> => ({
    info: {
      modelId: 'story',
      backend: 'native',
      source: 'table',
      encoderId: 'table',
      inputSize: 1,
      scaling: null,
      inputLayout: 'nhwc',
      locations: L,
      grid: [2, 2],
      vocabSize: 7,
      maxLength: 8,
      dtype: 'fp32',
      consensus: memory !== undefined,
    },
    vocab: TABLE_VOCAB,
    preprocess: async () => new Uint8Array(3),
    encode: async (rgb) =>
      keyFeatures(
        rgb.map(() => 1),
        L,
      ),
    decode: async (features, n, o) => decodeImages(story(), features, n, TABLE_VOCAB, o),
    ...(memory ? { memory: () => memory } : {}),
    dispose: async () => {},
  });
  await assert.rejects(
    createCaptioner(runtime()).caption(0, { beam: 2, consensus: 3 }),
    /needs a caption memory, and story has none: export the model with `sat export --memory RUN`/,
  );
  const captioner = createCaptioner(runtime(votingMemory([['a c'], ['a c']])));
  const result = await captioner.caption(0, { beam: 2, consensus: 2, consensusSamples: 0, consensusWeight: 0 });
  assert.equal(result.caption, 'a c');
  assert.deepEqual(
    result.words.map((w) => Array.from(w.attention).indexOf(1)),
    [1, 0],
  );
});
