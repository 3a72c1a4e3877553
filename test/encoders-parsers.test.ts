/**
 * The binary readers under src/encoders check before they trust: the protobuf walker (ONNX), .npy, TFLite
 * FlatBuffers and tar. Bad input is refused with a ParseError naming the input; a sweep over every truncation and
 * every 4-byte overwrite of a valid file must give either a result or a ParseError, never another exception.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { extractFromTar } from '../src/encoders/mobilenet/archive.js';
import { encodeNpy, parseNpy } from '../src/encoders/mobilenet/npy.js';
import { CONV_2D, DEPTHWISE_CONV_2D, readTfliteConvs } from '../src/encoders/mobilenet/tflite.js';
import { ProtoWriter, readFields, readPackedVarints } from '../src/encoders/onnx/protobuf.js';
import { ParseError } from '../src/util/parse-error.js';
import { tarFile, tfliteModel } from './helpers/tflite-fixture.js';

const isParseError = (pattern: RegExp) => (e: unknown) => e instanceof ParseError && pattern.test(e.message);

/** Every prefix, and every 4-byte overwrite with each of `values`, is parsed or refused with a ParseError. */
function sweep(
  bytes: Uint8Array,
  parse: (b: Uint8Array) => unknown,
  values = [0, 0xffffffff, 0x7fffffff, 0x80000000, bytes.length],
): number {
  let refused = 0;
  const attempt = (b: Uint8Array) => {
    try {
      parse(b);
    } catch (e) {
      if (!(e instanceof ParseError)) throw new Error(`not a ParseError: ${(e as Error).stack}`);
      refused++;
    }
  };
  for (let n = 0; n < bytes.length; n++) attempt(bytes.slice(0, n));
  for (let at = 0; at + 4 <= bytes.length; at++) {
    for (const v of values) {
      const b = bytes.slice();
      new DataView(b.buffer).setUint32(at, v >>> 0, true);
      attempt(b);
    }
  }
  return refused;
}

test('protobuf: varints are at most 10 bytes, lengths stay inside the message, truncation is refused', () => {
  const msg = new ProtoWriter().varint(1, 300).string(2, 'name').float(3, 1.5).varint(4, -1).finish();
  assert.deepEqual(
    readFields(msg).map((f) => [f.field, f.wire]),
    [
      [1, 0],
      [2, 2],
      [3, 5],
      [4, 0],
    ],
  );
  assert.equal(readFields(msg)[0].value, 300);
  const eleven = Uint8Array.from([0x08, ...Array(10).fill(0xff), 0x01]);
  assert.throws(
    () => readFields(eleven, 'm.onnx'),
    isParseError(/m\.onnx: varint at byte 1 (overflows 64 bits|is longer than 10 bytes)/),
  );
  assert.throws(
    () => readFields(Uint8Array.from([0x08, ...Array(9).fill(0x80), 0x02])),
    isParseError(/overflows 64 bits/),
  );
  assert.throws(() => readFields(msg.subarray(0, msg.length - 1)), isParseError(/truncated varint|needs|left/));
  assert.throws(
    () => readFields(Uint8Array.from([0x12, 0x05, 0x61])),
    isParseError(/field 2 at byte 0 is 5 bytes long, only 1 are left/),
  );
  assert.throws(
    () => readFields(Uint8Array.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f])),
    isParseError(/is 4294967295 bytes long/),
  );
  assert.throws(
    () => readFields(Uint8Array.from([0x1d, 0, 0])),
    isParseError(/field 3 at byte 0 needs 4 bytes, 2 are left/),
  );
  assert.throws(() => readFields(Uint8Array.from([0x0b])), isParseError(/unsupported protobuf wire type 3/));
  assert.throws(() => readFields(Uint8Array.from([0x00, 0x01])), isParseError(/invalid field number 0/));
  assert.throws(() => readPackedVarints(Uint8Array.from([0x80])), isParseError(/truncated varint/));
  // A nested message is a view of its parent's payload: its own length cannot reach the parent's next bytes.
  const inner = Uint8Array.from([0x0a, 0x05, 0x61, 0x62]); // claims 5 bytes, has 2
  const outer = new ProtoWriter().bytes(1, inner).string(2, 'after').finish();
  const nested = readFields(outer)[0].value as Uint8Array;
  assert.throws(
    () => readFields(nested, 'node'),
    isParseError(/node: field 1 at byte 0 is 5 bytes long, only 2 are left/),
  );
  assert.ok(sweep(msg, (b) => readFields(b)) > 0);
});

