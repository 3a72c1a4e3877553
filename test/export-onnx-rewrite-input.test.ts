/**
 * The ONNX weight rewrites (src/export/onnx-rewrite.ts) on damaged models, each now a ParseError or left alone:
 * the fuzz harness (fuzz/run.ts, target "onnx") found the plain Error of a model without a graph and the TypeError
 * of a field of the wrong wire type; the RangeError of odd-length raw data and the TypeError of a DequantizeLinear
 * without inputs were found reading the code while fixing those.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProtoWriter } from '../src/encoders/onnx/protobuf.js';
import { expandStoredWeights, halfPrecisionInitializers } from '../src/export/onnx-rewrite.js';
import { ParseError } from '../src/util/parse-error.js';

const model = (graph: ProtoWriter) => new ProtoWriter().varint(1, 8).message(7, graph).finish();
const tensor = (name: string, type: number, raw: Uint8Array, dims: number[]) => {
  const t = new ProtoWriter();
  for (const d of dims) t.varint(1, d);
  return t.varint(2, type).string(8, name).bytes(9, raw);
};
const node = (op: string, inputs: string[], outputs: string[], to?: number) => {
  const n = new ProtoWriter();
  for (const i of inputs) n.string(1, i);
  for (const o of outputs) n.string(2, o);
  n.string(4, op);
  if (to !== undefined) n.message(5, new ProtoWriter().string(1, 'to').varint(3, to));
  return n;
};
const refused = (run: () => unknown, pattern: RegExp) =>
  assert.throws(run, (e: unknown) => e instanceof ParseError && pattern.test(e.message));

test('a model with no graph is a ParseError (was a plain Error)', () => {
  refused(() => expandStoredWeights(new ProtoWriter().varint(1, 8).finish()), /not an ONNX model: no graph/);
  refused(() => halfPrecisionInitializers(Uint8Array.from([0x38, 0x01])), /no graph/);
});

test('a field of the wrong wire type is refused (a varint node input was a TypeError in TextDecoder)', () => {
  const badNode = new ProtoWriter().varint(1, 5).string(4, 'Cast');
  refused(
    () => expandStoredWeights(model(new ProtoWriter().message(1, badNode))),
    /NodeProto\.input \(field 1 at byte 0\) has wire type 0, expected 2/,
  );
  const badInput = new ProtoWriter().varint(11, 3).message(5, tensor('w', 1, new Uint8Array(8), [2]));
  refused(() => halfPrecisionInitializers(model(badInput), 1), /GraphProto input\/output .* has wire type 0/);
});

test('raw data whose length is not a multiple of the element size is refused (was a RangeError)', () => {
  const half = new ProtoWriter()
    .message(5, tensor('h', 10, new Uint8Array(3), [2]))
    .message(1, node('Cast', ['h'], ['f'], 1));
  refused(() => expandStoredWeights(model(half)), /float16 tensor "h" has 3 bytes, not a multiple of 2/);
  const float = new ProtoWriter().message(5, tensor('w', 1, new Uint8Array(6), [2]));
  refused(() => halfPrecisionInitializers(model(float), 1), /float tensor "w" has 6 bytes, not a multiple of 4/);
});

test('a DequantizeLinear node without inputs is left alone (was a TypeError)', () => {
  const bytes = model(new ProtoWriter().message(1, node('DequantizeLinear', [], ['y'])));
  assert.deepEqual(expandStoredWeights(bytes), bytes);
});
