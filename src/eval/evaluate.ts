/**
 * `evaluate(options)`: the library behind `sat eval`. Captions a split of a prepared run straight from its
 * feature store with a trained checkpoint, scores them like pycocoevalcap and writes, into one folder:
 *
 *   results.json    COCO results format [{"image_id", "caption"}] (`sat score --hyps` reads it)
 *   metrics.json    BLEU-1..4, ROUGE-L, CIDEr-D (METEOR/SPICE listed as unavailable), what was evaluated
 *                   and how, and the attention check on synthetic-shapes runs
 *   index.html      metrics + a seeded sample of images: caption vs references, per-image CIDEr-D,
 *                   attention figures (figures/ID.png) and the images themselves (images/ID.ext)
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadCheckpoint, loadCheckpointVocab, type LoadedCheckpoint } from '../checkpoint/checkpoint.js';
import { restoreModel } from '../checkpoint/checkpoint.js';
import { loadShapesManifest } from '../dataset/shapes.js';
import type { Split } from '../dataset/types.js';
import { decodeStoreImages } from '../decode/store.js';
import { CaptionMemory } from '../decode/consensus.js';
import { buildRunMemory } from '../decode/run-memory.js';
import { ensembleModel, checkEnsembleMembers } from '../decode/ensemble.js';
import {
  decodingSummary,
  resolveCaptionOptions,
  type CaptionOptions,
  type DecodingSummary,
} from '../decode/options.js';
import { runFeatureDir } from '../features/run-feature-store.js';
import { openFeatureStore } from '../features/store.js';
import { loadRgb } from '../features/image.js';
import { renderAttentionFigure } from '../figures/attention.js';
import { ciderDImages } from '../metrics/cider.js';
import { tokenizeCaption } from '../metrics/ptb-tokenizer.js';
import { scoreTokenized, type Scores } from '../metrics/score.js';
import { createModel } from '../model/index.js';
import { loadRun, type LoadedRun } from '../dataset/prepare.js';
import { runPaths } from '../dataset/run.js';
import { UserError } from '../util/errors.js';
import { seededSubset } from '../util/rng.js';
import { defaultMaxLength } from '../vocab/vocabulary.js';
import { checkAttention, type AttentionCheck } from './attention-check.js';
import { reportHtml, type ReportItem } from './report.js';
import { decodeVocab } from '../decode/index.js';

export interface EvaluateOptions {
  runDir: string;
  split: Split;
  /**
   * 'best' (default; falls back to latest), 'latest', or a checkpoint file/folder; several for an ensemble
   * (src/decode/ensemble.ts: the same vocabulary and encoder; the features are the first one's).
   */
  checkpoint?: string | readonly string[];
  /** How to caption (the Captioner API's options; default greedy, at most the vocabulary's max length - 1 tokens). */
  decoding?: CaptionOptions;
  /** Evaluate only this many images of the split, picked by `seed` (default: all). */
  limit?: number;
  /** Output folder (default RUN/eval/SPLIT-CHECKPOINT-DECODING). */
  outDir?: string;
  /** Feature store folder (default: the run's store of the checkpoint's encoder). */
  featuresDir?: string;
  /** Images shown in the HTML report, with attention figures (default 12; 0 = none). */
  sample?: number;
  seed?: number;
  /** Run the attention check (needs a synthetic-shapes run). Default: on for shapes runs, off otherwise. */
  attentionCheck?: boolean;
  quiet?: boolean;
}

export interface EvaluateResult {
  outDir: string;
  files: { results: string; metrics: string; report: string };
  metrics: EvalMetrics;
  /** Per evaluated image, in evaluation order: the generated caption and its own CIDEr-D. */
  captions: { id: string; caption: string; cider: number }[];
  attention?: AttentionCheck;
}

export interface EvalMetrics {
  run: string;
  split: Split;
  checkpoint: CheckpointFacts;
  /** With several checkpoints: every member of the ensemble (the first is `checkpoint`). */
  ensemble?: CheckpointFacts[];
  encoder: string;
  decoding: DecodingSummary;
  images: number;
  /** Set when --limit evaluated a seeded subset of the split. */
  subset: { limit: number; seed: number } | null;
  /** Split images left out because the feature store has no features for them (unreadable files). */
  missingFeatures: number;
  /** Captions that reached maxLength without <end>. */
  unfinished: number;
  scores: Scores;
  unavailable: Record<'METEOR' | 'SPICE', string>;
  seconds: { decode: number; score: number };
}

