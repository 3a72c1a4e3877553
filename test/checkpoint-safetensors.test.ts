/**
 * The safetensors reader checks a header before it trusts it: bounded length, known dtypes, integer shapes and
 * offsets, sizes matching dtype x shape, tensors in range, ordered, non-overlapping and covering the data
 * exactly. Each refusal is a ParseError naming the file and the tensor.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { parseSafetensors, writeSafetensors } from '../src/checkpoint/safetensors.js';
import { UserError } from '../src/util/errors.js';
import { ParseError } from '../src/util/parse-error.js';

/** A safetensors file with this header (object or raw JSON text) and `dataBytes` data bytes (values 0..). */
function file(header: unknown, dataBytes: number): Uint8Array {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const out = Buffer.alloc(8 + json.length + dataBytes);
  out.writeBigUInt64LE(BigInt(json.length));
  json.copy(out, 8);
  for (let i = 0; i < dataBytes; i++) out[8 + json.length + i] = i;
  return out;
}
const refused = (bytes: Uint8Array, pattern: RegExp) =>
  assert.throws(
    () => parseSafetensors(bytes, 'w.safetensors'),
    (e: unknown) => e instanceof ParseError && /^w\.safetensors: /.test(e.message) && pattern.test(e.message),
  );
const f32 = (shape: number[], begin: number, end: number) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

test('reads tensors in header order when their offsets come in another order', () => {
  const { tensors, metadata } = parseSafetensors(
    file({ __metadata__: { k: 'v' }, b: f32([1], 8, 12), a: f32([2], 0, 8) }, 12),
    'w',
  );
  assert.deepEqual([...tensors.keys()], ['b', 'a']);
  assert.deepEqual(tensors.get('a')!.shape, [2]);
  assert.equal(new Uint8Array(tensors.get('b')!.data.buffer)[0], 8);
  assert.deepEqual(metadata, { k: 'v' });
  assert.equal(parseSafetensors(file({ empty: f32([0, 3], 0, 0) }, 0), 'w').tensors.get('empty')!.data.length, 0);
});

test('checks the header length and its JSON', () => {
  refused(new Uint8Array(5), /too short/);
  const huge = Buffer.alloc(16);
  huge.writeBigUInt64LE(0xffffffffffffffffn);
  refused(huge, /header length 18446744073709551615 is over the limit of 100000000 bytes/);
  assert.throws(() => parseSafetensors(file({}, 0), 'w', { maxHeaderBytes: 1 }), /over the limit of 1 bytes/);
  refused(file({ a: f32([1], 0, 4) }, 4).subarray(0, 12), /runs past the end of the file .* truncated/);
  refused(file('{"a": ', 0), /not valid UTF-8 JSON/);
  refused(file(Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1'), 0), /not valid UTF-8 JSON|not a JSON object/);
  refused(file('null', 0), /header is not a JSON object/);
  refused(file('[1,2]', 0), /header is not a JSON object/);
  refused(file({ __metadata__: { n: 3 } }, 0), /__metadata__ is not an object of strings/);
});

test('refuses unknown dtypes, and known ones other than F32 with the fix', () => {
  refused(file({ a: { dtype: 'F33', shape: [1], data_offsets: [0, 4] } }, 4), /tensor "a" has unknown dtype "F33"/);
  refused(file({ a: { dtype: 'toString', shape: [1], data_offsets: [0, 4] } }, 4), /unknown dtype "toString"/);
  refused(
    file({ a: { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }, 4),
    /tensor "a" is F16; only F32 is supported/,
  );
  refused(file({ a: null }, 0), /tensor "a" is not an object/);
});

test('refuses shapes and offsets that are not non-negative integers', () => {
  refused(file({ a: f32([-1], 0, 4) }, 4), /shape \[-1\], not a list of non-negative integers/);
  refused(file({ a: f32([1.5], 0, 6) }, 6), /shape \[1.5\]/);
  refused(file({ a: f32([1], -4, 0) }, 4), /data_offsets \[-4,0\], not \[begin, end\]/);
  refused(file({ a: f32([1], 0.5, 4.5) }, 5), /data_offsets \[0.5,4.5\]/);
  refused(file({ a: f32([1], 4, 0) }, 4), /data_offsets \[4,0\]/);
  refused(file({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] } }, 8), /data_offsets \[0,4,8\]/);
  refused(file({ a: { dtype: 'F32', shape: [1], data_offsets: ['0', '4'] } }, 4), /data_offsets \["0","4"\]/);
  refused(file({ a: f32([2 ** 30, 2 ** 30, 2 ** 30], 0, 4) }, 4), /tensor "a" of shape .* is too large/);
});

test('refuses sizes that do not match dtype x shape', () => {
  refused(
    file({ a: f32([2, 3], 0, 20) }, 20),
    /tensor "a" \(F32 \[2,3\], 24 bytes\) has data_offsets \[0, 20\] \(20 bytes\)/,
  );
});

test('refuses overlapping tensors, gaps, data past the end and trailing bytes', () => {
  refused(
    file({ a: f32([2], 0, 8), b: f32([2], 4, 12) }, 12),
    /tensor "b" at \[4, 12\] overlaps the tensor before it \(which ends at 8\)/,
  );
  refused(file({ a: f32([1], 0, 4), b: f32([1], 0, 4) }, 4), /overlaps/);
  refused(file({ a: f32([1], 4, 8) }, 8), /the bytes \[0, 4\) before tensor "a" belong to no tensor/);
  refused(file({ a: f32([1], 0, 4), b: f32([1], 8, 12) }, 12), /the bytes \[4, 8\) before tensor "b"/);
  refused(
    file({ a: f32([4], 0, 16) }, 12),
    /the tensors need 16 data bytes but the file has 12; the file is truncated/,
  );
  refused(file({ a: f32([1], 0, 4) }, 9), /the file has 5 bytes after the last tensor/);
});

test('accepts the structure of a file written by Python safetensors (its I32 tensor is then refused by dtype)', () => {
  refused(
    fs.readFileSync(new URL('./fixtures/model-reference.safetensors', import.meta.url)),
    /tensor "[^"]+" is I32; only F32 is supported/,
  );
});

test('a checkpoint whose metadata is not a JSON object is refused by name', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-ckmeta-'));
  try {
    for (const [raw, pattern] of [
      ['{"format": ', /its "sat\.checkpoint" metadata is not valid JSON/],
      ['null', /is format undefined; this version reads/],
      ['"x"', /is format undefined/],
    ] as const) {
      const file = path.join(dir, 'latest.safetensors');
      writeSafetensors(file, new Map([['w', { shape: [1], data: new Float32Array(1) }]]), { 'sat.checkpoint': raw });
      assert.throws(
        () => loadCheckpoint(file),
        (e: unknown) => e instanceof UserError && e.message.startsWith(file) && pattern.test(e.message),
      );
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
