/**
 * The decoding options past plain greedy/beam/sampling, over the hand-written next-token tables of
 * test/helpers/fake-model.ts: diverse beam search, top-k and top-p sampling, trigram blocking, and the one
 * check every front end uses. Each option changes what it should and nothing more.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeImages, type DecodedCaption, type DecodeOptions, type DecodeVocab } from '../src/decode/index.js';
import { checkCaptionOptions, resolveCaptionOptions, type CaptionOptions } from '../src/decode/options.js';
import * as api from '../src/decode/captioner-api.js';
import * as web from '../src/web/index.js';
import { categoricalChooser, imageRng, logSumExpRows } from '../src/decode/logits.js';
import { Rng } from '../src/util/rng.js';
import { keyFeatures, TableModel, type NextTokenTable } from './helpers/fake-model.js';

const WORDS = ['<pad>', '<start>', '<end>', '<unk>', 'a', 'b', 'c'];
const V = WORDS.length;
const L = 4;
const vocab: DecodeVocab = { pad: 0, start: 1, end: 2, unk: 3, word: (id) => WORDS[id] };
const p = (named: Record<string, number>) => WORDS.map((w) => named[w] ?? 0);
const text = (words: number[]) => words.map((id) => WORDS[id]).join(' ');

function decode(table: NextTokenTable, keys: number[], opts: Partial<DecodeOptions>): DecodedCaption[] {
  return decodeImages(new TableModel(V, L, table), keyFeatures(keys, L), keys.length, vocab, { maxLength: 8, ...opts });
}

/** A random next-token table; many repeats of a, b, c and a small chance of <end>. */
function randomTable(key0 = 0, endWeight = 0.1): NextTokenTable {
  return (key, prefix) => {
    const rng = new Rng((((key + key0) * 7919) ^ prefix.reduce((h, t) => Math.imul(h, 31) + t + 1, 17)) >>> 0);
    const row = new Array(V).fill(0);
    row[vocab.end] = 0.02 + rng.next() * endWeight * (1 + prefix.length);
    for (const w of [3, 4, 5, 6]) row[w] = rng.next();
    return row;
  };
}
const KEYS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];

/**
 * Both beams of plain beam search 2 continue with c; diverse beam search sends the second group elsewhere.
 *   []  -> a .6  b .4      [a] -> c .8  b .2      [b] -> c .7  a .3      anything longer -> <end> 1
 * Plain beam 2: "a c" .48, "b c" .28. Groups 2 (one beam each), diversity 10: group 0 takes a, then c;
 * group 1 avoids a at step 0 (b), then c at step 1 (taken by group 0): "b a" .12.
 */
const fork: NextTokenTable = (_key, words) => {
  switch (text(words)) {
    case '':
      return p({ a: 0.6, b: 0.4 });
    case 'a':
      return p({ c: 0.8, b: 0.2 });
    case 'b':
      return p({ c: 0.7, a: 0.3 });
    default:
      return p({ '<end>': 1 });
  }
};

test('diverse beam search: later groups avoid the words earlier groups chose at the same step', () => {
  const close = (x: number, y: number) => Math.abs(x - y) < 1e-6;
  const [plain] = decode(fork, [0], { beam: 2, alternatives: true });
  assert.deepEqual(
    plain.alternatives!.map((a) => text(a.ids)),
    ['a c', 'b c'],
  );

  const [diverse] = decode(fork, [0], { beam: 2, groups: 2, diversity: 10, alternatives: true });
  assert.equal(text(diverse.ids), 'a c');
  assert.ok(close(diverse.logProb, Math.log(0.48)));
  assert.deepEqual(
    diverse.alternatives!.map((a) => text(a.ids)),
    ['a c', 'b a'],
  );
  const second = diverse.alternatives![1];
  assert.ok(close(second.logProb, Math.log(0.12)) && close(second.score, Math.log(0.12)));

  // a weak penalty (0.1) outweighs neither a's nor c's lead: group 1 repeats "a c", its score lowered by the
  // penalty at both steps, its logProb the model's
  const [weak] = decode(fork, [0], { beam: 2, groups: 2, diversity: 0.1, alternatives: true });
  const [, again] = weak.alternatives!;
  assert.equal(text(again.ids), 'a c');
  assert.ok(close(again.logProb, Math.log(0.48)) && close(again.score, Math.log(0.48) - 0.2), JSON.stringify(again));
});

