import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { mobilenetV2, npyFolder } from '../src/encoders/mobilenet/index.js';
import { buildMobileNetGraph, mobilenetV2Blocks, type MbBlock } from '../src/encoders/mobilenet/mobilenet_v2.js';
import { encodeNpy, readNpy, type NpyArray } from '../src/encoders/mobilenet/npy.js';
import { Rng } from '../src/util/rng.js';
import {
  add,
  conv2d,
  map,
  maxAbsDiff,
  mobilenetV2Shapes,
  randomArray,
  type Image3,
} from './helpers/encoders-reference.js';

const relu6 = (v: number) => Math.min(6, Math.max(0, v));

test('MobileNetV2 blocks (stride-2 SAME stem, residual block, stride-2 block) match plain-loop convolutions', async () => {
  const rng = new Rng(21);
  const tensors = new Map<string, NpyArray>();
  const put = (name: string, shape: number[], scale = 1) => {
    tensors.set(name, {
      data: randomArray(
        shape.reduce((a, b) => a * b, 1),
        () => rng.next(),
        scale,
      ),
      shape,
    });
    return name;
  };
  const conv = (name: string, shape: number[], depthwise: boolean, stride: number, relu: boolean) => ({
    weight: put(`Const_${name}`, shape, 3),
    bias: put(`MobilenetV2_${name}_bias`, [depthwise ? shape[3] : shape[0]], 0.5),
    depthwise,
    stride,
    relu6: relu,
  });
  const blocks: MbBlock[] = [
    { name: 'Conv', convs: [conv('stem', [4, 3, 3, 3], false, 2, true)], residual: false },
    {
      name: 'res',
      convs: [
        conv('e1', [8, 1, 1, 4], false, 1, true),
        conv('d1', [1, 3, 3, 8], true, 1, true),
        conv('p1', [4, 1, 1, 8], false, 1, false),
      ],
      residual: true,
    },
    {
      name: 'down',
      convs: [
        conv('e2', [8, 1, 1, 4], false, 1, true),
        conv('d2', [1, 3, 3, 8], true, 2, true),
        conv('p2', [6, 1, 1, 8], false, 1, false),
      ],
      residual: false,
    },
  ];
  const { onnx, outputShape } = buildMobileNetGraph({
    blocks,
    tensors: (n) => tensors.get(n)!,
    inputSize: 8,
    inputName: 'image',
    outputName: 'features',
    source: 'random tensors',
  });
  assert.deepEqual(outputShape, [2, 2, 6]);

  const x: Image3 = { data: randomArray(8 * 8 * 3, () => rng.next()), h: 8, w: 8, c: 3 };
  const session = await ort.InferenceSession.create(onnx);
  const out = (await session.run({ image: new ort.Tensor('float32', x.data, [1, 8, 8, 3]) })).features;
  assert.deepEqual(out.dims, [1, 2, 2, 6]);

  // Reference: OHWI weights read as [o][ky][kx][i], depthwise [1][ky][kx][c].
  let clamped = 0; // weights in [-3, 3] so that some activations exceed 6
  const apply = (input: Image3, c: MbBlock['convs'][number]) => {
    const w = tensors.get(c.weight)!;
    const [o, kh, kw, i] = w.shape;
    const read = c.depthwise
      ? (ch: number, ky: number, kx: number) => w.data[(ky * kw + kx) * i + ch]
      : (oc: number, ky: number, kx: number, ic: number) => w.data[((oc * kh + ky) * kw + kx) * i + ic];
    const y = conv2d(input, read, {
      cout: c.depthwise ? i : o,
      kh,
      kw,
      stride: c.stride,
      same: true,
      bias: tensors.get(c.bias)!.data,
      depthwise: c.depthwise,
    });
    clamped += y.data.filter((v) => c.relu6 && v > 6).length;
    return c.relu6 ? map(y, relu6) : y;
  };
  let ref = x;
  for (const b of blocks) {
    const input = ref;
    for (const c of b.convs) ref = apply(ref, c);
    if (b.residual) ref = add(input, ref);
  }
  assert.ok(clamped > 0, 'no activation exceeded 6: the ReLU6 upper clamp went untested');
  const diff = maxAbsDiff(out.data as Float32Array, ref.data);
  assert.ok(diff < 1e-4, `max abs difference ${diff}`);
});

