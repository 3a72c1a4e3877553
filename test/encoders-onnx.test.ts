import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { OnnxGraph } from '../src/encoders/onnx/graph.js';
import { padding } from '../src/encoders/onnx/padding.js';
import { ProtoWriter } from '../src/encoders/onnx/protobuf.js';
import { encodeNpy, parseNpy } from '../src/encoders/mobilenet/npy.js';

test("protobuf varints: small, multi-byte and negative (10-byte two's complement)", () => {
  assert.deepEqual([...new ProtoWriter().varint(1, 1).finish()], [0x08, 0x01]);
  assert.deepEqual([...new ProtoWriter().varint(2, 300).finish()], [0x10, 0xac, 0x02]);
  assert.deepEqual([...new ProtoWriter().varint(1, -1).finish()], [0x08, ...Array(9).fill(0xff), 0x01]);
  assert.deepEqual([...new ProtoWriter().float(2, 1).finish()], [0x15, 0x00, 0x00, 0x80, 0x3f]);
  const inner = new ProtoWriter().string(1, 'ab');
  assert.deepEqual([...new ProtoWriter().message(3, inner).finish()], [0x1a, 0x04, 0x0a, 0x02, 0x61, 0x62]);
});

test('OnnxGraph models load in onnxruntime and compute what they say', async () => {
  // y = LeakyRelu(Transpose(Reshape(x, [n, 2, 3]) * w, [0, 2, 1]), alpha 0.5), then Concat on axis -1
  const g = new OnnxGraph('probe');
  g.addInput('x', ['n', 6]);
  const shape = g.addInt64('shape', [-1, 2, 3]);
  const r = g.addNode('Reshape', ['x', shape], 'r');
  const m = g.addNode('Mul', [r, g.addFloat('w', new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3])], 'm');
  const t = g.addNode('Transpose', [m], 't', { perm: [0, 2, 1] });
  const l = g.addNode('LeakyRelu', [t], 'l', { alpha: { float: 0.5 } });
  g.addNode('Concat', [l, t], ['y'], { axis: -1 });
  g.addOutput('y', ['n', 3, 4]);
  const session = await ort.InferenceSession.create(g.toModel());
  const x = new Float32Array([1, -1, 1, -1, 1, -1]);
  const y = (await session.run({ x: new ort.Tensor('float32', x, [1, 6]) })).y;
  assert.deepEqual(y.dims, [1, 3, 4]);
  // m = [[1,-2,3],[-4,5,-6]]; t = [[1,-4],[-2,5],[3,-6]]; l halves negatives
  assert.deepEqual([...(y.data as Float32Array)], [1, -2, 1, -4, -1, 5, -2, 5, 3, -3, 3, -6]);
  assert.throws(() => g.addNode('Relu', ['y'], ['y']), /already used/);
  assert.throws(() => g.addFloat('bad', new Float32Array(3), [2, 2]), /do not fill/);
});

test('TF SAME/VALID padding puts the odd pixel at the bottom/right', () => {
  assert.deepEqual(padding('same', 224, 3, 2, 'l'), [112, [0, 1]]);
  assert.deepEqual(padding('same', 35, 3, 1, 'l'), [35, [1, 1]]);
  assert.deepEqual(padding('same', 17, 7, 1, 'l'), [17, [3, 3]]);
  assert.deepEqual(padding('valid', 299, 3, 2, 'l'), [149, [0, 0]]);
  assert.throws(() => padding('causal', 5, 3, 1, 'conv9'), /conv9.*causal/);
});

test('.npy round trip and clear errors', () => {
  const a = { data: Float32Array.from({ length: 24 }, (_, i) => i / 3), shape: [2, 3, 4] };
  const bytes = encodeNpy(a);
  assert.equal((bytes.length - a.data.byteLength) % 64, 0);
  assert.deepEqual(parseNpy(bytes), a);
  assert.deepEqual(parseNpy(encodeNpy({ data: new Float32Array([7]), shape: [1] })).shape, [1]);
  const bad = new Uint8Array(bytes); // same header with descr '<f8'
  bad[new TextDecoder().decode(bytes.subarray(0, 64)).indexOf('<f4') + 2] = '8'.charCodeAt(0);
  assert.throws(() => parseNpy(bad, 'w.npy'), /w\.npy: dtype <f8 is not supported/);
  assert.throws(
    () => parseNpy(bytes.subarray(0, bytes.length - 4), 'short.npy'),
    /short\.npy: header shape \(2, 3, 4\) needs 96 data bytes/,
  );
  assert.throws(() => parseNpy(new Uint8Array(20), 'z.npy'), /not a \.npy file/);
});