test('diverse beam search with one group is beam search; each group of width 1 without diversity is greedy', () => {
  for (const alpha of [0, 0.7]) {
    for (const beam of [2, 3, 4]) {
      const plain = decode(randomTable(), KEYS, { beam, alpha, alternatives: true, maxLength: 7 });
      assert.deepEqual(
        decode(randomTable(), KEYS, { beam, alpha, groups: 1, alternatives: true, maxLength: 7 }),
        plain,
      );
    }
  }
  const greedy = decode(randomTable(1), KEYS, {});
  const groups = decode(randomTable(1), KEYS, { beam: 3, groups: 3, diversity: 0 });
  assert.deepEqual(groups, greedy);
  // group 0 is never penalised (it is a plain beam search of width beam / groups), and the caption is the best
  // of all groups: it scores at least as well as that narrower beam search's caption
  const narrow = decode(randomTable(2), KEYS, { beam: 2, maxLength: 6 });
  const diverse = decode(randomTable(2), KEYS, { beam: 4, groups: 2, diversity: 2, alternatives: true, maxLength: 6 });
  diverse.forEach((c, i) => {
    assert.ok(c.alternatives![0].score >= narrow[i].logProb - 1e-9, `image ${i}`);
    assert.ok(
      c.alternatives!.every((a) => a.score <= a.logProb + 1e-9),
      'search scores include the penalties',
    );
  });
});

test('top-k 1 and top-p near 0 sample exactly the greedy captions; sampling without them is unchanged', () => {
  const table = randomTable(3);
  const greedy = decode(table, KEYS, {});
  for (const seed of [0, 1, 2]) {
    assert.deepEqual(decode(table, KEYS, { sample: true, seed, topK: 1 }), greedy, `topK 1 seed ${seed}`);
    assert.deepEqual(decode(table, KEYS, { sample: true, seed, topP: 1e-9 }), greedy, `topP 1e-9 seed ${seed}`);
    const free = decode(table, KEYS, { sample: true, seed });
    assert.deepEqual(
      decode(table, KEYS, { sample: true, seed, topK: V, topP: 1 }),
      free,
      'top-k V and top-p 1 keep every word',
    );
    assert.notDeepEqual(free, greedy);
  }
});

test('plain sampling (one partial pass over exp(logit - lse)) draws the tokens the general sampler draws', () => {
  const [rows, words] = [64, 2540];
  const rng = new Rng(11);
  const logits = Float32Array.from({ length: rows * words }, () => 12 * rng.next() - 6);
  for (let r = 0; r < rows; r += 7) logits[r * words + 5] = -Infinity; // a suppressed token
  logits.fill(-Infinity, 3 * words, 4 * words); // a row with nothing left to draw
  const lse = logSumExpRows(logits, rows, words);
  const streams = (seed: number) => {
    const byRow = Array.from({ length: rows }, (_, r) => imageRng(seed, r));
    return (row: number) => byRow[row];
  };
  const plain = categoricalChooser(1, streams(4));
  const general = categoricalChooser(1, streams(4), { topK: words });
  let differ = 0;
  for (let draw = 0; draw < 50; draw++)
    for (let r = 0; r < rows; r++) if (plain(logits, lse, r, words) !== general(logits, lse, r, words)) differ++;
  assert.equal(differ, 0);
  assert.equal(plain(logits, lse, 3, words), 0, 'a row without weight gives token 0, as the general path does');
});

test("top-k and top-p draw only among the likeliest words, in proportion; logProb stays the model's", () => {
  const three: NextTokenTable = (_k, words) => (words.length === 0 ? p({ a: 0.5, b: 0.3, c: 0.2 }) : p({ '<end>': 1 }));
  const keys = new Array(3000).fill(0);
  const firstWords = (o: CaptionOptions) => {
    const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
    const captions = decode(three, keys, { sample: true, seed: 7, ...o });
    for (const c of captions) counts[c.words[0]]++;
    return { share: (w: string) => counts[w] / keys.length, captions };
  };
  const topK = firstWords({ topK: 2 });
  assert.equal(topK.share('c'), 0);
  assert.ok(Math.abs(topK.share('a') - 0.5 / 0.8) < 0.03, `top-k 2: share of a ${topK.share('a')}`);
  const b = topK.captions.find((c) => c.words[0] === 'b')!;
  assert.ok(Math.abs(b.logProb - Math.log(0.3)) < 1e-6, 'logProb under the model, not the truncated draw');
  // the nucleus of p = 0.7 is {a, b} (0.5 < 0.7 <= 0.8); of p = 0.5 just {a}
  const nucleus = firstWords({ topP: 0.7 });
  assert.equal(nucleus.share('c'), 0);
  assert.ok(Math.abs(nucleus.share('a') - 0.5 / 0.8) < 0.03);
  assert.equal(firstWords({ topP: 0.5 }).share('a'), 1);
  // top-k first, then top-p of what is left: top-k 2 leaves a .625 b .375, whose 0.6-nucleus is {a}
  assert.equal(firstWords({ topK: 2, topP: 0.6 }).share('a'), 1);
});

/**
 * A model that loves "a b a b ...":  []: a .9;  after a: b .8 c .1;  after b: a .8 c .15;  after c: a .9 (rest <end>).
 * With trigram blocking, greedy gives a b a b, then "a" would repeat "a b a": c (.15 of the .2 left), a, b, and
 * then both "a b a" and "a b c" are taken: <end>, the only word left.
 */
