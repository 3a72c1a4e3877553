/**
 * Decoding on the real native model: a tiny seeded model (weights scaled up so its distributions are
 * peaked and the search choices non-trivial) with fixed features, pinned to exact token sequences.
 * If the model's arithmetic or the search changes, these move; the margin check below makes sure the
 * pins do not sit on a near-tie that BLAS rounding alone could flip.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeImages, type DecodeOptions } from '../src/decode/index.js';
import { Rng } from '../src/util/rng.js';
import { modelConfig, peakedModel } from './helpers/model-fixture.js';

const V = 10,
  L = 4,
  C = 3,
  N = 4;
const vocab = { pad: 0, unk: 1, start: 2, end: 3, word: (id: number) => `w${id}` };

function tinyModel() {
  const model = peakedModel(modelConfig([L, C, 8, 8, 8, V]), 1);
  const rng = new Rng(5);
  const features = Float32Array.from({ length: N * L * C }, () => rng.next() * 2);
  return { model, features };
}

/** "9,6,6" and a trailing "…" when the caption hit maxLength without <end>. */
const show = (c: { ids: number[]; finished: boolean }) => c.ids.join(',') + (c.finished ? '' : '…');

test('tiny seeded native model: greedy, beam, diverse beam, sampled and trigram-blocked captions are pinned', () => {
  const { model, features } = tinyModel();
  const cases: [Omit<DecodeOptions, 'maxLength'>, string[]][] = [
    [{}, ['1,1,1,1,1,1,1,1…', '1,6,6,6,6,6,6,6…', '1,1,1,1,1,1,1,1…', '9,6']],
    // beam search finds a likelier second caption than greedy (-1.8303 vs -1.9203)
    [{ beam: 3 }, ['1,1,1,1,1,1,1,1…', '9,6,6,6,6,6,6,6…', '1,1,1,1,1,1,1,1…', '9,6']],
    [{ suppressUnk: true }, ['9,9,9,9,9,9,9,9…', '9,6,6,6,6,6,6,6…', '9,6,6,6,6,6,6,6…', '9,6']],
    // ... and a finished caption where greedy runs out of steps
    [{ beam: 3, suppressUnk: true }, ['9,6,6,6,6,6,6', '9,6,6,6,6,6,6,6…', '9,6,6,6,6,6,6,6…', '9,6']],
    [
      { sample: true, seed: 1, suppressUnk: true },
      ['9,6,6,6,6,6,6', '9,6,6,6,6,6,6', '9,6,6,6,6,6,6,6…', '9,9,6,6,6,6,6,6…'],
    ],
    // trigram blocking breaks greedy's and the beam's loops (no trigram twice: 1,1,1 then 6 ...)
    [{ blockTrigrams: true }, ['1,1,1,6,1,1,9,6…', '1,6,6,6,1,6', '1,1,1,6,6,6,1,1…', '9,6']],
    [{ beam: 3, blockTrigrams: true }, ['1,1,1,6,1,1,9,6…', '9,6,6,6', '1,1,1,9,6,6,6,1…', '9,6']],
    // diverse beam search (2 groups of 2) against plain beam 4
    [{ beam: 4, suppressUnk: true }, ['9,6', '9,6,6,6,6,6,6,6…', '9,6,6', '9,6']],
    [{ beam: 4, groups: 2, suppressUnk: true }, ['9,6,6,6,6,6,6', '9,6,6,6,6,6,6,6…', '9,6,6,6,6,6,6,6…', '9,6']],
    // the nucleus (p 0.8) keeps the draw near the likeliest words; top-k 1 is greedy
    [
      { sample: true, seed: 1, suppressUnk: true, topP: 0.8 },
      ['9,6,6,6,6,6,6,6…', '9,6,6,6,6,6,6,6…', '9,6,6,6,6,6,6,6…', '9,9,6,6,6,6,6,6…'],
    ],
    [
      { sample: true, seed: 1, suppressUnk: true, topK: 1 },
      ['9,9,9,9,9,9,9,9…', '9,6,6,6,6,6,6,6…', '9,6,6,6,6,6,6,6…', '9,6'],
    ],
  ];
  for (const [opts, want] of cases) {
    const got = decodeImages(model, features, N, vocab, { ...opts, maxLength: 8 });
    assert.deepEqual(got.map(show), want, JSON.stringify(opts));
    for (const c of got) {
      assert.equal(c.attention.length, c.ids.length);
      for (const a of c.attention) assert.ok(Math.abs(a.reduce((s, x) => s + x, 0) - 1) < 1e-5);
    }
  }
  const greedy = decodeImages(model, features, N, vocab, { maxLength: 8 });
  const beam = decodeImages(model, features, N, vocab, { beam: 3, maxLength: 8 });
  assert.ok(Math.abs(greedy[1].logProb - -1.9203) < 1e-3 && Math.abs(beam[1].logProb - -1.8303) < 1e-3);
  model.dispose();
});

test("the pinned greedy paths are not near-ties: every step's best token leads by > 1e-3", () => {
  const { model, features } = tinyModel();
  let state = model.encode(features, N);
  let tokens = new Int32Array(N).fill(vocab.start);
  const ended = new Array(N).fill(false);
  for (let t = 0; t < 8; t++) {
    const out = model.step(state, tokens);
    for (let r = 0; r < N; r++) {
      if (ended[r]) continue;
      const row = Array.from(out.logits.subarray(r * V, (r + 1) * V)).map((x, v) =>
        v === vocab.pad || v === vocab.start ? -Infinity : x,
      );
      const sorted = [...row].sort((a, b) => b - a);
      assert.ok(sorted[0] - sorted[1] > 1e-3, `step ${t} row ${r}: margin ${sorted[0] - sorted[1]}`);
      tokens[r] = row.indexOf(sorted[0]);
      ended[r] = tokens[r] === vocab.end;
    }
    state = { ...state, hidden: out.hidden };
    tokens = Int32Array.from(tokens);
  }
  model.dispose();
});
