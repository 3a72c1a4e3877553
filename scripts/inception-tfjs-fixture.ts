/**
 * Writes test/fixtures/inception-tfjs.json: what TF.js (the reference implementation of the Keras/TF.js
 * format) computes for the nsfwjs InceptionV3 that `sat features` converts to ONNX, on one generated image, at
 * four cut points: values at 100 seeded positions and at the 100 largest activations, and summary statistics of each whole layer (a few KB).
 * test/encoders-inception.test.ts compares our ONNX graph with it. TF.js on the cpu backend takes ~30 s.
 *
 * Run: node --import tsx scripts/inception-tfjs-fixture.ts   (after changing the fixture's image, layers or positions)
 */
import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { loadNsfwjsInceptionV3 } from '../src/encoders/keras/tfjs.js';
import {
  FIXTURE_FILE,
  LAYERS,
  fixtureImage,
  layerStats,
  samplePositions,
  type InceptionFixture,
} from '../test/helpers/inception-fixture.js';

await tf.setBackend('cpu');
const art = loadNsfwjsInceptionV3();
const wd = art.weightData;
const keras = await tf.loadLayersModel({
  load: async () => ({
    modelTopology: art.modelTopology as never,
    weightSpecs: art.weightSpecs as never,
    weightData: wd.buffer.slice(wd.byteOffset, wd.byteOffset + wd.byteLength) as ArrayBuffer,
  }),
});
const cut = tf.model({
  inputs: keras.inputs,
  outputs: LAYERS.map(([n]) => keras.getLayer(n).output as tf.SymbolicTensor),
});
const outs = cut.predict(tf.tensor4d(fixtureImage(), [1, 299, 299, 3])) as tf.Tensor[];

const nsfwjs = JSON.parse(fs.readFileSync(new URL('../node_modules/nsfwjs/package.json', import.meta.url), 'utf8')) as {
  version: string;
};
const fixture: InceptionFixture = {
  source: `TF.js ${tf.version.tfjs} (cpu backend), nsfwjs ${nsfwjs.version} InceptionV3; scripts/inception-tfjs-fixture.ts`,
  layers: LAYERS.map(([name], i) => {
    const data = outs[i].dataSync() as Float32Array;
    const positions = samplePositions(data);
    return { name, dims: outs[i].shape, stats: layerStats(data), positions, values: positions.map((p) => data[p]) };
  }),
};
tf.dispose(outs);
fs.writeFileSync(FIXTURE_FILE, JSON.stringify(fixture) + '\n');
for (const l of fixture.layers)
  console.log(
    `${l.name} [${l.dims}]: max |x| ${l.stats.maxAbs.toFixed(3)}, mean ${l.stats.mean.toFixed(4)}, ${(100 * l.stats.positive).toFixed(1)}% > 0`,
  );
console.log(`wrote ${FIXTURE_FILE.pathname} (${fs.statSync(FIXTURE_FILE).size} bytes)`);
