/**
 * Sanity check of the MobileNetV2 graph built from ../shared/models/mobilenet_v2_1.0_224 (.npy tensors):
 * ../shared/models/README.md says that on Flickr8k train images the 7x7x1280 output has mean 0.45 and about
 * 18% of its values above zero. Images go through the same decode/resize/scaling as `sat features`.
 *
 *   node --import tsx checks/encoders-mobilenet-sanity.ts [--images 200] [--weights ../shared/models/mobilenet_v2_1.0_224]
 *       [--flickr ../shared/data/flickr8k] [--tolerance 0.25]
 *
 * Exits 1 when the mean or the fraction above zero is further than --tolerance (relative) from the README's figure.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { resolveEncoder } from '../src/encoders/registry.js';
import { loadRgb } from '../src/features/image.js';
import { writeImageToBatch } from '../src/features/pixels.js';
import { ProgressBar } from '../src/util/progress.js';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '200' },
    weights: { type: 'string', default: '../shared/models/mobilenet_v2_1.0_224' },
    flickr: { type: 'string', default: '../shared/data/flickr8k' },
    tolerance: { type: 'string', default: '0.25' },
  },
});
const model = await resolveEncoder({ encoder: 'mobilenet_v2', weights: values.weights });
const { inputSize: size, scaling, inputName, outputName } = model.spec;
const session = await ort.InferenceSession.create(model.onnx, { intraOpNumThreads: 2 });
const names = fs
  .readFileSync(path.join(values.flickr, 'Flickr8k_text', 'Flickr_8k.trainImages.txt'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter(Boolean)
  .slice(0, Number(values.images));
const batchSize = 8;
let sum = 0,
  positive = 0,
  count = 0;
const bar = new ProgressBar({ total: names.length, label: 'mobilenet_v2', unit: 'img' });
for (let b = 0; b < names.length; b += batchSize) {
  const chunk = names.slice(b, b + batchSize);
  const batch = new Float32Array(chunk.length * size * size * 3);
  for (const [i, name] of chunk.entries()) {
    const rgb = await loadRgb(path.join(values.flickr, 'Flicker8k_Dataset', name), size);
    writeImageToBatch(rgb, batch, i, { size, scaling, layout: 'nhwc' });
  }
  const out = (await session.run({ [inputName]: new ort.Tensor('float32', batch, [chunk.length, size, size, 3]) }))[
    outputName
  ];
  for (const v of out.data as Float32Array) {
    sum += v;
    if (v > 0) positive++;
    count++;
  }
  bar.tick(chunk.length);
}
bar.finish();
const readme = { mean: 0.45, fraction_above_zero: 0.18 };
const measured = { mean: +(sum / count).toFixed(4), fraction_above_zero: +(positive / count).toFixed(4) };
console.log(JSON.stringify({ images: names.length, ...measured, readme }));
const tolerance = Number(values.tolerance);
const off = (Object.keys(readme) as (keyof typeof readme)[]).filter(
  (k) => !(Math.abs(measured[k] - readme[k]) <= tolerance * readme[k]),
);
for (const k of off)
  console.error(
    `FAIL ${k} ${measured[k]} is further than --tolerance ${tolerance} (relative) from the README's ${readme[k]}`,
  );
if (off.length === 0)
  console.error(`ok: mean and fraction above zero within ${tolerance * 100}% of the README's figures`);
process.exitCode = off.length === 0 ? 0 : 1;
