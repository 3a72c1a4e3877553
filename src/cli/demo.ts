import type { Command } from './command.js';
import { numberOption } from './command.js';
import { formatDemoSummary, runDemo } from '../demo/demo.js';

const command: Command = {
  name: 'demo',
  summary: 'Generate synthetic shapes, extract features, train for a few minutes and caption held-out images',
  usage: 'sat demo [--out DIR] [--minutes N] [--images N] [--seed N]',
  options: {
    out: { type: 'string', description: 'output folder (captions, HTML page, attention maps, loss plot, the run)', default: 'demo-out' },
    minutes: { type: 'string', description: 'wall-clock budget for the whole demo; training gets what is left', default: '5' },
    images: { type: 'string', description: 'synthetic images to generate (80% train, 10% dev, 10% test)', default: '600' },
    seed: { type: 'string', description: 'seed for the images, the splits and training', default: '42' },
    layer: { type: 'string', description: 'InceptionV3 layer for the features', default: 'mixed10' },
  },
  async run({ values }) {
    const outDir = values.out as string;
    const result = await runDemo({
      outDir,
      minutes: numberOption(values, 'minutes', { min: 0.5 })!,
      images: numberOption(values, 'images', { integer: true, min: 20 })!,
      seed: numberOption(values, 'seed', { integer: true, min: 0 })!,
      layer: values.layer as string,
    });
    console.log(formatDemoSummary(result, outDir));
  },
};

export default command;
