import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import h5wasm from 'h5wasm/node';
import * as ort from 'onnxruntime-node';
import { inceptionV3Imagenet } from '../src/encoders/inception_v3.js';
import { mapH5Weights, readKerasH5 } from '../src/encoders/keras/hdf5.js';
import { layersUpTo, parseKerasLayers, type KerasLayer } from '../src/encoders/keras/model.js';
import { loadNsfwjsInceptionV3, tfjsWeights } from '../src/encoders/keras/tfjs.js';
import { kerasToOnnx } from '../src/encoders/keras/to-onnx.js';
import { Rng } from '../src/util/rng.js';
import {
  avgPoolSame3,
  concat,
  conv2d,
  map,
  maxAbsDiff,
  randomArray,
  type Image3,
} from './helpers/encoders-reference.js';

/**
 * A tiny Keras model in the InceptionV3 style (conv -> BN(scale=False) -> relu, then a block concatenating a
 * 1x1 conv and a SAME average pool), its weights written as a Keras HDF5 weights file with tf.keras names
 * ("conv2d", "conv2d_1": numbered from 0 where our architecture says "conv2d_1", "conv2d_2").
 */
const layer = (name: string, className: string, config: object, inbound: string[]) => ({
  name,
  class_name: className,
  config: { name, ...config },
  inbound_nodes: inbound.length ? [inbound.map((i) => [i, 0, 0, {}])] : [],
});
const TOPOLOGY = {
  class_name: 'Model',
  config: {
    layers: [
      layer('input_1', 'InputLayer', { batch_input_shape: [null, 8, 8, 3] }, []),
      layer(
        'conv2d_1',
        'Conv2D',
        { filters: 4, kernel_size: [3, 3], strides: [2, 2], padding: 'valid', activation: 'linear', use_bias: false },
        ['input_1'],
      ),
      layer('batch_normalization_1', 'BatchNormalization', { axis: 3, epsilon: 0.001, center: true, scale: false }, [
        'conv2d_1',
      ]),
      layer('activation_1', 'Activation', { activation: 'relu' }, ['batch_normalization_1']),
      layer(
        'conv2d_2',
        'Conv2D',
        { filters: 2, kernel_size: [1, 1], strides: [1, 1], padding: 'same', activation: 'relu', use_bias: true },
        ['activation_1'],
      ),
      layer('average_pooling2d_1', 'AveragePooling2D', { pool_size: [3, 3], strides: [1, 1], padding: 'same' }, [
        'activation_1',
      ]),
      layer('mixed0', 'Concatenate', { axis: 3 }, ['conv2d_2', 'average_pooling2d_1']),
    ],
  },
};
const SHAPES: Record<string, Record<string, number[]>> = {
  conv2d_1: { kernel: [3, 3, 3, 4] },
  batch_normalization_1: { beta: [4], moving_mean: [4], moving_variance: [4] },
  conv2d_2: { kernel: [1, 1, 4, 2], bias: [2] },
};
const expected = (l: KerasLayer) => SHAPES[l.name] ?? {};

type H5Weights = Record<string, Record<string, Float32Array | number[]>>;

async function writeKerasH5(
  file: string,
  layerNames: string[],
  weights: H5Weights,
  shapes: Record<string, number[]>,
  opts: { nested?: boolean } = {},
) {
  await h5wasm.ready;
  const f = new h5wasm.File(file, 'w');
  const root = opts.nested ? f.create_group('model_weights') : f;
  // h5py (Keras) stores name lists as fixed-length byte strings, numpy dtype 'S<longest>'
  const fixed = (xs: string[]) => `S${Math.max(...xs.map((x) => x.length))}`;
  root.create_attribute('layer_names', layerNames, [layerNames.length], fixed(layerNames));
  for (const name of layerNames) {
    const g = root.create_group(name);
    const ws = weights[name];
    if (!ws) continue;
    const weightNames = Object.keys(ws).map((w) => `${name}/${w}:0`);
    g.create_attribute('weight_names', weightNames, [weightNames.length], fixed(weightNames));
    const inner = g.create_group(name);
    for (const [w, data] of Object.entries(ws))
      inner.create_dataset({ name: `${w}:0`, data: Float32Array.from(data), shape: shapes[`${name}/${w}`] });
  }
  f.close();
}

