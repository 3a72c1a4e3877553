/**
 * The addon's float -> bf16 conversion (native/bf16.h, the one the bf16 training step mirrors its operands with),
 * held to a reference written here from the definition, on any CPU: round to nearest, ties to even, computed on
 * the values (the two bf16 neighbours of x and their distances, in float64, which holds them exactly), not with the
 * addon's bit trick; overflow past the largest bf16 rounds to infinity; NaN stays a quiet NaN with its sign and top
 * payload bits; denormal inputs become zero of the same sign (as AVX512-BF16's vcvtneps2bf16 does). The buffers
 * are long and odd-sized so they cross the conversion's 16-wide vector loop, its scalar tail and its chunks (2^15
 * elements), enough of them to run threaded, with 1 and 2 worker threads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadBinding } from '../src/model/binding.js';
import { Rng } from '../src/util/rng.js';

const native = loadBinding();

/** The value of a bf16 bit pattern; the exponent field 255 counts as 2^128 (the rounding boundary of infinity). */
function bf16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1,
    exponent = (bits >> 7) & 0xff,
    mantissa = bits & 0x7f;
  if (exponent === 0) return sign * mantissa * 2 ** -133;
  return sign * (1 + mantissa / 128) * 2 ** (exponent - 127);
}

/** The bf16 bits of the float32 whose bits are `u`, by the definition above. */
export function referenceBf16(u: number): number {
  const sign = (u >>> 16) & 0x8000,
    exponent = (u >>> 23) & 0xff,
    mantissa = u & 0x7fffff;
  if (exponent === 0xff) return mantissa === 0 ? u >>> 16 : (u >>> 16) | 0x40; // infinity; NaN made quiet
  if (exponent === 0) return sign; // zero, denormal: signed zero
  const x = Math.abs(new Float32Array(Uint32Array.of(u).buffer)[0]);
  const down = (u >>> 16) & 0x7fff,
    up = down + 1; // magnitudes' neighbours
  const below = x - bf16Value(down),
    above = bf16Value(up) - x;
  const pick = below < above ? down : above < below ? up : down & 1 ? up : down;
  return sign | pick;
}

function convert(bits: Uint32Array, threads: number): Uint16Array {
  const before = native.threads();
  native.setThreads(before.blas, threads);
  try {
    const dst = new Uint16Array(bits.length).fill(0xabcd); // a value no input below converts to
    native.toBf16(new Float32Array(bits.buffer, bits.byteOffset, bits.length), dst);
    return dst;
  } finally {
    native.setThreads(before.blas, before.workers);
  }
}

function hex(x: number, digits: number) {
  return '0x' + x.toString(16).padStart(digits, '0');
}

test('the reference itself: hand-worked roundings', () => {
  const cases: [number, number][] = [
    [0x3f800000, 0x3f80],
    [0x3f808000, 0x3f80],
    [0x3f818000, 0x3f82],
    [0x3f808001, 0x3f81],
    [0x3f807fff, 0x3f80],
    [0xbf808001, 0xbf81],
    [0x7f7fffff, 0x7f80],
    [0x7f7f7fff, 0x7f7f],
    [0x7f7f8000, 0x7f80],
    [0xff7f8000, 0xff80],
    [0x00800000, 0x0080],
    [0x007fffff, 0x0000],
    [0x80000001, 0x8000],
    [0x7f800000, 0x7f80],
    [0x7f800001, 0x7fc0],
    [0xffa00000, 0xffe0],
  ];
  for (const [u, want] of cases) assert.equal(hex(referenceBf16(u), 4), hex(want, 4), hex(u, 8));
});

test('toBf16 rounds every kind of float like the reference, across vector tails and parallel chunks, on 1 and 2 threads', () => {
  const rng = new Rng(11);
  const special = [
    0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffbfffff, 0x7f7fffff, 0xff7fffff, 0x7f7f8000,
    0x7f7f7fff, 0x00800000, 0x00800001, 0x0080ffff, 0x00808000, 0x00018000, 0x007fffff, 0x807fffff, 0x00000001,
  ];
  const n = 7 * (1 << 15) + 37; // over the 2e5 elements at which the conversion's chunks run threaded (native/parallel.h)
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rng.int(4);
    const random = ((rng.int(1 << 16) << 16) | rng.int(1 << 16)) >>> 0;
    // exact ties (low half 0x8000), one below and above them, and any bit pattern
    bits[i] =
      r === 0
        ? ((random & 0xffff0000) | 0x8000) >>> 0
        : r === 1
          ? ((random & 0xffff0000) | (rng.int(2) ? 0x7fff : 0x8001)) >>> 0
          : random;
  }
  // the special values at the start, at the chunk boundaries and in the last, partial vector
  for (const at of [0, (1 << 15) - 7, 4 * (1 << 15) - 3, n - special.length]) bits.set(special, at);
  const want = Uint16Array.from(bits, referenceBf16);
  for (const threads of [1, 2]) {
    const got = convert(bits, threads);
    let wrong = 0,
      first = -1;
    for (let i = 0; i < n; i++)
      if (got[i] !== want[i]) {
        wrong++;
        if (first < 0) first = i;
      }
    assert.equal(
      wrong,
      0,
      `${threads} thread(s): ${wrong} of ${n} differ; first at [${first}]: ${first >= 0 ? `${hex(bits[first], 8)} -> ${hex(got[first], 4)}, reference ${hex(want[first], 4)}` : ''}`,
    );
  }
  const ties = bits.filter((u) => (u & 0xffff) === 0x8000 && ((u >>> 23) & 0xff) % 255 !== 0).length;
  assert.ok(ties > n / 5, `${ties} exact ties among the inputs`);
});

test('toBf16 checks its arguments', () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const raw = native as any;
  assert.throws(() => raw.toBf16(new Float32Array(3)), /toBf16\(src, dst\): expected at least 2 arguments, got 1/);
  assert.throws(() => raw.toBf16(new Float64Array(3), new Uint16Array(3)), /src must be a Float32Array/);
  assert.throws(() => raw.toBf16(new Float32Array(3), new Int16Array(3)), /dst must be a Uint16Array/);
  assert.throws(() => raw.toBf16(new Float32Array(3), new Uint16Array(2)), /dst has 2 elements, needs 3/);
  const dst = new Uint16Array(4).fill(7);
  native.toBf16(new Float32Array(0), dst);
  assert.deepEqual([...dst], [7, 7, 7, 7], 'an empty source writes nothing');
});
