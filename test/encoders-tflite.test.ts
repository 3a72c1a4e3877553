import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { extractFromTar } from '../src/encoders/mobilenet/archive.js';
import {
  cachedMobileNetV2,
  MOBILENET_V2_TFLITE,
  npyFolder,
  tensorsDigest,
  tfliteFile,
} from '../src/encoders/mobilenet/index.js';
import { mobilenetV2Blocks, type MbBlock } from '../src/encoders/mobilenet/mobilenet_v2.js';
import type { NpyArray } from '../src/encoders/mobilenet/npy.js';
import { CONV_2D, DEPTHWISE_CONV_2D, readTfliteConvs, tensorsFromTflite } from '../src/encoders/mobilenet/tflite.js';
import { Rng } from '../src/util/rng.js';
import { mobilenetV2Shapes, randomArray } from './helpers/encoders-reference.js';
import { tarFile, tfliteModel, type TfTensor } from './helpers/tflite-fixture.js';
import { setEnv } from './helpers/scoped-env.js';

const ADD = 0;

test('TFLite reader: convolutions in execution order with float32 weights, bias and names', () => {
  const rng = new Rng(1);
  const w1 = randomArray(4 * 3 * 3 * 3, () => rng.next()),
    b1 = randomArray(4, () => rng.next());
  const w2 = randomArray(3 * 3 * 4, () => rng.next()),
    b2 = randomArray(4, () => rng.next());
  const tensors: TfTensor[] = [
    { name: 'input', shape: [1, 8, 8, 3] },
    { name: 'Const_7', shape: [4, 3, 3, 3], data: w1 },
    { name: 'MobilenetV2/Conv/Conv2D_bias', shape: [4], data: b1 },
    { name: 'conv_out', shape: [1, 4, 4, 4] },
    { name: 'Const_8', shape: [1, 3, 3, 4], data: w2 },
    { name: 'MobilenetV2/dw_bias', shape: [4], data: b2 },
    { name: 'dw_out', shape: [1, 4, 4, 4] },
    { name: 'sum', shape: [1, 4, 4, 4] },
  ];
  const bytes = tfliteModel(tensors, [
    { code: CONV_2D, inputs: [0, 1, 2], outputs: [3] },
    { code: DEPTHWISE_CONV_2D, inputs: [3, 4, 5], outputs: [6] },
    { code: ADD, inputs: [3, 6], outputs: [7] },
  ]);
  const convs = readTfliteConvs(bytes, 'tiny.tflite');
  assert.deepEqual(
    convs.map((c) => [c.op, c.weights.name, c.weights.shape, c.bias.name]),
    [
      ['conv', 'Const_7', [4, 3, 3, 3], 'MobilenetV2/Conv/Conv2D_bias'],
      ['depthwise', 'Const_8', [1, 3, 3, 4], 'MobilenetV2/dw_bias'],
    ],
  );
  assert.deepEqual(convs[0].weights.data, w1);
  assert.deepEqual(convs[1].bias.data, b2);

  const blocks: MbBlock[] = [
    {
      name: 'Conv',
      convs: [{ weight: 'Const_a', bias: 'bias_a', depthwise: false, stride: 2, relu6: true }],
      residual: false,
    },
    {
      name: 'dw',
      convs: [{ weight: 'Const_b', bias: 'bias_b', depthwise: true, stride: 1, relu6: true }],
      residual: false,
    },
  ];
  const named = tensorsFromTflite(convs, blocks, 'tiny.tflite');
  assert.deepEqual(named.get('Const_b')!.data, w2);
  assert.deepEqual(named.get('bias_a')!.data, b1);
  assert.throws(
    () => tensorsFromTflite(convs, [blocks[1], blocks[0]], 'tiny.tflite'),
    /convolution #0 \("Const_7"\) is conv, but dw expects depthwise there/,
  );
  assert.throws(
    () => tensorsFromTflite(convs, [...blocks, ...blocks], 'tiny.tflite'),
    /tiny\.tflite has 2 convolutions, MobileNetV2 needs 4/,
  );

  const quantized = tfliteModel(
    tensors.map((t) => (t.name === 'Const_7' ? { ...t, type: 3 } : t)),
    [{ code: CONV_2D, inputs: [0, 1, 2], outputs: [3] }],
  );
  assert.throws(() => readTfliteConvs(quantized, 'q.tflite'), /q\.tflite: tensor "Const_7" is not float32/);
  const notTflite = new Uint8Array(bytes);
  notTflite.set(new TextEncoder().encode('ONNX'), 4);
  assert.throws(() => readTfliteConvs(notTflite, 'x.bin'), /x\.bin is not a TFLite model \(file identifier "ONNX"/);
});

test('tar(.gz) extraction finds the model among other entries', () => {
  const a = new TextEncoder().encode('info'),
    b = Uint8Array.from({ length: 1300 }, (_, i) => i % 256);
  const tar = tarFile([
    { name: './mobilenet_v2_1.0_224_info.txt', data: a },
    { name: './mobilenet_v2_1.0_224.tflite', data: b },
  ]);
  for (const archive of [tar, gzipSync(tar)]) {
    const found = extractFromTar(archive, (n) => n.endsWith('.tflite'), 'm.tgz');
    assert.equal(found.name, './mobilenet_v2_1.0_224.tflite');
    assert.deepEqual(found.data, b);
  }
  assert.throws(
    () => extractFromTar(tar, (n) => n.endsWith('.pb'), 'm.tgz'),
    /m\.tgz does not contain the expected file \(it has: \.\/mobilenet_v2_1\.0_224_info\.txt, \.\/mobilenet_v2_1\.0_224\.tflite\)/,
  );
  assert.throws(
    () => extractFromTar(tar.subarray(0, 1200), (n) => n.endsWith('.tflite'), 'cut.tar'),
    /cut\.tar: the archive ends inside/,
  );
});

test('MobileNetV2 from a downloaded .tgz: verified by tensor digest, cached as .npy, bad archives deleted', async () => {
  // A full-size MobileNetV2-shaped .tflite with random tensors (52 convs + a classifier conv that is ignored).
  const rng = new Rng(9);
  const blocks = mobilenetV2Blocks();
  const shapes = mobilenetV2Shapes(blocks);
  const random = new Map<string, NpyArray>(
    [...shapes].map(([n, s]) => [
      n,
      {
        data: randomArray(
          s.reduce((a, b) => a * b, 1),
          () => rng.next(),
          0.1,
        ),
        shape: s,
      },
    ]),
  );
  const tensors: TfTensor[] = [{ name: 'input', shape: [1, 224, 224, 3] }];
  const ops: { code: number; inputs: number[]; outputs: number[] }[] = [];
  let x = 0;
  for (const c of [...blocks.flatMap((b) => b.convs), { weight: 'Const_222', bias: 'Logits_bias', depthwise: false }]) {
    const w = random.get(c.weight) ?? { data: new Float32Array(1001 * 1280), shape: [1001, 1, 1, 1280] };
    const b = random.get(c.bias) ?? { data: new Float32Array(1001), shape: [1001] };
    tensors.push({ name: c.weight, ...w }, { name: c.bias, ...b }, { name: `${c.weight}_out`, shape: [1] });
    ops.push({
      code: c.depthwise ? DEPTHWISE_CONV_2D : CONV_2D,
      inputs: [x, tensors.length - 3, tensors.length - 2],
      outputs: [tensors.length - 1],
    });
    x = tensors.length - 1;
  }
  const tgz = gzipSync(tarFile([{ name: 'mobilenet_v2_1.0_224.tflite', data: tfliteModel(tensors, ops) }]), {
    level: 1,
  });
  const digest = tensorsDigest((n) => random.get(n)!);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-tflite-'));
  const restoreCache = setEnv('SAT_CACHE', tmp);
  const serve = (async () =>
    new Response(tgz, { status: 200, headers: { 'content-length': String(tgz.length) } })) as typeof fetch;
  try {
    // The pinned digest is the ImageNet model's: random tensors are refused and the archive is not kept.
    await assert.rejects(
      cachedMobileNetV2({ fetchImpl: serve, silent: true }),
      /mobilenet_v2_1\.0_224\.tgz: its MobileNetV2 tensors hash to [0-9a-f]{64}, expected dd88317a/,
    );
    assert.ok(!fs.existsSync(path.join(tmp, MOBILENET_V2_TFLITE.fileName)));

    const dir = await cachedMobileNetV2({ fetchImpl: serve, silent: true, expectedSha256: digest });
    assert.ok(fs.existsSync(path.join(dir, 'VERIFIED')));
    assert.ok(
      !fs.existsSync(path.join(tmp, MOBILENET_V2_TFLITE.fileName)),
      'the archive is deleted once its tensors are cached',
    );
    assert.equal(tensorsDigest(npyFolder(dir)), digest);
    const offline = (async () => {
      throw new TypeError('fetch failed');
    }) as typeof fetch;
    assert.equal(await cachedMobileNetV2({ fetchImpl: offline }), dir, 'a verified cache needs no network');

    fs.rmSync(dir, { recursive: true });
    await assert.rejects(
      cachedMobileNetV2({ fetchImpl: offline, silent: true }),
      /Could not download https:\/\/storage\.googleapis\.com\/download\.tensorflow\.org\/models\/tflite_11_05_08\/mobilenet_v2_1\.0_224\.tgz: fetch failed[^]*--encoder-weights mobilenet_v2_1\.0_224\.tgz/,
    );

    const file = path.join(tmp, 'given.tgz');
    fs.writeFileSync(file, tgz);
    assert.equal(
      tensorsDigest(tfliteFile(file, digest)),
      digest,
      'a .tgz passed with --encoder-weights is read the same way',
    );
  } finally {
    restoreCache();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
