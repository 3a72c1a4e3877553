import fs from 'node:fs';
import path from 'node:path';
import { SPLITS, type Split } from '../dataset/types.js';
import { DEFAULT_ENCODER, resolveEncoder, type EncoderOptions } from '../encoders/registry.js';
import { encoderOptionsFor } from '../checkpoint/source.js';
import { loadInitSource } from '../train/init-source.js';
import { ENCODER_CLI_OPTIONS, encoderOptionsFromArgs } from './encoder-options.js';
import { DEFAULT_BATCH, extractFeatures, selectSlice, type ImageRef } from '../features/extract.js';
import { mirroredId } from '../features/types.js';
import { partName, partsDir, type SkippedImage } from '../features/format.js';
import { DEFAULT_MAX_PIXELS } from '../features/image.js';
import { mergeParts } from '../features/merge.js';
import { recordRunFeatures } from '../features/run-feature-store.js';
import { openFeatureStore } from '../features/store.js';
import { loadRun } from '../dataset/prepare.js';
import { runPaths, type PreparedImage } from '../dataset/run.js';
import { UserError } from '../util/errors.js';
import { ProgressBar } from '../util/progress.js';
import { numberOption, requireString, type Command } from './command.js';

const command: Command = {
  name: 'features',
  summary: "Extract CNN features of a prepared run's images into its fp16 feature store (resumable)",
  usage:
    'sat features --run RUN [--encoder NAME|model.onnx|BUNDLE_DIR | --encoder-from MODEL] [--layer mixedN] [--split train,dev,test] [--shard i/n | --merge]',
  options: {
    run: { type: 'string', description: 'run directory written by `sat prepare`' },
    ...ENCODER_CLI_OPTIONS,
    'encoder-from': {
      type: 'string',
      description:
        'the encoder of a trained model: a bundle folder (its encoder.onnx) or a checkpoint/run (the encoder it recorded); for `sat train --init MODEL`',
    },
    split: { type: 'string', description: 'comma-separated splits to extract', default: SPLITS.join(',') },
    batch: { type: 'string', description: 'images per onnxruntime run', default: String(DEFAULT_BATCH) },
    threads: { type: 'string', description: 'onnxruntime intra-op threads', default: '2' },
    spin: {
      type: 'boolean',
      description: 'let onnxruntime threads spin-wait between ops (only helps on an idle machine)',
    },
    shard: {
      type: 'string',
      description: 'extract only slice i of n (0-based, e.g. $JOB_COMPLETION_INDEX/8) into features/<encoder>/parts/',
    },
    merge: { type: 'boolean', description: "join the finished --shard parts into the run's feature store" },
    'max-pixels': {
      type: 'string',
      description: 'refuse images with more pixels than this (decompression bombs)',
      default: String(DEFAULT_MAX_PIXELS),
    },
    verify: { type: 'boolean', description: 'afterwards, re-read every stored record and check its CRC-32' },
    mirror: {
      type: 'boolean',
      description:
        'also store the features of every train image mirrored left to right, for `sat train --mirror-probability`',
    },
  },
  async run({ values }) {
    const runDir = requireString(values, 'run', 'the run directory written by `sat prepare`, e.g. --run runs/f8k.');
    const run = loadRun(runDir);
    const splits = parseSplits(String(values.split));
    const shard = values.shard === undefined ? null : parseShard(String(values.shard));
    if (shard && values.merge)
      throw new UserError(
        '--shard and --merge do not go together: extract every slice with --shard i/n, then run --merge once.',
      );
    const encoderOptions = await chosenEncoderOptions(values);
    const model = await resolveEncoder(encoderOptions);
    const storeDir = runPaths(run.dir).features(model.spec.id);

    if (values.merge) {
      const res = mergeParts(storeDir);
      const info = recordRunFeatures(run.dir, storeDir, encoderOptions);
      console.log(
        `merged ${res.parts} parts into ${storeDir}: ${res.images} images, ${res.skipped} skipped (see skipped.json)`,
      );
      console.log(
        `run.json now points at it: ${info.encoderId}, ${info.locations} locations x ${info.channels} channels`,
      );
      if (values.verify) verify(storeDir);
      return;
    }

    let images: ImageRef[] = run.images
      .filter((im) => splits.includes(im.split))
      .map((im) => ({ id: im.id, path: im.path }));
    if (images.length === 0) throw new UserError(`${run.dir} has no images in split(s) ${splits.join(', ')}.`);
    if (values.mirror) images = [...images, ...mirroredTrainImages(run.images, splits)];
    let dir = storeDir;
    if (shard) {
      images = selectSlice(images, shard.index, shard.count);
      dir = path.join(partsDir(storeDir), partName(shard.index, shard.count));
    } else if (fs.existsSync(partsDir(storeDir)) && fs.readdirSync(partsDir(storeDir)).length > 0) {
      throw new UserError(
        `${partsDir(storeDir)} holds --shard parts that are not merged yet. Run \`sat features --run ${runDir} --merge\` ` +
          '(after every slice finished) before extracting into the main store, or delete the parts folder.',
      );
    }

    // Ctrl-C quits at once: every committed record survives a kill (the store is written for kill -9), and a
    // rerun skips the images already stored. Extraction awaits the encoder per batch, so this runs promptly.
    const onSigint = () => {
      console.error(
        `\nCtrl-C: stopped. The images extracted so far are kept in ${dir}; run the same command again to ` +
          'continue from there (the feature store is resumable).',
      );
      process.exit(130);
    };
    process.once('SIGINT', onSigint);
    const res = await extractFeatures({
      images,
      model,
      dir,
      batchSize: numberOption(values, 'batch', { integer: true, min: 1, max: 256 }),
      threads: numberOption(values, 'threads', { integer: true, min: 1, max: 256 }),
      maxPixels: numberOption(values, 'max-pixels', { integer: true, min: 1 }),
      slice: shard,
      spin: Boolean(values.spin),
      progress: `features ${model.spec.id}${shard ? ` ${shard.index}/${shard.count}` : ''}`,
    }).finally(() => process.off('SIGINT', onSigint));
    const rate = res.stored > 0 ? ` at ${(res.stored / res.seconds).toFixed(1)} img/s` : '';
    console.log(
      `${dir}: ${res.stored} images extracted${rate}, ${res.alreadyStored} already there (resumed), ` +
        `${res.skipped.length} skipped; ${model.spec.locations} locations x ${model.spec.channels} channels, fp16`,
    );
    if (res.skipped.length > 0) console.log(summarizeSkipped(res.skipped, path.join(dir, 'skipped.json')));
    if (shard) {
      console.log(
        `slice ${shard.index}/${shard.count} done; once every slice is, run \`sat features --run ${runDir} --merge\` with the same encoder flags.`,
      );
    } else {
      const info = recordRunFeatures(run.dir, dir, encoderOptions);
      console.log(
        `run.json now points at it: ${info.encoderId}, ${info.images} images; encoder options recorded for sat train, caption, serve and export`,
      );
    }
    if (values.verify) verify(dir);
  },
};

