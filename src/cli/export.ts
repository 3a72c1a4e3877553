/**
 * `sat export --model RUN_OR_CHECKPOINT --out DIR [--dtype fp32|fp16|int8]`: a trained checkpoint as a
 * self-contained ONNX bundle (encoder, decoder graphs, manifest.json) for onnxruntime-node, onnxruntime-web
 * and `loadCaptioner` (src/export/bundle.ts).
 *
 * `--site DIR`: a static captioning site instead (or as well): the page, onnxruntime-web's wasm files and the
 * bundle in DIR/model/ (src/web/site-build.ts), for any static file server. --model may then also be a bundle
 * folder, which is copied as it is (its files checked against its manifest).
 */
import fs from 'node:fs';
import path from 'node:path';
import { buildBundle, writeBundle } from '../export/bundle.js';
import { readBundleFolder } from '../export/bundle-folder.js';
import type { BundleDtype } from '../export/weights.js';
import type { ModelCard } from '../export/manifest.js';
import { isModelName } from '../models/installed.js';
import { locateModel } from '../models/source.js';
import { UserError } from '../util/errors.js';
import { writeSite } from '../web/site-build.js';
import { listFlag } from './caption-options.js';
import { requireString, type Command } from './command.js';
import { CHECKPOINT_ENCODER_OPTIONS, givenEncoderFlags } from './encoder-options.js';

/** The model card in `file`, checked: known fields of the right types, scores as numbers, a valid name. */
export function readModelCard(file: string): ModelCard {
  if (!fs.existsSync(file)) throw new UserError(`--card ${file} does not exist. Check the path.`);
  let card: ModelCard;
  try {
    card = JSON.parse(fs.readFileSync(file, 'utf8')) as ModelCard;
  } catch (e) {
    throw new UserError(`--card ${file} is not valid JSON (${(e as Error).message}).`);
  }
  if (!card || typeof card !== 'object' || Array.isArray(card))
    throw new UserError(`--card ${file} must hold a JSON object.`);
  for (const key of ['name', 'description', 'data', 'license', 'evaluatedOn'] as const) {
    if (card[key] !== undefined && typeof card[key] !== 'string')
      throw new UserError(`--card ${file}: "${key}" must be a string.`);
  }
  if (card.name !== undefined && !isModelName(card.name)) {
    throw new UserError(
      `--card ${file}: name ${JSON.stringify(card.name)} is not a model name (letters, digits, '.', '_', '-'; at most 64).`,
    );
  }
  const scores = card.scores ?? {};
  if (typeof scores !== 'object' || Object.values(scores).some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
    throw new UserError(`--card ${file}: "scores" must map metric names to numbers, e.g. { "BLEU-4": 0.21 }.`);
  }
  return card;
}

const command: Command = {
  name: 'export',
  summary:
    'Export trained checkpoints as an ONNX bundle (encoder + decoder graphs + manifest) for onnxruntime-node/web, or as a static site',
  usage:
    'sat export --model RUN_OR_CHECKPOINT [--model ...] --out DIR [--dtype fp32|fp16|int8] [--card FILE]   |   sat export --model RUN_OR_BUNDLE --site DIR [--dtype int8]',
  options: {
    model: {
      type: 'string',
      multiple: true,
      description:
        'run folder, its checkpoints/ folder, or a .safetensors checkpoint (best.* preferred over latest.*); with --site also a bundle folder; ' +
        'repeat it (or separate with commas) for an ensemble bundle: one encoder, one decoder per checkpoint',
    },
    out: { type: 'string', description: 'bundle folder to write (created; a previous bundle there is replaced)' },
    site: {
      type: 'string',
      description:
        'static site folder to write: page + onnxruntime-web wasm + the bundle in model/ (serve it with any static file server)',
    },
    dtype: {
      type: 'string',
      description:
        'weight format: fp32 (exact), fp16 (half the size), int8 (decoder matrices per-channel int8, encoder fp16)',
      default: 'fp32',
    },
    card: {
      type: 'string',
      description:
        'a JSON model card to put in the manifest: { name, description, data, license, evaluatedOn, scores: { METRIC: number } } (shown by sat models)',
    },
    memory: {
      type: 'string',
      description:
        "a run folder whose training images' pooled features and captions go into the bundle as a caption memory, " +
        'for consensus reranking (--consensus K of sat caption / sat serve / the browser); adds about 1.6 KB per image (9.4 MB for the 6000 Flickr8k training images with MobileNetV2)',
    },
    ...CHECKPOINT_ENCODER_OPTIONS,
  },
  async run({ values }) {
    const models = listFlag(values, 'model');
    if (!models)
      throw new UserError(
        '--model is required: the run (or checkpoints) folder of a trained model, e.g. --model runs/shapes',
      );
    const out = values.out as string | undefined;
    const site = values.site as string | undefined;
    if (!out && !site)
      throw new UserError(
        '--out DIR (a bundle folder) or --site DIR (a static captioning site) is required, e.g. --out bundles/f8k.',
      );
    const dtype = values.dtype as BundleDtype; // checked by buildBundle
    const card = typeof values.card === 'string' ? readModelCard(values.card) : undefined;
    // Paths, or names of the shipped and installed models (src/models/source.ts).
    const located = await Promise.all(models.map((m) => locateModel(m, { silent: false })));
    const fromBundle = located.length === 1 && located[0].kind === 'bundle';
    if (fromBundle && out)
      throw new UserError(
        `--model ${models[0]} is already a bundle: copy the folder, or use --site DIR to make a site of it.`,
      );
    const memoryRun = values.memory as string | undefined;
    const bundle = fromBundle
      ? await readBundleFolder(located[0].path)
      : await buildBundle(
          located.map((l) => l.path),
          {
            dtype,
            encoder: givenEncoderFlags(values),
            memoryRun,
          },
        );
    if (fromBundle && (dtype !== 'fp32' || givenEncoderFlags(values) || card || memoryRun)) {
      throw new UserError(
        `--model ${models[0]} is a ${bundle.manifest.dtype} bundle with its own encoder, card and memory: --dtype, --card, ` +
          '--memory and the encoder flags do not apply; export the checkpoint it came from to choose them.',
      );
    }
    if (card) bundle.manifest.card = card;
    if (out) report(writeBundle(out, bundle), `${bundle.manifest.modelId}, ${bundle.manifest.dtype}`, out);
    if (site) {
      report(await writeSite(site, bundle), `${bundle.manifest.modelId}, ${bundle.manifest.dtype}`, site);
      console.log(
        `Serve ${site} with any static file server, e.g. \`python3 -m http.server -d ${site} 8000\`, and open http://127.0.0.1:8000/`,
      );
    }
  },
};

function report(written: string[], what: string, where: string): void {
  let total = 0;
  for (const file of written) {
    const bytes = fs.statSync(file).size;
    total += bytes;
    console.log(`${path.basename(file).padEnd(28)} ${(bytes / 1e6).toFixed(2).padStart(8)} MB`);
  }
  console.log(`${'total'.padEnd(28)} ${(total / 1e6).toFixed(2).padStart(8)} MB  (${what}) -> ${where}`);
}

export default command;