function randomWeights(seed: number) {
  const rng = new Rng(seed);
  const r = (n: number, s = 1) => randomArray(n, () => rng.next(), s);
  return {
    kernel1: r(3 * 3 * 3 * 4),
    beta: r(4),
    mean: r(4, 0.2),
    variance: Float32Array.from(r(4), (v) => 0.5 + Math.abs(v)),
    kernel2: r(4 * 2),
    bias2: r(2),
  };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-h5-'));
const FILE_NAMES = [
  'input_1',
  'conv2d',
  'batch_normalization',
  'activation',
  'conv2d_1',
  'average_pooling2d',
  'mixed0',
];
const FILE_SHAPES = {
  'conv2d/kernel': [3, 3, 3, 4],
  'batch_normalization/beta': [4],
  'batch_normalization/moving_mean': [4],
  'batch_normalization/moving_variance': [4],
  'conv2d_1/kernel': [1, 1, 4, 2],
  'conv2d_1/bias': [2],
};
function fileWeights(w: ReturnType<typeof randomWeights>): H5Weights {
  return {
    conv2d: { kernel: w.kernel1 },
    batch_normalization: { beta: w.beta, moving_mean: w.mean, moving_variance: w.variance },
    conv2d_1: { kernel: w.kernel2, bias: w.bias2 },
  };
}

test('Keras HDF5 weights map by creation order onto the architecture and give the right activations', async () => {
  const layers = parseKerasLayers(TOPOLOGY);
  const w = randomWeights(3);
  for (const nested of [false, true]) {
    const file = path.join(tmp, nested ? 'full-model.h5' : 'weights.h5');
    await writeKerasH5(file, FILE_NAMES, fileWeights(w), FILE_SHAPES, { nested });
    const weights = mapH5Weights(file, await readKerasH5(file), layers, expected);
    assert.deepEqual(weights.get('conv2d_2', 'bias')?.data, w.bias2, 'file "conv2d_1" is our second conv, "conv2d_2"');

    const { onnx, outputShape } = kerasToOnnx({
      layers,
      weights,
      outputLayer: 'mixed0',
      inputSize: 8,
      inputName: 'image',
      outputName: 'features',
    });
    assert.deepEqual(outputShape, [3, 3, 6]);
    const rng = new Rng(11);
    const x: Image3 = { data: randomArray(8 * 8 * 3, () => rng.next()), h: 8, w: 8, c: 3 };
    const session = await ort.InferenceSession.create(onnx);
    const out = (await session.run({ image: new ort.Tensor('float32', x.data, [1, 8, 8, 3]) })).features;

    // Reference straight from the Keras definitions; kernels are [kh, kw, in, out].
    const k1 = (o: number, ky: number, kx: number, i: number) => w.kernel1[((ky * 3 + kx) * 3 + i) * 4 + o];
    const bn = map(conv2d(x, k1, { cout: 4, kh: 3, kw: 3, stride: 2, same: false }), (v, ch) =>
      Math.max(0, (v - w.mean[ch]) / Math.sqrt(w.variance[ch] + 0.001) + w.beta[ch]),
    );
    const branch1 = map(
      conv2d(bn, (o, _y, _x, i) => w.kernel2[i * 2 + o], {
        cout: 2,
        kh: 1,
        kw: 1,
        stride: 1,
        same: true,
        bias: w.bias2,
      }),
      (v) => Math.max(0, v),
    );
    const ref = concat([branch1, avgPoolSame3(bn)]);
    const diff = maxAbsDiff(out.data as Float32Array, ref.data);
    assert.ok(diff < 1e-5, `max abs difference ${diff}`);
  }
});

test('wrong Keras weight files are rejected with the file and layer named', async () => {
  const layers = parseKerasLayers(TOPOLOGY);
  const w = randomWeights(5);

  const wrongShape = path.join(tmp, 'wrong-shape.h5');
  const bad = fileWeights(w);
  bad.conv2d = { kernel: new Float32Array(3 * 3 * 3 * 5) };
  await writeKerasH5(wrongShape, FILE_NAMES, bad, { ...FILE_SHAPES, 'conv2d/kernel': [3, 3, 3, 5] });
  await assert.rejects(
    async () => mapH5Weights(wrongShape, await readKerasH5(wrongShape), layers, expected),
    /wrong-shape\.h5: "conv2d\/kernel" has shape \[3, 3, 3, 5\], our "conv2d_1" needs \[3, 3, 3, 4\]/,
  );

  const tooFew = path.join(tmp, 'too-few.h5');
  const few = fileWeights(w);
  delete few.conv2d_1;
  await writeKerasH5(tooFew, FILE_NAMES, few, FILE_SHAPES);
  await assert.rejects(
    async () => mapH5Weights(tooFew, await readKerasH5(tooFew), layers, expected),
    /too-few\.h5 has 1 "conv2d" layers with weights, the architecture needs 2/,
  );

  const notKeras = path.join(tmp, 'plain.h5');
  await h5wasm.ready;
  const f = new h5wasm.File(notKeras, 'w');
  f.create_dataset({ name: 'x', data: new Float32Array(4) });
  f.close();
  await assert.rejects(
    readKerasH5(notKeras),
    /plain\.h5 has no "layer_names" attribute: it is not a Keras weights file/,
  );

  const text = path.join(tmp, 'text.h5');
  fs.writeFileSync(text, 'not hdf5 at all');
  await assert.rejects(readKerasH5(text), /text\.h5 is not a readable HDF5 file/);
  await assert.rejects(readKerasH5(path.join(tmp, 'missing.h5')), /missing\.h5 does not exist/);

  // The real InceptionV3 needs 94 convolutions: our tiny file is refused with the expected file's name.
  const tiny = path.join(tmp, 'weights.h5');
  await writeKerasH5(tiny, FILE_NAMES, fileWeights(w), FILE_SHAPES);
  await assert.rejects(
    inceptionV3Imagenet(tiny),
    /weights\.h5 has 2 "conv2d" layers with weights, the architecture needs 94[^]*inception_v3_weights_tf_dim_ordering_tf_kernels_notop\.h5/,
  );
});

test('a full-size InceptionV3 HDF5 (tf.keras names, nsfwjs values) maps all 188 weighted layers and builds', async () => {
  const art = loadNsfwjsInceptionV3();
  const nsfwjs = tfjsWeights(art, 'nsfwjs');
  const trunk = layersUpTo(parseKerasLayers(art.modelTopology.model_config), 'mixed10');
  // tf.keras numbering: "conv2d", "conv2d_1", ... for our conv2d_1, conv2d_2, ...
  const rename = (n: string) => n.replace(/_(\d+)$/, (_, k: string) => (k === '1' ? '' : `_${Number(k) - 1}`));
  const weights: H5Weights = {};
  const shapes: Record<string, number[]> = {};
  for (const spec of art.weightSpecs) {
    const [layerName, w] = spec.name.split('/');
    if (!trunk.some((l) => l.name === layerName)) continue; // the classifier head is not in a notop file
    const name = rename(layerName);
    (weights[name] ??= {})[w] = nsfwjs.get(layerName, w)!.data;
    shapes[`${name}/${w}`] = spec.shape;
  }
  const file = path.join(tmp, 'inception-notop.h5');
  await writeKerasH5(
    file,
    trunk.map((l) => rename(l.name)),
    weights,
    shapes,
  );

  const model = await inceptionV3Imagenet(file, 'mixed7');
  assert.equal(model.spec.id, 'inception_v3_imagenet-mixed7');
  assert.equal(model.spec.scaling, 'minus_one_one');
  const mapped = mapH5Weights(file, await readKerasH5(file), trunk, (l) =>
    Object.fromEntries(
      art.weightSpecs.filter((s) => s.name.startsWith(`${l.name}/`)).map((s) => [s.name.split('/')[1], s.shape]),
    ),
  );
  let checked = 0;
  for (const l of trunk) {
    for (const w of ['kernel', 'beta', 'moving_mean', 'moving_variance']) {
      const ours = nsfwjs.get(l.name, w);
      if (!ours) continue;
      assert.deepEqual(mapped.get(l.name, w)!.data, ours.data, `${l.name}/${w}`);
      checked++;
    }
  }
  assert.equal(checked, 94 + 94 * 3);
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