test('.npy: version, header bounds and shape are checked before the data', () => {
  const good = encodeNpy({ data: new Float32Array([1, 2, 3, 4, 5, 6]), shape: [2, 3] });
  assert.deepEqual(parseNpy(good).shape, [2, 3]);
  const v4 = good.slice();
  v4[6] = 4;
  assert.throws(() => parseNpy(v4, 'v4.npy'), isParseError(/v4\.npy: \.npy format version 4\.0 is not supported/));
  const longHeader = good.slice();
  new DataView(longHeader.buffer).setUint16(8, 0xffff, true);
  assert.throws(
    () => parseNpy(longHeader, 'h.npy'),
    isParseError(/h\.npy: the \.npy header \(65535 bytes\) runs past the end/),
  );
  const v2 = new Uint8Array(11);
  v2.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0]);
  assert.throws(() => parseNpy(v2, 'v2.npy'), isParseError(/header is truncated/));
  const text = new TextDecoder('latin1').decode(good);
  const withShape = (shape: string) => new Uint8Array(Buffer.from(text.replace('(2, 3)', shape.padEnd(6)), 'latin1'));
  assert.throws(
    () => parseNpy(withShape('(-2,-3)'), 'neg.npy'),
    isParseError(/shape \(-2,-3 *\) is not a tuple of non-negative integers/),
  );
  assert.throws(() => parseNpy(withShape('(6e0,)'), 'e.npy'), isParseError(/not a tuple of non-negative integers/));
  assert.equal(parseNpy(withShape('(6,)')).data.length, 6);
  assert.ok(sweep(good, (b) => parseNpy(b)) > 0);
});

test('TFLite: every offset is checked before it is followed; one copy per buffer however many operators name it', () => {
  const w = new Float32Array(4 * 3 * 3 * 3).fill(0.5),
    bias = new Float32Array(4).fill(1);
  const tensors = [
    { name: 'in', shape: [1, 8, 8, 3] },
    { name: 'w', shape: [4, 3, 3, 3], data: w },
    { name: 'b', shape: [4], data: bias },
    { name: 'out', shape: [1, 4, 4, 4] },
  ];
  const model = tfliteModel(tensors, [
    { code: CONV_2D, inputs: [0, 1, 2], outputs: [3] },
    { code: CONV_2D, inputs: [0, 1, 2], outputs: [3] },
  ]);
  const convs = readTfliteConvs(model, 'm.tflite');
  assert.equal(convs.length, 2);
  assert.equal(convs[0].weights.data, convs[1].weights.data, 'the same buffer is copied once');
  const rootPastEnd = model.slice();
  new DataView(rootPastEnd.buffer).setUint32(0, model.length, true);
  assert.throws(
    () => readTfliteConvs(rootPastEnd, 'r.tflite'),
    isParseError(/r\.tflite: the Model table \(4 bytes at \d+\) lies outside the \d+-byte file/),
  );
  const negative = tfliteModel(
    [...tensors.slice(0, 1), { name: 'w', shape: [-4, 3, 3, 3], data: w }, ...tensors.slice(2)],
    [{ code: DEPTHWISE_CONV_2D, inputs: [0, 1, 2], outputs: [3] }],
  );
  assert.throws(
    () => readTfliteConvs(negative, 'n.tflite'),
    isParseError(/n\.tflite: tensor "w" has a negative dimension/),
  );
  const refused = sweep(model, (b) => readTfliteConvs(b, 'm.tflite'));
  assert.ok(refused > model.length, `${refused} damaged models refused`);
});

test('tar and .tar.gz: sizes are octal numbers inside the archive, and a .tar.gz has an inflated-size cap', () => {
  const tar = tarFile([
    { name: 'a.txt', data: new TextEncoder().encode('hello') },
    { name: 'm.tflite', data: new Uint8Array(700) },
  ]);
  assert.equal(extractFromTar(tar, (n) => n === 'm.tflite', 't.tar').data.length, 700);
  const badSize = tar.slice();
  badSize.set(new TextEncoder().encode('-0000000005\0'), 124);
  assert.throws(
    () => extractFromTar(badSize, () => true, 'b.tar'),
    isParseError(/b\.tar: corrupt tar header at byte 0 \(size "-0000000005"\)/),
  );
  const bomb = gzipSync(new Uint8Array(5 * 2 ** 20)); // 5 MB of zeros in about 5 KB
  assert.throws(
    () => extractFromTar(bomb, () => true, 'bomb.tgz', 2 ** 20),
    isParseError(/bomb\.tgz inflates to more than 1048576 bytes/),
  );
  assert.throws(
    () => extractFromTar(Uint8Array.from([0x1f, 0x8b, 8, 0, 1, 2]), () => true, 'g.tgz'),
    isParseError(/g\.tgz is not a valid gzip file/),
  );
  assert.ok(sweep(tar.subarray(0, 1536), (b) => extractFromTar(b, (n) => n === 'm.tflite', 't.tar')) > 0);
});
