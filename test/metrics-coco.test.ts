/**
 * Our BLEU / ROUGE-L / CIDEr-D against the official pycocoevalcap numbers stored in
 * test/fixtures/metrics/coco_metrics.json (made by scripts/coco_metrics_fixtures.py).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ciderDImages } from '../src/metrics/cider.js';
import { rougeLImage } from '../src/metrics/rouge.js';
import { SCORE_NAMES, scoreTokenized, type Scores } from '../src/metrics/score.js';

interface FixtureCase {
  name: string;
  images: { id: string; refs: string[]; hyp: string }[];
  scores: Scores;
  rougePerImage: number[];
  ciderPerImage: number[];
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/metrics/coco_metrics.json', import.meta.url), 'utf8')) as {
  cases: FixtureCase[];
};
const TOL = 1e-6;

test('corpus scores equal pycocoevalcap within 1e-6', () => {
  let worst = { diff: 0, where: 'none' };
  for (const c of fixture.cases) {
    const ours = scoreTokenized(
      c.images.map((i) => i.hyp),
      c.images.map((i) => i.refs),
    );
    for (const name of SCORE_NAMES) {
      const diff = Math.abs(ours[name] - c.scores[name]);
      if (!(diff <= worst.diff)) worst = { diff, where: `${c.name} ${name}` };
      assert.ok(diff <= TOL, `${c.name} ${name}: ours ${ours[name]} vs official ${c.scores[name]} (|diff| ${diff})`);
    }
  }
  console.log(`largest |ours - pycocoevalcap| over all corpus scores: ${worst.diff.toExponential(2)} (${worst.where})`);
});

test('per-image ROUGE-L and CIDEr-D equal pycocoevalcap within 1e-6', () => {
  let worst = 0;
  for (const c of fixture.cases) {
    const refs = c.images.map((i) => i.refs);
    const cider = ciderDImages(
      c.images.map((i) => i.hyp),
      refs,
    );
    c.images.forEach((img, k) => {
      const r = rougeLImage(img.hyp, img.refs);
      worst = Math.max(worst, Math.abs(r - c.rougePerImage[k]), Math.abs(cider[k] - c.ciderPerImage[k]));
      assert.ok(Math.abs(r - c.rougePerImage[k]) <= TOL, `${c.name}/${img.id} ROUGE-L ${r} vs ${c.rougePerImage[k]}`);
      assert.ok(
        Math.abs(cider[k] - c.ciderPerImage[k]) <= TOL,
        `${c.name}/${img.id} CIDEr ${cider[k]} vs ${c.ciderPerImage[k]}`,
      );
    });
  }
  console.log(`largest per-image |ours - pycocoevalcap|: ${worst.toExponential(2)}`);
});

test('scores move the right way: a perfect caption beats a wrong one', () => {
  const refs = [
    ['a dog runs on the grass', 'a brown dog running outside'],
    ['a red bus on a street', 'a bus parked by the road'],
  ];
  const good = scoreTokenized(['a dog runs on the grass', 'a red bus on a street'], refs);
  const bad = scoreTokenized(['a cat sleeps', 'a plate of food'], refs);
  for (const name of SCORE_NAMES) assert.ok(good[name] > bad[name], name);
  assert.ok(Math.abs(good['BLEU-1'] - 1) < 1e-9);
});
