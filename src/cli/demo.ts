import type { Command } from './command.js';
import { numberOption } from './command.js';
import { DEMO_ENCODER, DEMO_IMAGES, DEMO_MINUTES, formatDemoSummary, runDemo } from '../demo/demo.js';

const command: Command = {
  name: 'demo',
  summary:
    'Generate synthetic shapes, extract features, train until dev CIDEr stops improving and caption held-out images',
  usage: 'sat demo [--out DIR] [--minutes N] [--images N] [--seed N] [--layer mixedN --encoder-size PX]',
  options: {
    out: {
      type: 'string',
      description: 'output folder (captions, HTML page, attention maps, loss plot, the run)',
      default: 'demo-out',
    },
    minutes: {
      type: 'string',
      description: 'wall-clock cap for the whole demo; training usually stops earlier, when dev CIDEr stops improving',
      default: String(DEMO_MINUTES),
    },
    images: {
      type: 'string',
      description: 'synthetic images to generate (80% train, 10% dev, 10% test)',
      default: String(DEMO_IMAGES),
    },
    seed: { type: 'string', description: 'seed for the images, the splits and training', default: '42' },
    layer: { type: 'string', description: 'InceptionV3 layer for the features', default: DEMO_ENCODER.layer },
    'encoder-size': {
      type: 'string',
      description: 'InceptionV3 input side in pixels (its usual 299 gives mixed10 an 8x8 grid)',
      default: String(DEMO_ENCODER.size),
    },
  },
  async run({ values }) {
    const outDir = values.out as string;
    const result = await runDemo({
      outDir,
      minutes: numberOption(values, 'minutes', { min: 0.5 })!,
      images: numberOption(values, 'images', { integer: true, min: 20 })!,
      seed: numberOption(values, 'seed', { integer: true, min: 0 })!,
      layer: values.layer as string,
      encoderSize: numberOption(values, 'encoder-size', { integer: true, min: 75 })!,
    });
    console.log(formatDemoSummary(result, outDir));
  },
};

export default command;
