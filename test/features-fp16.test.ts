import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeHalf, encodeHalf, halfTable, toHalfBits } from '../src/features/fp16.js';
import { Rng } from '../src/util/rng.js';

test('known binary16 bit patterns', () => {
  const cases: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff],
    [65520, 0x7c00], // halfway to the next (non-existent) finite value rounds to Inf
    [1e6, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // exactly half of it: ties to even -> 0
    [1.5 * 2 ** -25, 0x0001],
    [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10 -> even (1)
    [1 + 3 * 2 ** -11, 0x3c02], // tie between 1+2^-10 and 1+2^-9 -> even (1+2^-9)
    [0.1, 0x2e66],
    [3.14159, 0x4248],
  ];
  for (const [v, bits] of cases) assert.equal(toHalfBits(v), bits, `toHalfBits(${v})`);
  assert.equal(toHalfBits(NaN) & 0x7c00, 0x7c00);
  assert.ok(Number.isNaN(halfTable()[toHalfBits(NaN)]));
});

test('every finite half survives decode -> encode unchanged', () => {
  const t = halfTable();
  for (let h = 0; h < 65536; h++) {
    if (Number.isNaN(t[h])) continue;
    assert.equal(toHalfBits(t[h]), h, `bits 0x${h.toString(16)}`);
  }
});

test('encode picks the nearest half (error at most half a unit in the last place)', () => {
  const rng = new Rng(7);
  const src = new Float32Array(20000);
  for (let i = 0; i < src.length; i++) src[i] = (rng.next() - 0.2) * 10 ** (rng.int(10) - 6);
  const back = decodeHalf(encodeHalf(src), new Float32Array(src.length));
  const t = halfTable();
  for (let i = 0; i < src.length; i++) {
    const h = toHalfBits(src[i]);
    // Neighbours of the chosen half must not be strictly closer.
    for (const nb of [h - 1, h + 1]) {
      if (nb < 0 || nb > 0xffff || (nb & 0x7fff) >= 0x7c00 || (nb & 0x8000) !== (h & 0x8000)) continue;
      assert.ok(
        Math.abs(t[nb] - src[i]) >= Math.abs(back[i] - src[i]),
        `value ${src[i]} -> ${back[i]}, neighbour ${t[nb]} is closer`,
      );
    }
  }
});
