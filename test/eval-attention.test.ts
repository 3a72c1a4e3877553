/**
 * The attention check's arithmetic on hand-made attention maps over hand-placed boxes: which object a
 * word names, cell coverage, the peak-hit rule and the mass-in-box measure against their chance levels.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ShapeObject } from '../src/dataset/shapes.js';
import {
  cellCoverage,
  checkAttention,
  formatAttentionCheck,
  formatAttentionLine,
  namedTargets,
  rates,
} from '../src/eval/attention-check.js';

// A 40x40 image, 4x4 grid of 10 px cells. Red circle in cell (0, 0) exactly; blue square covering
// cells (2..3, 2..3) fully; red square half over cell (0, 3).
const redCircle: ShapeObject = { shape: 'circle', color: 'red', box: [0, 0, 10, 10] };
const blueSquare: ShapeObject = { shape: 'square', color: 'blue', box: [20, 20, 40, 40] };
const redSquare: ShapeObject = { shape: 'square', color: 'red', box: [30, 0, 35, 10] };
const objects = [redCircle, blueSquare, redSquare];

/** Attention row [16] with all its mass on one cell (row-major index). */
const onCell = (cell: number) => Float32Array.from({ length: 16 }, (_, l) => (l === cell ? 1 : 0));
const uniform = () => new Float32Array(16).fill(1 / 16);

test('a colour word followed by a shape names that one object; alone it names every object of its colour', () => {
  assert.deepEqual(namedTargets(['a', 'red', 'circle'], 1, objects), [redCircle]);
  assert.deepEqual(namedTargets(['a', 'red', 'circle'], 2, objects), [redCircle]);
  assert.deepEqual(namedTargets(['a', 'red', 'square'], 2, objects), [redSquare]);
  assert.deepEqual(namedTargets(['red', 'things'], 0, objects), [redCircle, redSquare]);
  assert.deepEqual(namedTargets(['a', 'square'], 1, objects), [blueSquare, redSquare]);
  assert.deepEqual(namedTargets(['a', 'green', 'triangle'], 1, objects), []);
  assert.deepEqual(namedTargets(['a', 'left'], 1, objects), []);
});

test('cell coverage is the fraction of each cell inside the boxes', () => {
  const cover = cellCoverage([redCircle.box, redSquare.box], 4, 40);
  assert.equal(cover[0], 1);
  assert.equal(cover[3], 0.5);
  assert.equal(
    cover.reduce((s, x) => s + x, 0),
    1.5,
  );
  assert.deepEqual(Array.from(cellCoverage([blueSquare.box], 4, 40)), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1]);
});

test('attention on the named object scores 100%, elsewhere 0%, uniform attention scores exactly chance', () => {
  const words = ['a', 'red', 'circle', 'left', 'of', 'a', 'blue', 'square', 'green'];
  const perfect = [uniform(), onCell(0), onCell(0), uniform(), uniform(), uniform(), onCell(10), onCell(15), uniform()];
  const wrong = [uniform(), onCell(15), onCell(15), uniform(), uniform(), uniform(), onCell(0), onCell(0), uniform()];
  const flat = words.map(() => uniform());
  const annotations = new Map([['img', objects]]);
  const check = (attention: Float32Array[]) => checkAttention([{ id: 'img', words, attention }], annotations, 40);

  const good = check(perfect);
  assert.equal(good.grid, 4);
  assert.equal(good.absent, 1, '"green" names nothing in the image');
  assert.deepEqual([good.colour.words, good.shape.words, good.all.words], [2, 2, 4]);
  const r = rates(good.all);
  assert.equal(r.peakHitRate, 1);
  assert.equal(r.massInBox, 1);
  // chance: red circle 1 of 16 cells, area 100/1600; blue square 4 of 16 cells, area 400/1600
  assert.equal(r.peakChance, (1 / 16 + 1 / 16 + 4 / 16 + 4 / 16) / 4);
  assert.equal(r.massChance, (100 + 100 + 400 + 400) / 1600 / 4);

  const bad = rates(check(wrong).all);
  assert.equal(bad.peakHitRate, 0);
  assert.equal(bad.massInBox, 0);

  const u = rates(check(flat).all);
  assert.ok(
    Math.abs(u.massInBox - u.massChance) < 1e-7,
    `uniform attention: mass ${u.massInBox} vs chance ${u.massChance}`,
  );
  assert.match(formatAttentionCheck(good), /all\s+4\s+100\.0%/);
  assert.match(
    formatAttentionLine(good),
    /^attention peak on the named object for 100\.0% of 4 colour\/shape words \(chance 15\.6%\); attention mass inside its box 100\.0% \(chance 15\.6%\)$/,
  );
});

test('an image without annotations is an error, not a silent skip', () => {
  assert.throws(
    () => checkAttention([{ id: 'x', words: [], attention: [] }], new Map(), 40),
    /no shapes annotation for image "x"/,
  );
});
