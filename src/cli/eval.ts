/**
 * `sat eval --run RUN --split dev|test`: caption a split from the run's feature store with a trained
 * checkpoint and score it (BLEU-1..4, ROUGE-L, CIDEr-D); writes results.json, metrics.json and an HTML
 * report with attention figures. On a synthetic shapes run it also checks where the attention looks.
 */
import path from 'node:path';
import { SCORE_NAMES } from '../metrics/score.js';
import { describeDecoding, evaluate } from '../eval/evaluate.js';
import { formatAttentionCheck } from '../eval/attention-check.js';
import { UserError } from '../util/errors.js';
import { captionOptionFlags, captionOptionsFromFlags, EVAL_CAPTION_FLAGS, listFlag } from './caption-options.js';
import { numberOption, requireString, type Command } from './command.js';

const command: Command = {
  name: 'eval',
  summary: 'Caption a dev/test split from cached features and score it (BLEU, ROUGE-L, CIDEr) with an HTML report',
  usage:
    'sat eval --run DIR --split dev|test [--checkpoint best|latest|PATH[,PATH...]] [--beam K [--alpha A] [--groups G]] [--block-trigrams] [--limit N] [--json] [--out DIR]',
  options: {
    run: { type: 'string', description: 'run directory (sat prepare + sat features + sat train)' },
    split: { type: 'string', description: 'dev or test', default: 'test' },
    checkpoint: {
      type: 'string',
      multiple: true,
      description:
        'best, latest, or a checkpoint .safetensors file / folder (default best); repeat it or separate with commas for an ensemble of checkpoints',
    },
    ...captionOptionFlags(EVAL_CAPTION_FLAGS),
    limit: {
      type: 'string',
      description: 'evaluate only this many images of the split, picked by --seed (default: all)',
    },
    sample: { type: 'string', description: 'images shown in the HTML report with attention figures', default: '12' },
    seed: { type: 'string', description: 'seed for --limit and the report sample', default: '0' },
    features: {
      type: 'string',
      description: "feature store folder (default: the run's store of the checkpoint's encoder)",
    },
    out: { type: 'string', description: 'output folder (default RUN/eval/SPLIT-CHECKPOINT-DECODING)' },
    'attention-check': {
      type: 'boolean',
      description: 'print where attention falls vs ground-truth boxes (shapes runs; always in metrics.json there)',
    },
    json: { type: 'boolean', description: 'print metrics.json to stdout instead of the table' },
    quiet: { type: 'boolean', description: 'no progress bar' },
  },
  async run({ values }) {
    const runDir = requireString(values, 'run', 'the run directory of a trained model, e.g. --run runs/f8k');
    const split = values.split as string;
    if (split !== 'dev' && split !== 'test') throw new UserError(`--split must be dev or test, got "${split}".`);
    const result = await evaluate({
      runDir,
      split,
      checkpoint: listFlag(values, 'checkpoint'),
      decoding: captionOptionsFromFlags(values, EVAL_CAPTION_FLAGS),
      limit: numberOption(values, 'limit', { integer: true, min: 1 }),
      sample: numberOption(values, 'sample', { integer: true, min: 0 }),
      seed: numberOption(values, 'seed', { integer: true, min: 0 }),
      featuresDir: values.features as string | undefined,
      outDir: values.out as string | undefined,
      attentionCheck: values['attention-check'] === true ? true : undefined,
      quiet: values.quiet === true,
    });
    const m = result.metrics;
    if (values.json) {
      console.log(
        JSON.stringify({
          ...m,
          ...(result.attention ? { attentionCheck: result.attention } : {}),
          files: result.files,
        }),
      );
      return;
    }
    const decoding = describeDecoding(m.decoding);
    const checkpoints = (m.ensemble ?? [m.checkpoint])
      .map((c) => `${path.basename(c.file)} (epoch ${c.epoch})`)
      .join(' + ');
    console.log(
      `${m.split}: ${m.images} images, ${decoding}, checkpoint ${checkpoints}` +
        (m.missingFeatures ? `; ${m.missingFeatures} images without features left out` : ''),
    );
    for (const name of SCORE_NAMES) console.log(`  ${name.padEnd(8)} ${m.scores[name].toFixed(4)}`);
    console.log('  METEOR and SPICE: not computed (they need the official Java jars)');
    if (result.attention && values['attention-check']) console.log(formatAttentionCheck(result.attention));
    const rel = path.relative(process.cwd(), result.files.report);
    console.log(
      `Wrote ${rel.startsWith('..') ? result.files.report : rel} (and results.json, metrics.json beside it).`,
    );
  },
};

export default command;
