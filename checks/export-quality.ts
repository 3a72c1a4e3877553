/**
 * Size and caption quality of each bundle weight format (fp32, fp16, int8) on a prepared run's dev split:
 * every bundle captions the dev image FILES through its own encoder.onnx and decoder graphs (beam 3, as
 * `sat eval --beam 3`), scored with src/metrics (pycocoevalcap's BLEU/ROUGE-L/CIDEr-D). Peers in the same run:
 * the native model on the stored features (exactly `sat eval --beam 3`) and on the image files.
 *
 *   node --import tsx checks/export-quality.ts --model runs/f8k/ck-xe5-cblas \
 *     --encoder-weights ../shared/models/mobilenet_v2_1.0_224 [--run runs/f8k] [--images 1000] [--out out/bundles] [--json]
 *     [--max-cider-drop 0.01]
 *
 * Exits 1 when a configuration's CIDEr-D is more than --max-cider-drop below `sat eval --beam 3`'s (the first row).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { restoreModel } from '../src/checkpoint/checkpoint.js';
import type { Captioner } from '../src/decode/captioner-api.js';
import { openCheckpointSource } from '../src/checkpoint/source.js';
import { decodeVocab } from '../src/decode/index.js';
import { decodeStoreImages } from '../src/decode/store.js';
import { buildBundle, writeBundle } from '../src/export/bundle.js';
import { loadCaptioner, type NodeImageInput } from '../src/models/load-captioner.js';
import { BUNDLE_DTYPES } from '../src/export/weights.js';
import { openFeatureStore } from '../src/features/store.js';
import { tokenizeCaption } from '../src/metrics/ptb-tokenizer.js';
import { scoreTokenized, type Scores } from '../src/metrics/score.js';
import { createModel } from '../src/model/index.js';
import { loadRun } from '../src/dataset/prepare.js';
import { runFeatureDir } from '../src/features/run-feature-store.js';
import { ProgressBar } from '../src/util/progress.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    run: { type: 'string' },
    'encoder-weights': { type: 'string' },
    images: { type: 'string', default: '1000' },
    out: { type: 'string', default: 'out/bundles' },
    json: { type: 'boolean' },
    'max-cider-drop': { type: 'string', default: '0.01' },
  },
});
if (!values.model)
  throw new Error(
    'usage: node --import tsx checks/export-quality.ts --model RUN_OR_CHECKPOINT [--encoder-weights DIR] [--run DIR] [--images 1000] [--out out/bundles] [--json]',
  );
const encoder = values['encoder-weights'] ? { weights: values['encoder-weights'] } : undefined;
const src = await openCheckpointSource(values.model!, encoder);
const runDir = values.run ?? src.ckpt.meta.run ?? path.dirname(path.resolve(values.model!));
const run = loadRun(runDir);
const dev = run.images.filter((im) => im.split === 'dev' && im.captions.length > 0).slice(0, Number(values.images));
const refs = dev.map((im) => im.captions.map(tokenizeCaption));
const score = (captions: string[]) => scoreTokenized(captions.map(tokenizeCaption), refs);

interface Row {
  name: string;
  megabytes: number | null;
  scores: Scores;
  seconds: number;
  sameAsFp32?: number;
}
const rows: Row[] = [];

// peer 1: `sat eval --beam 3` (native model, stored fp16 features)
{
  const t0 = performance.now();
  const model = createModel(src.ckpt.meta.model);
  restoreModel(model, src.ckpt, { optimizer: false });
  const store = openFeatureStore(runFeatureDir(runDir, { encoderId: src.ckpt.meta.encoder.id }));
  const captions = decodeStoreImages(
    model,
    store,
    dev.map((im) => im.id),
    decodeVocab(src.vocab),
    { beam: 3, maxLength: Math.max(1, src.vocab.maxLength - 1), progress: 'native, stored features' },
  );
  rows.push({
    name: 'native, stored features (sat eval)',
    megabytes: null,
    scores: score(captions.map((c) => c.words.join(' '))),
    seconds: (performance.now() - t0) / 1000,
  });
  model.dispose();
  store.close();
}

async function captionFiles(captioner: Captioner<NodeImageInput>, label: string): Promise<string[]> {
  const bar = new ProgressBar({ total: dev.length, label, unit: 'img' });
  const out: string[] = [];
  for (let first = 0; first < dev.length; first += 16) {
    const chunk = dev.slice(first, first + 16).map((im) => im.path);
    out.push(...(await captioner.captionBatch(chunk, { beam: 3 })).map((c) => c.caption));
    bar.tick(chunk.length);
  }
  bar.finish();
  return out;
}

// peer 2: native model on the image files (the fp32 encoder graph recomputes the features)
{
  const t0 = performance.now();
  const c = await loadCaptioner(values.model!, { backend: 'native', encoder });
  const captions = await captionFiles(c, 'native, image files');
  await c.dispose();
  rows.push({
    name: 'native, image files',
    megabytes: null,
    scores: score(captions),
    seconds: (performance.now() - t0) / 1000,
  });
}

let fp32: string[] = [];
for (const dtype of BUNDLE_DTYPES) {
  const dir = path.join(values.out!, dtype);
  writeBundle(dir, await buildBundle(values.model!, { dtype, encoder }));
  const bytes = fs.readdirSync(dir).reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0);
  const t0 = performance.now();
  const c = await loadCaptioner(dir);
  const captions = await captionFiles(c, `bundle ${dtype}`);
  await c.dispose();
  if (dtype === 'fp32') fp32 = captions;
  rows.push({
    name: `bundle ${dtype}`,
    megabytes: bytes / 1e6,
    scores: score(captions),
    seconds: (performance.now() - t0) / 1000,
    sameAsFp32: captions.filter((x, i) => x === fp32[i]).length,
  });
}

const result = {
  checkpoint: src.ckpt.file,
  epoch: src.ckpt.meta.progress.epoch,
  images: dev.length,
  decoding: 'beam 3',
  rows,
};
if (values.json) console.log(JSON.stringify(result));
else {
  console.log(`${src.ckpt.file} (epoch ${result.epoch}), ${dev.length} dev images, beam 3`);
  console.log('configuration                         size MB   CIDEr-D   BLEU-4   same caption as fp32   seconds');
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(36)} ${r.megabytes === null ? '      -' : r.megabytes.toFixed(2).padStart(7)}   ${r.scores.CIDEr.toFixed(4)}    ${r.scores['BLEU-4'].toFixed(4)}   ` +
        `${r.sameAsFp32 === undefined ? '-'.padStart(20) : `${r.sameAsFp32}/${dev.length}`.padStart(20)}   ${r.seconds.toFixed(1)}`,
    );
  }
}

const maxDrop = Number(values['max-cider-drop']);
const reference = rows[0];
const failing = rows.filter((r) => !(r.scores.CIDEr >= reference.scores.CIDEr - maxDrop));
for (const r of failing) {
  console.error(
    `FAIL ${r.name}: CIDEr-D ${r.scores.CIDEr.toFixed(4)} is more than --max-cider-drop ${maxDrop} below ${reference.name}'s ${reference.scores.CIDEr.toFixed(4)}`,
  );
}
if (failing.length === 0) console.error(`ok: every configuration within ${maxDrop} CIDEr-D of ${reference.name}`);
process.exitCode = failing.length === 0 ? 0 : 1;
