/** scoreCaptions (tokenise + score), the caption file formats, and the `sat score` command. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parseHypotheses, parseReferences } from '../src/metrics/caption-files.js';
import { MissingReferencesError, SCORE_NAMES, scoreCaptions, scoreTokenized } from '../src/metrics/score.js';
import { UserError } from '../src/util/errors.js';
import { sat } from './helpers/cli-run.js';

const refs = new Map([
  ['1', ['A man riding a horse on a beach.', 'A person rides a horse near the ocean.']],
  ['2', ['Two dogs playing in the grass.', "The dogs' game: fetch!"]],
  ['3', ['A grey cat (sleeping) on a couch.']],
]);
const hyps = new Map([
  ['1', 'A man riding a horse.'],
  ['2', 'Two dogs play, in grass.'],
]);

test('scoreCaptions = PTB tokenisation then the metrics, on the hypothesis images only', () => {
  const ours = scoreCaptions(refs, hyps);
  const byHand = scoreTokenized(
    ['a man riding a horse', 'two dogs play in grass'],
    [
      ['a man riding a horse on a beach', 'a person rides a horse near the ocean'],
      ['two dogs playing in the grass', 'the dogs game fetch'],
    ],
  );
  assert.deepEqual(ours, byHand);
  for (const name of SCORE_NAMES) assert.ok(Number.isFinite(ours[name]) && ours[name] > 0, name);
});

test('scoreCaptions names the hypothesis ids that have no references', () => {
  assert.throws(
    () =>
      scoreCaptions(
        refs,
        new Map([
          ['1', 'a man'],
          ['9', 'x'],
          ['10', 'y'],
        ]),
      ),
    (e: unknown) => {
      assert.ok(e instanceof MissingReferencesError);
      assert.deepEqual(e.missing, ['9', '10']);
      assert.match(e.message, /"9", "10"/);
      return true;
    },
  );
});

test('reads both reference formats and both hypothesis formats, ids as strings', () => {
  const coco = parseReferences({
    images: [],
    annotations: [
      { image_id: 7, caption: 'a' },
      { image_id: 7, caption: 'b' },
      { image_id: 8, caption: 'c' },
    ],
  });
  assert.deepEqual(
    [...coco],
    [
      ['7', ['a', 'b']],
      ['8', ['c']],
    ],
  );
  assert.deepEqual([...parseReferences({ 7: ['a', 'b'] })], [['7', ['a', 'b']]]);
  assert.deepEqual([...parseHypotheses([{ image_id: 7, caption: 'x' }])], [['7', 'x']]);
  assert.deepEqual(
    [...parseHypotheses({ 7: 'x', 8: ['y'] })],
    [
      ['7', 'x'],
      ['8', 'y'],
    ],
  );
  assert.throws(
    () =>
      parseHypotheses(
        [
          { image_id: 7, caption: 'x' },
          { image_id: 7, caption: 'y' },
        ],
        'h.json',
      ),
    /h\.json: image id "7" has more than one/,
  );
  assert.throws(
    () => parseReferences({ 7: 'x', 8: [1] }, 'r.json'),
    (e: unknown) => e instanceof UserError && /r\.json: references of id "8"/.test(e.message),
  );
  assert.throws(() => parseHypotheses([{ id: 7 }], 'h.json'), /entry #0 must look like/);
});

test('sat score prints the six scores as JSON and as a table; missing ids are a clear error', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sat-score-'));
  const refsFile = path.join(dir, 'refs.json');
  const hypsFile = path.join(dir, 'hyps.json');
  writeFileSync(
    refsFile,
    JSON.stringify({
      annotations: [...refs].flatMap(([id, cs]) => cs.map((caption) => ({ image_id: Number(id), caption }))),
    }),
  );
  writeFileSync(hypsFile, JSON.stringify([...hyps].map(([id, caption]) => ({ image_id: Number(id), caption }))));

  const json = JSON.parse(await sat(['score', '--refs', refsFile, '--hyps', hypsFile, '--json']));
  assert.deepEqual(Object.keys(json), [...SCORE_NAMES]);
  const expected = scoreCaptions(refs, hyps);
  for (const name of SCORE_NAMES) assert.ok(Math.abs(json[name] - expected[name]) < 1e-12, name);

  const table = await sat(['score', '--refs', refsFile, '--hyps', hypsFile]);
  assert.match(table, /BLEU-4\s+\d\.\d{4}/);
  assert.match(table, /CIDEr\s+\d\.\d{4}/);

  writeFileSync(hypsFile, JSON.stringify({ 1: 'a man', 404: 'a ghost' }));
  await assert.rejects(
    sat(['score', '--refs', refsFile, '--hyps', hypsFile]),
    (e) => e instanceof UserError && /no reference captions: "404"/.test(e.message),
  );
});
