import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { inceptionV3Nsfwjs } from '../src/encoders/inception_v3.js';
import { loadNsfwjsInceptionV3 } from '../src/encoders/keras/tfjs.js';
import { resolveEncoder } from '../src/encoders/registry.js';
import { Rng } from '../src/util/rng.js';

/**
 * Our ONNX conversion of the nsfwjs InceptionV3 against TF.js running the very same Keras model
 * (the reference implementation of the format), on one random image, at four cut points:
 * the first conv block (VALID stride-2 conv + folded BN + ReLU), mixed2 (SAME average pooling),
 * mixed7 (1x7/7x1 convs) and mixed10 (the tutorial's layer). One TF.js pass on the cpu backend: ~30 s.
 */
const LAYERS: [string, number[]][] = [
  ['activation_1', [1, 149, 149, 32]], ['mixed2', [1, 35, 35, 288]], ['mixed7', [1, 17, 17, 768]], ['mixed10', [1, 8, 8, 2048]],
];

test('nsfwjs InceptionV3: ONNX graph matches TF.js at activation_1, mixed2, mixed7, mixed10', async () => {
  await tf.setBackend('cpu');
  const art = loadNsfwjsInceptionV3();
  const wd = art.weightData;
  const keras = await tf.loadLayersModel({
    load: async () => ({
      modelTopology: art.modelTopology as never, weightSpecs: art.weightSpecs as never,
      weightData: wd.buffer.slice(wd.byteOffset, wd.byteOffset + wd.byteLength) as ArrayBuffer,
    }),
  });
  const cut = tf.model({ inputs: keras.inputs, outputs: LAYERS.map(([n]) => keras.getLayer(n).output as tf.SymbolicTensor) });
  const rng = new Rng(7);
  const image = Float32Array.from({ length: 299 * 299 * 3 }, () => rng.next()); // already x/255
  const outs = cut.predict(tf.tensor4d(image, [1, 299, 299, 3])) as tf.Tensor[];
  const reference = outs.map((o) => o.dataSync() as Float32Array);
  tf.dispose(outs);

  for (const [i, [layer, dims]] of LAYERS.entries()) {
    const model = inceptionV3Nsfwjs(layer);
    const session = await ort.InferenceSession.create(model.onnx);
    const out = (await session.run({ [model.spec.inputName]: new ort.Tensor('float32', image, [1, 299, 299, 3]) }))[model.spec.outputName];
    await session.release();
    assert.deepEqual(out.dims, dims, layer);
    const ours = out.data as Float32Array, ref = reference[i];
    let maxAbs = 0, maxRef = 0;
    for (let j = 0; j < ref.length; j++) {
      maxAbs = Math.max(maxAbs, Math.abs(ours[j] - ref[j]));
      maxRef = Math.max(maxRef, Math.abs(ref[j]));
    }
    console.log(`${layer} [${dims}]: max |onnx - tfjs| = ${maxAbs.toExponential(2)}, max |tfjs| = ${maxRef.toFixed(3)}, relative ${(maxAbs / maxRef).toExponential(2)}`);
    assert.ok(maxRef > 0.1, `${layer}: reference activations are all ~0, the comparison would prove nothing`);
    assert.ok(maxAbs / maxRef < 1e-4, `${layer}: max abs difference ${maxAbs} vs max activation ${maxRef}`);
  }
});

test('registry: default encoder spec and known layers', async () => {
  const m = await resolveEncoder();
  assert.deepEqual(m.spec, {
    id: 'inception_v3_nsfwjs-mixed10', inputSize: 299, scaling: 'zero_one', inputLayout: 'nhwc', outputLayout: 'nhwc',
    inputName: 'image', outputName: 'features', locations: 64, channels: 2048,
  });
  assert.equal(await resolveEncoder(), m, 'resolving the same options again reuses the built graph');
  const m8 = await resolveEncoder({ layer: 'mixed8' });
  assert.equal(m8.spec.id, 'inception_v3_nsfwjs-mixed8');
  assert.deepEqual([m8.spec.locations, m8.spec.channels], [64, 1280]);
  const m7 = await resolveEncoder({ encoder: 'inception_v3_nsfwjs', layer: 'mixed7' });
  assert.deepEqual([m7.spec.locations, m7.spec.channels], [289, 768]);
  await assert.rejects(resolveEncoder({ layer: 'mixed11' }), /--layer mixed11 .*mixed0, mixed1, .*mixed10/);
  await assert.rejects(resolveEncoder({ layer: 'dense_1' }), /--layer dense_1: .*"flatten_1" \(Flatten\), which cannot be converted/);
});
