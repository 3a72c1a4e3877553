/**
 * The vocabulary against hand-computed expectations of the Keras Tokenizer as the tutorial uses it:
 * filters, lowercasing, counts on train captions with <start>/<end>, count-then-first-occurrence order,
 * the top_k cut to <unk>, max-length truncation that keeps <end>, and the JSON round trip.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { tokenize, Vocabulary } from '../src/vocab/vocabulary.js';

const TRAIN = ['A dog runs.', 'A dog, and a cat!', "The man's hat (red)"];

describe('tokenize', () => {
  it('lowercases, turns the tutorial filters into spaces, keeps < > and apostrophes', () => {
    assert.deepEqual(tokenize('Hello-world "quoted" #1 50% e-mail: x@y.z <b>tag</b> it\'s\ttab'), [
      'hello',
      'world',
      'quoted',
      '1',
      '50',
      'e',
      'mail',
      'x',
      'y',
      'z',
      '<b>tag<',
      'b>',
      "it's",
      'tab',
    ]);
    assert.deepEqual(tokenize('<start> A (small) [dog] {x}|y~z ^_` . <end>'), [
      '<start>',
      'a',
      'small',
      'dog',
      'x',
      'y',
      'z',
      '<end>',
    ]);
    assert.deepEqual(tokenize('  '), []);
  });
});

describe('Vocabulary.build', () => {
  it('orders words by train count, ties by first occurrence, after <pad>=0 and <unk>=1', () => {
    const v = Vocabulary.build(TRAIN);
    // counts: <start> 3, a 3, <end> 3, dog 2, then the count-1 words in order of first appearance.
    assert.deepEqual(v.words, [
      '<pad>',
      '<unk>',
      '<start>',
      'a',
      '<end>',
      'dog',
      'runs',
      'and',
      'cat',
      'the',
      "man's",
      'hat',
      'red',
    ]);
    assert.deepEqual(v.counts, [0, 0, 3, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1]);
    assert.equal(v.size, 13); // V = min(top_k, 2 + 11 distinct tokens)
    assert.equal(v.distinctTrainTokens, 11);
    assert.equal(v.startId, 2);
    assert.equal(v.endId, 4);
    assert.equal(v.maxLength, 7); // "<start> a dog and a cat <end>"
  });

  it('breaks count ties by first occurrence, not alphabetically', () => {
    assert.deepEqual(Vocabulary.build(['b a', 'a b']).words, ['<pad>', '<unk>', '<start>', 'b', 'a', '<end>']);
  });

  it('keeps ids < top_k (Keras num_words): V = top_k, the rest is <unk>', () => {
    const v = Vocabulary.build(TRAIN, { topK: 6 });
    assert.equal(v.size, 6);
    assert.deepEqual(v.words, ['<pad>', '<unk>', '<start>', 'a', '<end>', 'dog']);
    assert.deepEqual(v.encode('A dog runs'), [2, 3, 5, 1, 4]);
    assert.deepEqual(v.encode('A zebra!'), [2, 3, 1, 4]);
    assert.equal(v.decode([2, 3, 5, 1, 4, 0, 0]), 'a dog <unk>');
  });

  it('truncates to max length, keeping <end> last', () => {
    const v = Vocabulary.build(TRAIN, { maxLength: 4 });
    assert.deepEqual(v.encode('A dog, and a cat!'), [2, 3, 5, 4]);
    assert.deepEqual(v.encode('dog'), [2, 5, 4]);
  });

  it('decodes up to the first <end>, skipping <start> and <pad>', () => {
    const v = Vocabulary.build(TRAIN);
    assert.equal(v.decode(v.encode("The man's hat (red)")), "the man's hat red");
    assert.deepEqual(v.decodeTokens([2, 0, 5, 4, 6, 6]), ['dog']);
  });

  it('refuses a top_k that cannot hold <start>/<end>, and an empty train split', () => {
    assert.throws(() => Vocabulary.build(['a a a'], { topK: 4 }), /top-k 4 is too small/);
    assert.throws(() => Vocabulary.build(['x'], { topK: 3 }), /--top-k must be an integer >= 4/);
    assert.throws(() => Vocabulary.build([]), /train split has no captions/);
  });

  it('saves to JSON and loads back identically', () => {
    const v = Vocabulary.build(TRAIN, { topK: 10, maxLength: 6 });
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sat-vocab-')), 'vocab.json');
    v.save(file);
    const w = Vocabulary.load(file);
    assert.deepEqual(w.toJSON(), v.toJSON());
    assert.equal(w.size, 10);
    assert.equal(w.maxLength, 6);
    assert.deepEqual(w.encode('a cat and a dog'), v.encode('a cat and a dog'));
    fs.writeFileSync(file, '{"format":"other"}');
    assert.throws(() => Vocabulary.load(file), /not a sat vocabulary/);
  });
});
