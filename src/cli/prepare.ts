import { DATASET_KINDS, formatReport, prepareRun, type DatasetKind } from '../dataset/prepare.js';
import { UserError } from '../util/errors.js';
import { numberOption, requireString, type Command } from './command.js';

const command: Command = {
  name: 'prepare',
  summary: 'Read a dataset, build the vocabulary and write a run directory (run.json, vocab.json, images.jsonl)',
  usage: 'sat prepare --dataset flickr8k|coco|karpathy|folder|shapes --root DIR --out RUN [options]',
  options: {
    dataset: { type: 'string', description: `dataset reader: ${DATASET_KINDS.join(', ')}` },
    root: { type: 'string', description: 'dataset folder (shapes: where images are generated, default RUN/shapes)' },
    out: { type: 'string', description: 'run directory to write, e.g. runs/f8k' },
    captions: {
      type: 'string',
      description: 'caption file overriding the default (token file, captions_*.json, dataset_*.json, CSV or JSONL)',
    },
    'top-k': {
      type: 'string',
      description: 'keep the top-k most frequent train words; V = min(top-k, 2 + distinct tokens)',
      default: '5000',
    },
    'max-length': {
      type: 'string',
      description: 'truncate token sequences to this length, <start>/<end> included (default: longest train caption)',
    },
    'limit-captions': {
      type: 'string',
      description: 'keep only N captions chosen by a seeded shuffle (the tutorial uses 30000 on COCO)',
    },
    seed: { type: 'string', description: 'seed for shuffles, splits and shapes generation', default: '42' },
    download: { type: 'boolean', description: 'download and extract coco (2014 train) or flickr8k into --root first' },
    'download-base': {
      type: 'string',
      description:
        'base URL overriding the official download location (also SAT_COCO_BASE_URL / SAT_FLICKR8K_BASE_URL)',
    },
    images: { type: 'string', description: 'shapes: number of images to generate', default: '1000' },
    'image-size': { type: 'string', description: 'shapes: image side in pixels', default: '224' },
    force: { type: 'boolean', description: 'overwrite a run directory that already has features or checkpoints' },
    json: { type: 'boolean', description: 'print run.json instead of the text report' },
  },
  async run({ values }) {
    const dataset = requireString(values, 'dataset', `one of ${DATASET_KINDS.join(', ')}.`) as DatasetKind;
    if (!DATASET_KINDS.includes(dataset))
      throw new UserError(`--dataset must be one of ${DATASET_KINDS.join(', ')}, got "${dataset}".`);
    const out = requireString(values, 'out', 'the run directory to write, e.g. --out runs/f8k.');
    const { info } = await prepareRun({
      dataset,
      out,
      root: values.root as string | undefined,
      captionsFile: values.captions as string | undefined,
      topK: numberOption(values, 'top-k', { integer: true, min: 4 }),
      maxLength: numberOption(values, 'max-length', { integer: true, min: 2 }),
      limitCaptions: numberOption(values, 'limit-captions', { integer: true, min: 1 }),
      seed: numberOption(values, 'seed', { integer: true, min: 0 }),
      download: Boolean(values.download),
      downloadBaseUrl: values['download-base'] as string | undefined,
      images: numberOption(values, 'images', { integer: true, min: 1 }),
      imageSize: numberOption(values, 'image-size', { integer: true, min: 32 }),
      force: Boolean(values.force),
    });
    console.log(
      values.json
        ? JSON.stringify(info, null, 2)
        : `${formatReport(info)}\nwrote ${out}/run.json, vocab.json, images.jsonl`,
    );
  },
};

export default command;
