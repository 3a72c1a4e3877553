import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { inceptionV3Nsfwjs } from '../src/encoders/inception_v3.js';
import { resolveEncoder } from '../src/encoders/registry.js';
import { FIXTURE_FILE, LAYERS, fixtureImage, layerStats, type InceptionFixture } from './helpers/inception-fixture.js';

/**
 * Our ONNX conversion of the nsfwjs InceptionV3 against what TF.js, running the very same Keras model (the
 * reference implementation of the format), computed for one generated image at four cut points: the values at
 * 200 positions (seeded picks and the largest activations) and each layer's summary statistics. The TF.js run
 * (~30 s) is scripts/inception-tfjs-fixture.ts, which wrote test/fixtures/inception-tfjs.json.
 */
const fixture = JSON.parse(fs.readFileSync(FIXTURE_FILE, 'utf8')) as InceptionFixture;

test('nsfwjs InceptionV3: the ONNX graph matches TF.js at activation_1, mixed2, mixed7, mixed10', async () => {
  assert.deepEqual(
    fixture.layers.map((l) => [l.name, l.dims]),
    LAYERS,
    'the fixture was written for these layers',
  );
  const image = fixtureImage();
  for (const ref of fixture.layers) {
    const model = inceptionV3Nsfwjs(ref.name);
    const session = await ort.InferenceSession.create(model.onnx);
    const out = (await session.run({ [model.spec.inputName]: new ort.Tensor('float32', image, [1, 299, 299, 3]) }))[
      model.spec.outputName
    ];
    await session.release();
    assert.deepEqual(out.dims, ref.dims, ref.name);
    const ours = out.data as Float32Array;
    const scale = ref.stats.maxAbs;
    assert.ok(scale > 0.1, `${ref.name}: reference activations are all ~0, the comparison would prove nothing`);
    let worst = 0;
    ref.positions.forEach((p, i) => {
      worst = Math.max(worst, Math.abs(ours[p] - ref.values[i]));
    });
    const stats = layerStats(ours);
    console.log(
      `${ref.name} [${ref.dims}]: max |onnx - tfjs| at ${ref.positions.length} positions ${worst.toExponential(2)}, ` +
        `max |tfjs| ${scale.toFixed(3)}, relative ${(worst / scale).toExponential(2)}`,
    );
    assert.ok(worst / scale < 1e-4, `${ref.name}: max abs difference ${worst} vs max activation ${scale}`);
    for (const key of ['mean', 'meanAbs', 'rms', 'maxAbs'] as const) {
      assert.ok(
        Math.abs(stats[key] - ref.stats[key]) / scale < 1e-5,
        `${ref.name} ${key}: ${stats[key]} vs ${ref.stats[key]}`,
      );
    }
    assert.ok(
      Math.abs(stats.positive - ref.stats.positive) < 1e-3,
      `${ref.name}: ${stats.positive} vs ${ref.stats.positive} of activations > 0`,
    );
  }
});

test('registry: default encoder spec and known layers', async () => {
  const m = await resolveEncoder();
  assert.deepEqual(m.spec, {
    id: 'inception_v3_nsfwjs-mixed10',
    inputSize: 299,
    scaling: 'zero_one',
    inputLayout: 'nhwc',
    outputLayout: 'nhwc',
    inputName: 'image',
    outputName: 'features',
    locations: 64,
    channels: 2048,
  });
  assert.equal(await resolveEncoder(), m, 'resolving the same options again reuses the built graph');
  const m8 = await resolveEncoder({ layer: 'mixed8' });
  assert.equal(m8.spec.id, 'inception_v3_nsfwjs-mixed8');
  assert.deepEqual([m8.spec.locations, m8.spec.channels], [64, 1280]);
  const m7 = await resolveEncoder({ encoder: 'inception_v3_nsfwjs', layer: 'mixed7' });
  assert.deepEqual([m7.spec.locations, m7.spec.channels], [289, 768]);
  await assert.rejects(resolveEncoder({ layer: 'mixed11' }), /--layer mixed11 .*mixed0, mixed1, .*mixed10/);
  // A smaller input: the same weights, a coarser grid, its own feature-store id (and the graph really has that output).
  const small = await resolveEncoder({ layer: 'mixed2', size: 96 });
  assert.deepEqual(
    [small.spec.id, small.spec.inputSize, small.spec.locations, small.spec.channels],
    ['inception_v3_nsfwjs-mixed2-96', 96, 81, 288],
  );
  const session = await ort.InferenceSession.create(small.onnx);
  const out = (
    await session.run({ image: new ort.Tensor('float32', new Float32Array(96 * 96 * 3).fill(0.5), [1, 96, 96, 3]) })
  ).features;
  await session.release();
  assert.deepEqual(out.dims, [1, 9, 9, 288]);
  assert.equal(
    (await resolveEncoder({ layer: 'mixed10', size: 299 })).spec.id,
    'inception_v3_nsfwjs-mixed10',
    '299 is the default: no suffix',
  );
  await assert.rejects(
    resolveEncoder({ layer: 'mixed2', size: 74 }),
    /--encoder-size 74: InceptionV3 needs an integer input side of at least 75/,
  );
  await assert.rejects(
    resolveEncoder({ encoder: 'mobilenet_v2', size: 100 }),
    /--encoder-size 100: mobilenet_v2 takes a multiple of 32/,
  );
  await assert.rejects(
    resolveEncoder({ layer: 'dense_1' }),
    /--layer dense_1: .*"flatten_1" \(Flatten\), which cannot be converted/,
  );
});
