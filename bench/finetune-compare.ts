/**
 * Fine-tuning measured: models captioning one split of an own-folder run (`sat prepare --dataset folder`), each
 * scored against that run's references with the same code (BLEU-1..4, ROUGE-L, CIDEr-D; beam 3): typically the
 * shipped bundle as it is, a model trained from scratch on the run, and one fine-tuned from the bundle
 * (`sat train --init BUNDLE`).
 *
 *   npx tsx bench/finetune-compare.ts --run RUN [--split test] [--beam 3] NAME=MODEL...
 *
 * MODEL is a bundle folder (captioned by onnxruntime-node) or a run / checkpoint (the native decoder; its encoder is
 * rebuilt from the options the run recorded). Prints one row per model and writes RUN/finetune-compare.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadRun, imagesOf } from '../src/dataset/prepare.js';
import { loadCaptioner } from '../src/models/load-captioner.js';
import { SCORE_NAMES, scoreCaptions } from '../src/metrics/score.js';

const { values, positionals } = parseArgs({
  options: {
    run: { type: 'string' },
    split: { type: 'string', default: 'test' },
    beam: { type: 'string', default: '3' },
  },
  allowPositionals: true,
});
if (!values.run || positionals.length === 0)
  throw new Error('usage: bench/finetune-compare.ts --run RUN [--split test] [--beam 3] NAME=MODEL...');
const run = loadRun(values.run);
const images = imagesOf(run, values.split as 'test');
const refs = new Map(images.map((im) => [im.id, im.captions]));
const beam = Number(values.beam);
const rows: Record<string, unknown>[] = [];
console.log(`${images.length} ${values.split} images of ${values.run}, beam ${beam}`);
console.log(['model'.padEnd(12), ...SCORE_NAMES.map((n) => n.padStart(8)), 'seconds'.padStart(8)].join(' '));
for (const spec of positionals) {
  const [name, model] = spec.includes('=')
    ? [spec.slice(0, spec.indexOf('=')), spec.slice(spec.indexOf('=') + 1)]
    : [path.basename(spec), spec];
  const captioner = await loadCaptioner(model);
  const t0 = Date.now();
  const hyps = new Map<string, string>();
  for (let i = 0; i < images.length; i += 16) {
    const batch = images.slice(i, i + 16);
    const results = await captioner.captionBatch(
      batch.map((im) => im.path),
      { beam },
    );
    batch.forEach((im, k) => hyps.set(im.id, results[k].caption));
  }
  const seconds = (Date.now() - t0) / 1000;
  const scores = scoreCaptions(refs, hyps);
  rows.push({ name, model, modelId: captioner.info.modelId, scores, seconds });
  console.log(
    [name.padEnd(12), ...SCORE_NAMES.map((n) => scores[n].toFixed(4).padStart(8)), seconds.toFixed(0).padStart(8)].join(
      ' ',
    ),
  );
  await captioner.dispose();
}
fs.writeFileSync(
  path.join(values.run, 'finetune-compare.json'),
  JSON.stringify({ split: values.split, beam, images: images.length, rows }, null, 2) + '\n',
);
