/**
 * The PTB tokenizer approximation (src/metrics/ptb-tokenizer.ts) on caption text. Expected outputs follow
 * the rules of Stanford's PTBLexer with -lowerCase plus pycocoevalcap's punctuation removal.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ptbTokens, tokenizeCaption } from '../src/metrics/ptb-tokenizer.js';
import { pythonSplit } from '../src/metrics/python-split.js';
import { Rng } from '../src/util/rng.js';

const cases: [string, string][] = [
  // plain captions: lowercased, final period and commas dropped
  ['A man riding a wave on top of a surfboard.', 'a man riding a wave on top of a surfboard'],
  ['Two dogs, one brown and one white, play in the snow .', 'two dogs one brown and one white play in the snow'],
  ['What is this?! A cat; maybe: a dog!', 'what is this ?! a cat maybe a dog'], // "?!" is one token, not in the list
  // contractions and possessives split the PTB way
  ["The dog's owner can't find it", "the dog 's owner ca n't find it"],
  [
    "They're sure it won't rain and I'm sure we'll go, he'd say",
    "they 're sure it wo n't rain and i 'm sure we 'll go he 'd say",
  ],
  ["DON'T touch the kids' toys", "do n't touch the kids toys"],
  ['We cannot see it', 'we can not see it'],
  ["It's five o'clock", "it 's five o'clock"],
  ['A dog\u2019s bone', "a dog 's bone"], // curly apostrophe
  // hyphens stay inside words; dashes are dropped
  ['A black-and-white photo of a 3-year-old in a t-shirt', 'a black-and-white photo of a 3-year-old in a t-shirt'],
  ['A man - standing -- near a car \u2014 waiting', 'a man standing near a car waiting'],
  // brackets become -LRB-/-RRB- before lowercasing, so they survive pycocoevalcap's filter
  ['A sign (red) on [a] {pole}', 'a sign -lrb- red -rrb- on -lrb- a -rrb- -lcb- pole -rcb-'],
  // quotes of every kind are dropped
  ['A sign that says "stop" and \u201cgo\u201d', 'a sign that says stop and go'],
  ["A 'vintage' car", 'a vintage car'],
  // numbers, money, times, percents, fractions
  ['It costs $3.50 at 10:30 for 1,000 people, 50% off', 'it costs $ 3.50 at 10:30 for 1,000 people 50 % off'],
  ['Add \u00bd cup and/or 3/4 spoon', 'add 1\\/2 cup and\\/or 3\\/4 spoon'],
  // abbreviations keep their period
  [
    'Mr. Smith on St. Patrick\u2019s day at 5 p.m. in the U.S.',
    "mr. smith on st. patrick 's day at 5 p.m. in the u.s.",
  ],
  ['A sign that says no.', 'a sign that says no.'],
  // British spellings become American (Stanford's americanize default)
  // (word list plus "-our" -> "-or"; words outside both, like "colourful", stay British)
  [
    'A grey cat in the centre of a colourful theatre, its colour',
    'a gray cat in the center of a colourful theater its color',
  ],
  // ellipsis, symbols, unicode letters; emoji are untokenizable and deleted
  ['Waiting... for the bus & train', 'waiting for the bus & train'],
  ['Un caf\u00e9 tr\u00e8s chaud \ud83d\udc36 na\u00efve', 'un caf\u00e9 tr\u00e8s chaud na\u00efve'],
  ['\u4e00\u53ea\u732b', '\u4e00\u53ea\u732b'],
  // whitespace: tabs, newlines, runs of spaces
  ['  A\tdog\n on   grass  ', 'a dog on grass'],
  ['', ''],
  ['...', ''],
];

test('tokenizes typical caption text like pycocoevalcap', () => {
  for (const [input, expected] of cases) assert.equal(tokenizeCaption(input), expected, JSON.stringify(input));
});

test('keeps the tokens PTB produces before punctuation removal', () => {
  assert.deepEqual(ptbTokens('A dog (brown), running.'), ['a', 'dog', '-lrb-', 'brown', '-rrb-', ',', 'running', '.']);
  assert.deepEqual(ptbTokens('"Hi"'), ['``', 'hi', "''"]);
});

test('output is single-space separated with no empty tokens, so both Python splits agree', () => {
  for (const [input] of cases) {
    const t = tokenizeCaption(input);
    if (t === '') continue;
    assert.deepEqual(t.split(' '), pythonSplit(t), JSON.stringify(input));
  }
});

test('first-character rule filter never changes the tokens (random strings)', () => {
  const alphabet = [
    ...'aAbBcCnNoOtTsSyY019 .,;:!?\'"`-_()[]{}<>/\\*&$#@%+=~^|\u2019\u2018\u201c\u201d\u2014\u00bd\u00e9\u4e00\u00a0\t\n',
  ];
  const words = [
    'cannot',
    "n't",
    "'s",
    'Mr.',
    'U.S.',
    'p.m.',
    'etc.',
    'http://x.org/a',
    'a@b.com',
    '&amp;',
    '&quot;',
    'grey',
    '3.5',
    '1,000',
    '10:30',
    "o'clock",
    'x-ray',
    'AT&T',
    '...',
    '. . .',
    '---',
  ];
  const rng = new Rng(7);
  let checked = 0;
  for (let i = 0; i < 400; i++) {
    let s = '';
    const len = 1 + rng.int(30);
    for (let k = 0; k < len; k++)
      s += rng.next() < 0.15 ? words[rng.int(words.length)] : alphabet[rng.int(alphabet.length)];
    assert.deepEqual(ptbTokens(s), ptbTokens(s, true), JSON.stringify(s));
    checked++;
  }
  assert.equal(checked, 400);
});
