/**
 * `sat export --model RUN_OR_CHECKPOINT --out DIR [--dtype fp32|fp16|int8]`: a trained checkpoint as a
 * self-contained ONNX bundle (encoder, decoder graphs, manifest.json) for onnxruntime-node, onnxruntime-web
 * and `loadCaptioner` (src/export/bundle.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { buildBundle, writeBundle } from '../export/bundle.js';
import type { BundleDtype } from '../export/weights.js';
import type { ModelCard } from '../export/manifest.js';
import { isModelName } from '../models/installed.js';
import { UserError } from '../util/errors.js';
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
  if (!card || typeof card !== 'object' || Array.isArray(card)) throw new UserError(`--card ${file} must hold a JSON object.`);
  for (const key of ['name', 'description', 'data', 'license', 'evaluatedOn'] as const) {
    if (card[key] !== undefined && typeof card[key] !== 'string') throw new UserError(`--card ${file}: "${key}" must be a string.`);
  }
  if (card.name !== undefined && !isModelName(card.name)) {
    throw new UserError(`--card ${file}: name ${JSON.stringify(card.name)} is not a model name (letters, digits, '.', '_', '-'; at most 64).`);
  }
  const scores = card.scores ?? {};
  if (typeof scores !== 'object' || Object.values(scores).some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
    throw new UserError(`--card ${file}: "scores" must map metric names to numbers, e.g. { "BLEU-4": 0.21 }.`);
  }
  return card;
}

const command: Command = {
  name: 'export',
  summary: 'Export a trained checkpoint as an ONNX bundle (encoder + decoder graphs + manifest) for onnxruntime-node/web',
  usage: 'sat export --model RUN_OR_CHECKPOINT [--model ...] --out DIR [--dtype fp32|fp16|int8]',
  options: {
    model: {
      type: 'string', multiple: true,
      description: 'run folder, its checkpoints/ folder, or a .safetensors checkpoint (best.* preferred over latest.*); ' +
        'repeat it (or separate with commas) for an ensemble bundle: one encoder, one decoder per checkpoint',
    },
    out: { type: 'string', description: 'bundle folder to write (created; a previous bundle there is replaced)' },
    dtype: { type: 'string', description: 'weight format: fp32 (exact), fp16 (half the size), int8 (decoder matrices per-channel int8, encoder fp16)', default: 'fp32' },
    card: { type: 'string', description: 'a JSON model card to put in the manifest: { name, description, data, license, evaluatedOn, scores: { METRIC: number } } (shown by sat models)' },
    ...CHECKPOINT_ENCODER_OPTIONS,
  },
  async run({ values }) {
    const models = listFlag(values, 'model');
    if (!models) throw new UserError('--model is required: the run (or checkpoints) folder of a trained model, e.g. --model runs/shapes');
    const out = requireString(values, 'out', 'the folder to write the bundle into, e.g. --out bundles/f8k');
    const dtype = values.dtype as BundleDtype; // checked by buildBundle
    const card = typeof values.card === 'string' ? readModelCard(values.card) : undefined;
    const bundle = await buildBundle(models, { dtype, encoder: givenEncoderFlags(values) });
    if (card) bundle.manifest.card = card;
    const written = writeBundle(out, bundle);
    let total = 0;
    for (const file of written) {
      const bytes = fs.statSync(file).size;
      total += bytes;
      console.log(`${path.basename(file).padEnd(20)} ${(bytes / 1e6).toFixed(2).padStart(8)} MB`);
    }
    console.log(`${'total'.padEnd(20)} ${(total / 1e6).toFixed(2).padStart(8)} MB  (${bundle.manifest.modelId}, ${dtype}) -> ${out}`);
  },
};

export default command;