/**
 * The encoder options of the command line, or with --encoder-from MODEL those that rebuild MODEL's encoder: a
 * bundle folder's own encoder.onnx, or the encoder a checkpoint recorded (the encoder flags given fill in what it
 * did not record, such as a weights folder).
 */
async function chosenEncoderOptions(values: Record<string, unknown>): Promise<EncoderOptions> {
  const flags = encoderOptionsFromArgs(values);
  const from = values['encoder-from'];
  if (typeof from !== 'string') return flags;
  if (flags.encoder !== DEFAULT_ENCODER) {
    throw new UserError(
      `--encoder ${flags.encoder} and --encoder-from ${from} both choose the encoder: give one of them.`,
    );
  }
  const source = await loadInitSource(from);
  if (source.kind === 'bundle') return { ...flags, encoder: source.where };
  const given = { ...flags, encoder: undefined };
  return encoderOptionsFor({ encoder: source.encoder }, given);
}

function parseSplits(value: string): Split[] {
  const parts = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const p of parts)
    if (!SPLITS.includes(p as Split))
      throw new UserError(`--split: unknown split "${p}"; use a comma-separated list of ${SPLITS.join(', ')}.`);
  if (parts.length === 0) throw new UserError(`--split is empty; use a comma-separated list of ${SPLITS.join(', ')}.`);
  return parts as Split[];
}

function parseShard(value: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(value);
  const index = m ? Number(m[1]) : NaN,
    count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index >= count || count > 99999) {
    throw new UserError(
      `--shard must be i/n with 0 <= i < n (0-based, like a Kubernetes Indexed Job's JOB_COMPLETION_INDEX), got "${value}".`,
    );
  }
  return { index, count };
}

function summarizeSkipped(skipped: SkippedImage[], file: string): string {
  const byKind = new Map<string, number>();
  for (const s of skipped) byKind.set(s.kind, (byKind.get(s.kind) ?? 0) + 1);
  const kinds = [...byKind].map(([k, n]) => `${n} ${k}`).join(', ');
  return `skipped images (${kinds}) are listed in ${file}; fix or remove them and rerun to retry just those.`;
}

function verify(dir: string): void {
  const store = openFeatureStore(dir);
  const bar = new ProgressBar({ total: store.size, label: 'verify', unit: 'img' });
  let last = 0;
  const bad = store.verify((done) => {
    if (done - last >= 64 || done === store.size) {
      bar.tick(done - last);
      last = done;
    }
  });
  bar.finish();
  store.close();
  if (bad.length > 0) {
    throw new UserError(
      `${bad.length} record(s) in ${dir} fail their checksum (first: ${bad.slice(0, 5).join(', ')}). ` +
        'The disk or a copy damaged them; delete the store and extract again.',
    );
  }
  console.log(`verified ${store.size} records: all checksums match`);
}

export default command;

/** The mirrored views `--mirror` adds: one per train image, after the images themselves. */
function mirroredTrainImages(images: readonly PreparedImage[], splits: readonly string[]): ImageRef[] {
  if (!splits.includes('train'))
    throw new UserError(
      '--mirror stores mirrored features of train images (for training), and --split leaves out train: add it.',
    );
  const clash = images.find((im) => im.id.endsWith(mirroredId('')));
  if (clash)
    throw new UserError(
      `--mirror: the run has an image whose id "${clash.id}" already ends in "#mirrored", the suffix of mirrored features. ` +
        'Rename that file and prepare the run again.',
    );
  return images
    .filter((im) => im.split === 'train')
    .map((im) => ({ id: mirroredId(im.id), path: im.path, mirror: true }));
}