export interface CheckpointFacts {
  file: string;
  epoch: number;
  best: { epoch: number; score: number; by: string } | null;
}

const checkpointFacts = (c: LoadedCheckpoint): CheckpointFacts => ({
  file: c.file,
  epoch: c.meta.progress.epoch,
  best: c.meta.progress.best,
});

/** The folder name part of a decoding, e.g. greedy, beam3-alpha0.7, beam4-groups2-div0.5, sample-t0.7-p0.9-seed1, -nounk. */
export function decodingTag(d: DecodingSummary): string {
  const parts: string[] = [d.kind === 'beam' ? `beam${d.beam}` : d.kind];
  if (d.alpha) parts.push(`alpha${d.alpha}`);
  if (d.groups) parts.push(`groups${d.groups}`, `div${d.diversity}`);
  if (d.kind === 'sample') {
    if (d.temperature !== 1) parts.push(`t${d.temperature}`);
    if (d.topK !== undefined) parts.push(`k${d.topK}`);
    if (d.topP !== undefined) parts.push(`p${d.topP}`);
    parts.push(`seed${d.seed}`);
  }
  if (d.consensus) {
    parts.push(`consensus${d.consensus}`, `n${d.consensusSamples}`, `w${d.consensusWeight}`);
    if (d.consensusSamples) parts.push(`seed${d.seed}`);
  }
  if (d.blockTrigrams) parts.push('notrigram');
  if (d.suppressUnk) parts.push('nounk');
  return parts.join('-');
}

/** A decoding in words, e.g. "beam search (width 3, length normalisation alpha 0.7)". */
export function describeDecoding(d: DecodingSummary): string {
  const details: string[] = [];
  if (d.kind === 'beam') {
    details.push(`width ${d.beam}`);
    if (d.alpha) details.push(`length normalisation alpha ${d.alpha}`);
    if (d.groups) details.push(`${d.groups} diverse groups, diversity ${d.diversity}`);
  }
  if (d.kind === 'sample') {
    details.push(`temperature ${d.temperature}`, `seed ${d.seed}`);
    if (d.topK !== undefined) details.push(`top-k ${d.topK}`);
    if (d.topP !== undefined) details.push(`top-p ${d.topP}`);
  }
  if (d.consensus)
    details.push(
      `reranked by consensus with the ${d.consensus} nearest training images (beside the beam, ${d.consensusSamples} ` +
        `samples per image, seed ${d.seed ?? 0}; fluency weight ${d.consensusWeight})`,
    );
  if (d.blockTrigrams) details.push('no repeated trigram');
  if (d.suppressUnk) details.push('no <unk>');
  const name = d.kind === 'beam' ? 'beam search' : d.kind === 'sample' ? 'sampling' : 'greedy decoding';
  return details.length > 0 ? `${name} (${details.join(', ')})` : name;
}

const UNAVAILABLE = {
  METEOR: 'not computed: needs the METEOR 1.5 Java jar (pycocoevalcap runs it through Java)',
  SPICE: 'not computed: needs the SPICE 1.0 Java jar and Stanford CoreNLP',
};

/** 'best' | 'latest' | PATH -> the loaded checkpoint. */
export function resolveCheckpoint(runDir: string, which = 'best'): LoadedCheckpoint {
  const dir = runPaths(runDir).checkpoints;
  if (which === 'best' || which === 'latest') {
    if (!fs.existsSync(dir))
      throw new UserError(
        `${runDir} has no checkpoints folder: train first with \`sat train --run ${runDir}\`, or pass --checkpoint PATH.`,
      );
    return loadCheckpoint(dir, which);
  }
  if (!fs.existsSync(which))
    throw new UserError(`--checkpoint ${which}: no such file or folder. Use best, latest, or a .safetensors file.`);
  return loadCheckpoint(which);
}

/** The store the checkpoint was trained on (runFeatureDir), checked against the checkpoint's encoder and shape. */
function openStoreFor(run: LoadedRun, ckpt: LoadedCheckpoint, explicit?: string) {
  const dir = runFeatureDir(run.dir, { explicit, encoderId: ckpt.meta.encoder.id });
  const store = openFeatureStore(dir);
  if (
    store.encoderId !== ckpt.meta.encoder.id ||
    store.locations !== ckpt.meta.model.locations ||
    store.channels !== ckpt.meta.model.channels
  ) {
    store.close();
    throw new UserError(
      `${ckpt.file} was trained on "${ckpt.meta.encoder.id}" features [${ckpt.meta.model.locations} x ${ckpt.meta.model.channels}] ` +
        `but ${dir} holds "${store.encoderId}" [${store.locations} x ${store.channels}]. Extract matching features ` +
        `(\`sat features --run ${run.dir}\` with that encoder) or pass --features DIR.`,
    );
  }
  return store;
}