/** The 32-bit LCG of scripts/mobilenet_v2_reference.py: values (x / 2^32 - 0.5) * scale, rounded to float32. */
class Lcg {
  constructor(private state: number) {}
  take(n: number, scale: number): Float32Array {
    const out = new Float32Array(n);
    let s = this.state;
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      out[i] = (s / 2 ** 32 - 0.5) * scale;
    }
    this.state = s;
    return out;
  }
}

test('full MobileNetV2 from a folder of .npy tensors matches an independent numpy float64 reference end to end; missing tensors are named', async () => {
  // The seeded network and image of scripts/mobilenet_v2_reference.py, which computed the fixture from the paper's
  // architecture table with numpy (TF SAME padding, ReLU6, residuals): the centre and corner outputs and the mean.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-mbv2-'));
  try {
    const stream = new Lcg(2024);
    const image = stream.take(224 * 224 * 3, 2);
    const blocks = mobilenetV2Blocks(),
      shapes = mobilenetV2Shapes(blocks);
    let convs = 0;
    for (const c of blocks.flatMap((b) => b.convs)) {
      const [ws, bs] = [shapes.get(c.weight)!, shapes.get(c.bias)!];
      const fanIn = ws[1] * ws[2] * (c.depthwise ? 1 : ws[3]);
      const weightScale = 2 ** Math.floor(0.5 * Math.log2(24 / fanIn) + 0.5);
      fs.writeFileSync(
        path.join(dir, `${c.weight}.npy`),
        encodeNpy({
          data: stream.take(
            ws.reduce((a, b) => a * b, 1),
            weightScale,
          ),
          shape: ws,
        }),
      );
      fs.writeFileSync(path.join(dir, `${c.bias}.npy`), encodeNpy({ data: stream.take(bs[0], 1 / 8), shape: bs }));
      convs++;
    }
    assert.equal(convs, 52);
    const model = mobilenetV2(npyFolder(dir), dir);
    assert.deepEqual(model.spec, {
      id: 'mobilenet_v2_imagenet',
      inputSize: 224,
      scaling: 'minus_one_one',
      inputLayout: 'nhwc',
      outputLayout: 'nhwc',
      inputName: 'image',
      outputName: 'features',
      locations: 49,
      channels: 1280,
    });
    const session = await ort.InferenceSession.create(model.onnx);
    const out = (await session.run({ image: new ort.Tensor('float32', image, [1, 224, 224, 3]) })).features;
    assert.deepEqual(out.dims, [1, 7, 7, 1280]);
    const y = out.data as Float32Array;
    const at = (row: number, col: number) => y.subarray((row * 7 + col) * 1280, (row * 7 + col + 1) * 1280);
    const mean = new Float32Array(1280).map((_, c) => {
      let sum = 0;
      for (let l = 0; l < 49; l++) sum += y[l * 1280 + c];
      return sum / 49;
    });

    const reference = readNpy(fileURLToPath(new URL('fixtures/mobilenet-v2-reference.npy', import.meta.url)));
    assert.deepEqual(reference.shape, [3, 1280]);
    const scale = reference.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    for (const [k, [name, got]] of (
      [
        ['centre (3, 3)', at(3, 3)],
        ['corner (0, 0)', at(0, 0)],
        ['mean over locations', mean],
      ] as const
    ).entries()) {
      const want = reference.data.subarray(k * 1280, (k + 1) * 1280);
      const diff = maxAbsDiff(got, want);
      // float32 through 52 convolutions against float64: measured up to 8e-5 of the output's scale (6)
      assert.ok(diff <= 2e-4 * scale, `${name}: max |difference| ${diff} against the reference (scale ${scale})`);
    }
    assert.ok(
      scale > 1 && reference.data.some((v) => v === 0),
      'the reference output is neither tiny nor free of ReLU zeros',
    );

    // The dense form (DeepLab's output stride 16): the same weights, the last stride dilated away. Its odd
    // positions see exactly what the strided network's positions see (TF SAME padding puts output i of a
    // stride-2 3x3 convolution over inputs 2i..2i+2), so they must equal the 7x7 map.
    const dense = mobilenetV2(npyFolder(dir), dir, { layer: 'Conv_1_os16' });
    assert.equal(dense.spec.id, 'mobilenet_v2_imagenet_os16');
    assert.equal(dense.spec.locations, 196);
    const denseSession = await ort.InferenceSession.create(dense.onnx);
    const d = (await denseSession.run({ image: new ort.Tensor('float32', image, [1, 224, 224, 3]) })).features;
    assert.deepEqual(d.dims, [1, 14, 14, 1280]);
    const dy = d.data as Float32Array;
    let worst = 0;
    for (let i = 0; i < 7; i++)
      for (let j = 0; j < 7; j++) {
        const at2 = ((2 * i + 1) * 14 + 2 * j + 1) * 1280;
        worst = Math.max(worst, maxAbsDiff(dy.subarray(at2, at2 + 1280), at(i, j)));
      }
    assert.ok(worst <= 1e-4 * scale, `dense map at odd positions vs the 7x7 map: max |difference| ${worst}`);
    const evenAt = (2 * 14 + 2) * 1280;
    assert.ok(maxAbsDiff(dy.subarray(evenAt, evenAt + 1280), at(1, 1)) > 1e-2 * scale, 'even positions are new');
    // Conv_1_tap12: at every location the 7x7 map, then block 12's 14x14x96 map folded 2x2 (ONNX SpaceToDepth:
    // channel (dy * 2 + dx) * 96 + c holds row 2i + dy, column 2j + dx, channel c).
    const tapped = mobilenetV2(npyFolder(dir), dir, { layer: 'Conv_1_tap12' });
    assert.deepEqual(
      [tapped.spec.id, tapped.spec.locations, tapped.spec.channels],
      ['mobilenet_v2_imagenet_tap12', 49, 1664],
    );
    const run = async (onnx: Uint8Array) =>
      (
        await (
          await ort.InferenceSession.create(onnx)
        ).run({ image: new ort.Tensor('float32', image, [1, 224, 224, 3]) })
      ).features;
    const t = await run(tapped.onnx);
    assert.deepEqual(t.dims, [1, 7, 7, 1664]);
    const upTo12 = blocks.slice(0, blocks.findIndex((b) => b.name === 'expanded_conv_12') + 1);
    const b12 = await run(
      buildMobileNetGraph({
        blocks: upTo12,
        tensors: npyFolder(dir),
        inputSize: 224,
        inputName: 'image',
        outputName: 'features',
        source: dir,
      }).onnx,
    );
    assert.deepEqual(b12.dims, [1, 14, 14, 96]);
    const [ty, by] = [t.data as Float32Array, b12.data as Float32Array];
    let worstTap = 0;
    for (let i = 0; i < 7; i++)
      for (let j = 0; j < 7; j++) {
        const row = ty.subarray((i * 7 + j) * 1664, (i * 7 + j + 1) * 1664);
        worstTap = Math.max(worstTap, maxAbsDiff(row.subarray(0, 1280), at(i, j)));
        for (let dy = 0; dy < 2; dy++)
          for (let dx = 0; dx < 2; dx++) {
            const from = ((2 * i + dy) * 14 + 2 * j + dx) * 96;
            const to = 1280 + (dy * 2 + dx) * 96;
            worstTap = Math.max(worstTap, maxAbsDiff(row.subarray(to, to + 96), by.subarray(from, from + 96)));
          }
      }
    assert.ok(worstTap <= 1e-5 * scale, `tapped map vs the 7x7 map and block 12 folded: max |difference| ${worstTap}`);
    const larger = mobilenetV2(npyFolder(dir), dir, { size: 256 });
    assert.deepEqual(
      [larger.spec.id, larger.spec.locations, larger.spec.inputSize],
      ['mobilenet_v2_imagenet_256', 64, 256],
    );

    fs.rmSync(path.join(dir, 'Const_71.npy'));
    assert.throws(() => npyFolder(dir), /1 MobileNetV2 tensors are missing \(e\.g\. Const_71\.npy\)/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