const loop: NextTokenTable = (_key, words) => {
  const last = words.length === 0 ? '' : WORDS[words[words.length - 1]];
  if (last === '') return p({ a: 0.9, '<end>': 0.1 });
  if (last === 'a') return p({ b: 0.8, c: 0.1, '<end>': 0.1 });
  if (last === 'b') return p({ a: 0.8, c: 0.15, '<end>': 0.05 });
  return p({ a: 0.9, '<end>': 0.1 });
};

/** Whether some trigram occurs twice in `ids`. */
function repeatsTrigram(ids: number[]): boolean {
  const seen = new Set<string>();
  for (let i = 0; i + 3 <= ids.length; i++) {
    const key = ids.slice(i, i + 3).join(',');
    if (seen.has(key)) return true;
    seen.add(key);
  }
  return false;
}

test("trigram blocking: no trigram twice in a caption, the blocked words removed from the step's distribution", () => {
  const [free] = decode(loop, [0], { maxLength: 10 });
  assert.equal(text(free.ids), 'a b a b a b a b a b');
  const [blocked] = decode(loop, [0], { maxLength: 10, blockTrigrams: true });
  assert.equal(text(blocked.ids), 'a b a b c a b');
  assert.equal(blocked.finished, true);
  const want = Math.log(0.9) + 3 * Math.log(0.8) + Math.log(0.15 / 0.2) + Math.log(0.9) + Math.log(0.8) + Math.log(1);
  assert.ok(Math.abs(blocked.logProb - want) < 1e-6, `${blocked.logProb} vs ${want}`);

  let repeatedWithout = 0;
  for (const o of [
    {},
    { beam: 3, alternatives: true },
    { beam: 4, groups: 2 },
    { sample: true, seed: 5 },
  ] as CaptionOptions[]) {
    const table = randomTable(4, 0.01);
    const without = decode(table, KEYS, { ...o, maxLength: 12 });
    repeatedWithout += without.filter((c) => repeatsTrigram(c.ids)).length;
    for (const c of decode(table, KEYS, { ...o, maxLength: 12, blockTrigrams: true })) {
      for (const h of [c, ...(c.alternatives ?? [])])
        assert.ok(!repeatsTrigram(h.ids), `${JSON.stringify(o)}: ${text(h.ids)}`);
    }
  }
  assert.ok(repeatedWithout > 10, `the random tables repeat trigrams without blocking (${repeatedWithout} captions)`);
});

test('one check for every option: out-of-range and contradictory options are refused with the option named', () => {
  const refused: [CaptionOptions, RegExp][] = [
    [{ beam: 2, groups: 3 }, /^groups 3 is larger than the beam \(beam 2\)/],
    [{ beam: 6, groups: 4 }, /^groups 4 does not divide the beam \(beam 6\) into equal groups/],
    [{ groups: 2 }, /^groups 2 is larger than the beam \(beam 1\)/],
    [{ beam: 2, diversity: 0.5 }, /^diversity applies to diverse beam search: give groups G with G > 1/],
    [{ beam: 4, groups: 2, diversity: -1 }, /^diversity must be a number from 0 to 100, got -1\.$/],
    [{ sample: true, topP: 0 }, /^topP must be a number greater than 0 and at most 1, got 0\.$/],
    [{ sample: true, topP: 1.5 }, /^topP must be a number greater than 0 and at most 1, got 1\.5\.$/],
    [{ sample: true, topK: 0 }, /^topK must be an integer from 1 to 1000000, got 0\.$/],
    [{ sample: true, topK: 2.5 }, /^topK must be an integer/],
    [{ topK: 5, topP: 0.9 }, /^topK and topP apply to sample only: add sample, or leave them out\.$/],
    [{ blockTrigrams: 'yes' as unknown as boolean }, /^blockTrigrams must be true or false, got "yes"\.$/],
    [{ beam: 3, sample: true }, /^beam and sample exclude each other/],
    [{ beams: 3 } as CaptionOptions, /^unknown caption option\(s\) beams/],
  ];
  for (const [options, message] of refused) {
    const says = (e: unknown) => e instanceof Error && message.test(e.message);
    assert.throws(() => checkCaptionOptions(options), says, JSON.stringify(options));
    // the search code refuses them with the same words
    assert.throws(() => decode(fork, [0], options), says, JSON.stringify(options));
  }
  for (const ok of [
    { beam: 4, groups: 2 },
    { beam: 4, groups: 4, diversity: 0 },
    { sample: true, topK: 1, topP: 1 },
    { blockTrigrams: true },
  ] as CaptionOptions[]) {
    assert.doesNotThrow(() => checkCaptionOptions(ok), JSON.stringify(ok));
  }
  assert.equal(
    resolveCaptionOptions({ beam: 4, groups: 2 }, 20).diversity,
    0.5,
    'diverse beam search defaults to diversity 0.5',
  );
  // every front end imports this one function and table: the Captioner API, the browser entry
  assert.equal(api.checkCaptionOptions, checkCaptionOptions);
  assert.equal(web.checkCaptionOptions, checkCaptionOptions);
  assert.equal(web.CAPTION_OPTION_LIMITS, api.CAPTION_OPTION_LIMITS);
});
