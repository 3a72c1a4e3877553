/**
 * `sat export --model RUN_OR_CHECKPOINT --out DIR [--dtype fp32|fp16|int8]`: a trained checkpoint as a
 * self-contained ONNX bundle (encoder, decoder graphs, manifest.json) for onnxruntime-node, onnxruntime-web
 * and `loadCaptioner` (src/export/bundle.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { buildBundle, writeBundle } from '../export/bundle.js';
import type { BundleDtype } from '../export/weights.js';
import { listFlag } from './caption-options.js';
import { requireString, type Command } from './command.js';
import { UserError } from '../util/errors.js';
import { CHECKPOINT_ENCODER_OPTIONS, givenEncoderFlags } from './encoder-options.js';

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
    ...CHECKPOINT_ENCODER_OPTIONS,
  },
  async run({ values }) {
    const models = listFlag(values, 'model');
    if (!models) throw new UserError('--model is required: the run (or checkpoints) folder of a trained model, e.g. --model runs/shapes');
    const out = requireString(values, 'out', 'the folder to write the bundle into, e.g. --out bundles/f8k');
    const dtype = values.dtype as BundleDtype; // checked by buildBundle
    const bundle = await buildBundle(models, { dtype, encoder: givenEncoderFlags(values) });
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