const safeName = (id: string) => id.replace(/[^A-Za-z0-9_.-]/g, '_');

export async function evaluate(opts: EvaluateOptions): Promise<EvaluateResult> {
  const run = loadRun(opts.runDir);
  const whichList: readonly string[] =
    typeof opts.checkpoint === 'string' ? [opts.checkpoint] : opts.checkpoint?.length ? opts.checkpoint : ['best'];
  const which = whichList[0];
  const ckpts = whichList.map((w) => resolveCheckpoint(run.dir, w));
  const ckpt = ckpts[0];
  const vocabs = ckpts.map(loadCheckpointVocab);
  const vocab = vocabs[0];
  checkEnsembleMembers(
    ckpts.map((c, i) => ({
      name: c.file,
      words: vocabs[i].words,
      encoderId: c.meta.encoder.id,
      locations: c.meta.model.locations,
      channels: c.meta.model.channels,
    })),
    (m) => new UserError(m),
  );
  const decoding = opts.decoding ?? {};
  const resolved = resolveCaptionOptions(decoding, defaultMaxLength(vocab), { fail: (m) => new UserError(m) });
  const maxLength = resolved.maxLength;
  const summary = decodingSummary(decoding, maxLength);
  const seed = opts.seed ?? 0;

  const store = openStoreFor(run, ckpt, opts.featuresDir);
  const members: ReturnType<typeof createModel>[] = [];
  try {
    for (const c of ckpts) {
      members.push(createModel(c.meta.model));
      restoreModel(members[members.length - 1], c, { optimizer: false });
    }
    const model = ensembleModel(members);
    const inSplit = run.images.filter((im) => im.split === opts.split && im.captions.length > 0);
    if (inSplit.length === 0) {
      const counts = Object.entries(run.info.counts)
        .map(([s, c]) => `${s} ${c.images}`)
        .join(', ');
      throw new UserError(`${run.dir} has no ${opts.split} images with captions (${counts}). Choose another --split.`);
    }
    const withFeatures = inSplit.filter((im) => store.has(im.id));
    if (withFeatures.length === 0)
      throw new UserError(
        `none of the ${inSplit.length} ${opts.split} images has stored features: run \`sat features --run ${run.dir}\` first.`,
      );
    const images = seededSubset(withFeatures, opts.limit ?? 0, seed);
    // Consensus reranking votes with the captions of the run's training images (never the evaluated split's).
    if (resolved.consensus > 0 && opts.split === 'train')
      throw new UserError(
        "--consensus votes with the training images' captions, so it cannot evaluate the train split: choose --split dev or test.",
      );
    const memory =
      resolved.consensus > 0
        ? new CaptionMemory(buildRunMemory(run.dir, store, { progress: opts.quiet ? false : 'caption memory' }))
        : undefined;

    const t0 = performance.now();
    const captions = decodeStoreImages(
      model,
      store,
      images.map((im) => im.id),
      decodeVocab(vocab),
      {
        ...decoding,
        maxLength,
        memory,
        progress: opts.quiet ? false : `eval ${opts.split}`,
      },
    );
    const t1 = performance.now();
    const hyps = captions.map((c) => tokenizeCaption(c.words.join(' ')));
    const refs = images.map((im) => im.captions.map(tokenizeCaption));
    const scores = scoreTokenized(hyps, refs);
    const imageCider = ciderDImages(hyps, refs);
    const t2 = performance.now();

    // 'best' falls back to latest when no epoch has been validated yet: name what was actually loaded.
    const tag =
      which === 'best' || which === 'latest'
        ? path.basename(ckpt.file, '.safetensors')
        : safeName(path.basename(which, '.safetensors'));
    const ensembleTag = ckpts.length > 1 ? `-ensemble${ckpts.length}` : '';
    const outDir = path.resolve(
      opts.outDir ?? path.join(run.dir, 'eval', `${opts.split}-${tag}${ensembleTag}-${decodingTag(summary)}`),
    );
    fs.mkdirSync(outDir, { recursive: true });

    // The attention check: on by default for shapes runs, whose manifest has the boxes.
    const isShapes = run.info.dataset.kind === 'shapes';
    if (opts.attentionCheck && !isShapes) {
      throw new UserError(
        `--attention-check needs a synthetic shapes run (sat prepare --dataset shapes); ${run.dir} is "${run.info.dataset.kind}".`,
      );
    }
    let attention: AttentionCheck | undefined;
    if (opts.attentionCheck ?? isShapes) {
      const manifest = loadShapesManifest(run.info.dataset.root);
      const objects = new Map(manifest.images.map((im) => [im.id, im.objects]));
      attention = checkAttention(
        images.map((im, i) => ({ id: im.id, words: captions[i].words, attention: captions[i].attention })),
        objects,
        manifest.size,
      );
    }

    // COCO ids are numbers; other datasets' ids stay strings (sat score compares ids as strings).
    const results = images.map((im, i) => ({
      image_id: /^\d+$/.test(im.id) ? Number(im.id) : im.id,
      caption: captions[i].words.join(' '),
    }));
    const metrics: EvalMetrics = {
      run: run.dir,
      split: opts.split,
      checkpoint: checkpointFacts(ckpt),
      ...(ckpts.length > 1 ? { ensemble: ckpts.map(checkpointFacts) } : {}),
      encoder: ckpt.meta.encoder.id,
      decoding: summary,
      images: images.length,
      subset: images.length < withFeatures.length ? { limit: images.length, seed } : null,
      missingFeatures: inSplit.length - withFeatures.length,
      unfinished: captions.filter((c) => !c.finished).length,
      scores,
      unavailable: UNAVAILABLE,
      seconds: { decode: (t1 - t0) / 1000, score: (t2 - t1) / 1000 },
    };
    const files = {
      results: path.join(outDir, 'results.json'),
      metrics: path.join(outDir, 'metrics.json'),
      report: path.join(outDir, 'index.html'),
    };
    fs.writeFileSync(files.results, JSON.stringify(results) + '\n');
    fs.writeFileSync(
      files.metrics,
      JSON.stringify({ ...metrics, ...(attention ? { attentionCheck: attention } : {}) }, null, 2) + '\n',
    );

    // The report's sample: seeded picks, each with its image and attention figure written beside the page.
    const picks = seededSubset(
      images.map((_, i) => i),
      Math.min(opts.sample ?? 12, images.length),
      seed + 1,
    );
    for (const sub of ['images', 'figures']) {
      fs.rmSync(path.join(outDir, sub), { recursive: true, force: true });
      if (picks.length > 0) fs.mkdirSync(path.join(outDir, sub));
    }
    const items: ReportItem[] = [];
    for (const i of picks) {
      const im = images[i],
        cap = captions[i];
      const item: ReportItem = {
        id: im.id,
        image: null,
        figure: null,
        caption: cap.words.join(' '),
        finished: cap.finished,
        references: im.captions,
        cider: imageCider[i],
      };
      try {
        const image = path.join('images', safeName(im.id) + path.extname(im.path).toLowerCase());
        fs.copyFileSync(im.path, path.join(outDir, image));
        item.image = image;
        const size = 224;
        const png = await renderAttentionFigure(
          { rgb: await loadRgb(im.path, size), size, words: cap.words, attention: cap.attention },
          { heading: item.caption },
        );
        item.figure = path.join('figures', `${safeName(im.id)}.png`);
        fs.writeFileSync(path.join(outDir, item.figure), png);
      } catch (e) {
        // A moved or unreadable image file costs its thumbnail and figure, not the evaluation.
        if (!opts.quiet) console.error(`sat eval: no figure for ${im.id}: ${(e as Error).message}`);
      }
      items.push(item);
    }
    const how = describeDecoding(summary) + (ckpts.length > 1 ? `, an ensemble of ${ckpts.length} checkpoints` : '');
    fs.writeFileSync(
      files.report,
      reportHtml(
        {
          title: `${path.basename(run.dir)}: ${opts.split} split, checkpoint ${tag} (epoch ${ckpt.meta.progress.epoch})`,
          details: [
            `${images.length} images${metrics.missingFeatures ? ` (${metrics.missingFeatures} without features left out)` : ''}, ${how}, ` +
              `at most ${maxLength} tokens; ${metrics.unfinished} captions cut at that length. Features ${ckpt.meta.encoder.id}.`,
            `Checkpoint ${ckpt.file}. Metrics as pycocoevalcap computes them (PTB-tokenised), over all ${images.length} images.`,
          ],
        },
        scores,
        items,
        attention,
      ),
    );
    const perImage = images.map((im, i) => ({ id: im.id, caption: results[i].caption, cider: imageCider[i] }));
    return { outDir, files, metrics, captions: perImage, attention };
  } finally {
    for (const m of members) m.dispose();
    store.close();
  }
}
