/**
 * Beam alternatives and the asynchronous search driver, over the hand-written next-token tables of
 * test/helpers/fake-model.ts: the best caption never changes when alternatives are asked for, and an
 * asynchronous model decodes exactly as the synchronous one.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeImages, decodeImagesAsync } from '../src/decode/index.js';
import type { CaptionOptions } from '../src/decode/options.js';
import { Rng } from '../src/util/rng.js';
import {
  AsyncTableModel,
  keyFeatures,
  STORY_TABLE,
  TABLE_VOCAB,
  TABLE_WORDS,
  TableModel,
  type NextTokenTable,
} from './helpers/fake-model.js';

const WORDS = TABLE_WORDS;
const V = WORDS.length;
const L = 4;
const vocab = TABLE_VOCAB;
/** "a c" .2, "b" .27, "a" .15, "" .2 ... (test/helpers/fake-model.ts) */
const story = STORY_TABLE;

function randomTable(key0 = 0): NextTokenTable {
  return (key, prefix) => {
    const rng = new Rng((((key + key0) * 7919) ^ prefix.reduce((h, t) => Math.imul(h, 31) + t + 1, 17)) >>> 0);
    const row = new Array(V).fill(0);
    row[vocab.end] = 0.05 + rng.next() * (0.1 + 0.2 * prefix.length);
    for (const w of [3, 4, 5, 6]) row[w] = rng.next();
    return row;
  };
}

test('alternatives: the k best finished hypotheses, best first, and the best caption is unchanged', () => {
  const model = new TableModel(V, L, story);
  const [c] = decodeImages(model, keyFeatures([0], L), 1, vocab, { beam: 3, maxLength: 5, alternatives: 3 });
  assert.deepEqual(c.words, ['b']);
  // Complete captions by probability: "b" .27, then "a c" and "" at .2 each (k = 3 keeps "": <end> ranks 3rd at step 0)
  const texts = c.alternatives!.map((a) => a.words.join(' '));
  assert.equal(texts[0], 'b');
  assert.deepEqual(texts.slice(1).sort(), ['', 'a c']);
  assert.ok(c.alternatives!.slice(1).every((a) => Math.abs(a.logProb - Math.log(0.2)) < 1e-6));
  assert.ok(c.alternatives!.every((a, i) => a.finished && (i === 0 || a.score <= c.alternatives![i - 1].score)));

  const table = randomTable();
  const keys = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
  for (const alpha of [0, 0.7, 1]) {
    for (const beam of [2, 3, 5]) {
      const opts = { beam, alpha, maxLength: 7 };
      const plain = decodeImages(new TableModel(V, L, table), keyFeatures(keys, L), keys.length, vocab, opts);
      const withAlt = decodeImages(new TableModel(V, L, table), keyFeatures(keys, L), keys.length, vocab, {
        ...opts,
        alternatives: beam,
      });
      withAlt.forEach((c, i) => {
        const { alternatives, ...best } = c;
        assert.deepEqual(best, plain[i], `alpha ${alpha} beam ${beam} image ${i}`);
        assert.ok(alternatives!.length >= 1 && alternatives!.length <= beam);
        assert.deepEqual(alternatives![0].ids, c.ids);
      });
    }
  }
  assert.throws(
    () => decodeImages(model, keyFeatures([0], L), 1, vocab, { beam: 2, maxLength: 5, alternatives: 3 }),
    /alternatives/,
  );
  // greedy decoding has no hypotheses to list: the list stays empty (as the Captioner API documents)
  assert.equal(
    decodeImages(model, keyFeatures([0], L), 1, vocab, { maxLength: 5, alternatives: 1 })[0].alternatives,
    undefined,
  );
});

test('an asynchronous model decodes exactly as the synchronous one (greedy, beam, sampling)', async () => {
  const table = randomTable(5);
  const keys = [2, 7, 1, 8, 2, 8];
  const strategies: CaptionOptions[] = [{}, { beam: 3, alpha: 0.5 }, { sample: true, seed: 3, temperature: 0.9 }];
  for (const strategy of strategies) {
    const opts = { ...strategy, maxLength: 6, batchSize: 4 };
    const sync = decodeImages(new TableModel(V, L, table), keyFeatures(keys, L), keys.length, vocab, opts);
    const async = await decodeImagesAsync(
      new AsyncTableModel(new TableModel(V, L, table)),
      keyFeatures(keys, L),
      keys.length,
      vocab,
      opts,
    );
    assert.deepEqual(async, sync, JSON.stringify(strategy));
  }
});
