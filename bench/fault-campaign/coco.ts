/**
 * COCO at size: a generated dataset in the official 2014 captions format (captions_train2014.json with 82,783
 * images, captions_val2014.json with 40,504: 123,287 in all at --scale 1, 5 captions each, 32x32 JPEGs made by
 * sharp), run through `sat prepare --dataset coco`, `sat features` (InceptionV3 mixed2 at 96 px) and one epoch
 * of `sat train` (a small model), each under /usr/bin/time -v for wall time and peak RSS. The promise: cost
 * grows linearly with size and memory stays bounded (training's peak RSS within 1.5x of the smallest size's).
 *
 * Captions are drawn from a Zipf-distributed synthetic vocabulary of 12,000 words, 8-16 words each, so the
 * vocabulary step and the caption lengths look like COCO's (top-k 5000 keeps a 5000-word vocabulary).
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../src/util/rng.js';
import { runSatOk, type CampaignContext, type Row } from './common.js';

const COCO_TRAIN = 82_783,
  COCO_VAL = 40_504;
const SIDE = 32;
const WORDS = 12_000;
/** The fixture's encoder (InceptionV3 mixed2 at 96 px), on both threads and in larger batches. */
const COCO_ENCODER_FLAGS = ['--layer', 'mixed2', '--encoder-size', '96', '--threads', '2', '--batch', '32'];

export interface Scale {
  label: string;
  fraction: number;
}

export function parseScales(text: string): Scale[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((label) => {
      const m = /^(\d+)(?:\/(\d+))?$/.exec(label);
      const fraction = m ? Number(m[1]) / Number(m[2] ?? 1) : NaN;
      if (!m || !(fraction > 0 && fraction <= 1))
        throw new Error(`--scale: "${label}" is not a fraction such as 1/8 or 1 (at most 1).`);
      return { label, fraction };
    });
}

/** A pronounceable synthetic word per rank: ranks near 0 are the frequent ones. */
function word(rank: number): string {
  const syl = ['ka', 'to', 'ri', 'me', 'sa', 'lo', 'pe', 'nu', 'di', 'ga', 'be', 'vo', 'ha', 'zi', 'mu', 're'];
  let w = '',
    r = rank + 1;
  while (r > 0) {
    w += syl[r % syl.length];
    r = Math.floor(r / syl.length);
  }
  return w;
}

/** Zipf(1) ranks by inverse transform over the precomputed cumulative weights. */
function zipfSampler(n: number): (rng: Rng) => number {
  const cum = new Float64Array(n);
  let s = 0;
  for (let i = 0; i < n; i++) cum[i] = s += 1 / (i + 1);
  return (rng) => {
    const x = rng.next() * s;
    let lo = 0,
      hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cum[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

async function writeImages(dir: string, names: string[], rng: Rng): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const pixels = (seed: number) => {
    const r = new Rng(seed),
      buf = Buffer.alloc(SIDE * SIDE * 3);
    const a = [r.int(256), r.int(256), r.int(256)],
      b = [r.int(256), r.int(256), r.int(256)],
      cut = 4 + r.int(SIDE - 8);
    for (let y = 0; y < SIDE; y++)
      for (let x = 0; x < SIDE; x++)
        for (let c = 0; c < 3; c++) {
          buf[(y * SIDE + x) * 3 + c] = Math.min(255, (x < cut ? a[c] : b[c]) + r.int(24));
        }
    return buf;
  };
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < names.length; i = next++) {
      await sharp(pixels(rng.int(2 ** 30)), { raw: { width: SIDE, height: SIDE, channels: 3 } })
        .jpeg({ quality: 85 })
        .toFile(path.join(dir, names[i]));
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

/** ROOT/annotations/captions_{train,val}2014.json and ROOT/{train,val}2014/*.jpg for this fraction of COCO. */
export async function generateCoco(root: string, fraction: number, seed: number): Promise<number> {
  const rng = new Rng(seed);
  const zipf = zipfSampler(WORDS);
  let id = 1,
    annId = 1;
  fs.mkdirSync(path.join(root, 'annotations'), { recursive: true });
  let total = 0;
  for (const [split, full] of [
    ['train2014', COCO_TRAIN],
    ['val2014', COCO_VAL],
  ] as const) {
    const count = Math.max(5, Math.round(full * fraction));
    const images = Array.from({ length: count }, () => {
      const imageId = id++;
      return {
        license: 1,
        file_name: `COCO_${split}_${String(imageId).padStart(12, '0')}.jpg`,
        coco_url: '',
        height: SIDE,
        width: SIDE,
        date_captured: '2013-11-14 11:18:45',
        flickr_url: '',
        id: imageId,
      };
    });
    const annotations = images.flatMap((im) =>
      Array.from({ length: 5 }, () => {
        const words = Array.from({ length: 8 + rng.int(9) }, () => word(zipf(rng)));
        return { image_id: im.id, id: annId++, caption: words.join(' ').replace(/^./, (c) => c.toUpperCase()) + '.' };
      }),
    );
    const json = {
      info: { description: 'synthetic COCO-format dataset (sat fault campaign)', year: 2014 },
      licenses: [{ id: 1, name: 'none', url: '' }],
      images,
      annotations,
    };
    fs.writeFileSync(path.join(root, 'annotations', `captions_${split}.json`), JSON.stringify(json));
    await writeImages(
      path.join(root, split),
      images.map((im) => im.file_name),
      rng,
    );
    total += count;
  }
  return total;
}

interface Measured {
  seconds: number;
  /** User + system CPU seconds: the cost, whatever else shares the machine (wall time does not say it then). */
  cpuSeconds: number;
  peakMB: number;
}

/** Wall seconds, CPU seconds and peak RSS from a /usr/bin/time -v report. */
function readTimeReport(file: string): Measured {
  const text = fs.readFileSync(file, 'utf8');
  const wall = /Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)/.exec(text);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(text);
  const cpu = (label: string) => Number(new RegExp(`${label} time \\(seconds\\): ([\\d.]+)`).exec(text)?.[1] ?? NaN);
  const seconds = wall ? Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]) : NaN;
  return { seconds, cpuSeconds: cpu('User') + cpu('System'), peakMB: rss ? Number(rss[1]) / 1024 : NaN };
}

const STEPS = ['prepare', 'features', 'train 1 epoch'] as const;

export async function cocoCampaign(ctx: CampaignContext, scales: Scale[]): Promise<Row[]> {
  const rows: Row[] = [];
  const trainPeaks: { label: string; mb: number; perImage: Record<string, number> }[] = [];
  for (const scale of [...scales].sort((a, b) => a.fraction - b.fraction)) {
    const base = path.join(ctx.work, `coco-${scale.label.replace('/', 'of')}`);
    const root = path.join(base, 'coco'),
      run = path.join(base, 'run');
    const g0 = performance.now();
    const images = await generateCoco(root, scale.fraction, ctx.seed);
    ctx.log(`coco ${scale.label}: generated ${images} images in ${((performance.now() - g0) / 1000).toFixed(0)} s`);
    const trainCaptions = Math.max(5, Math.round(COCO_TRAIN * scale.fraction)) * 5;
    const commands: Record<(typeof STEPS)[number], string[]> = {
      prepare: ['prepare', '--dataset', 'coco', '--root', root, '--out', run, '--seed', String(ctx.seed)],
      features: ['features', '--run', run, ...COCO_ENCODER_FLAGS],
      'train 1 epoch': [
        'train',
        '--run',
        run,
        '--epochs',
        '1',
        '--embed-dim',
        '64',
        '--units',
        '128',
        '--attention-units',
        '64',
        '--batch-size',
        '64',
        '--val-metric',
        'loss',
        '--quiet',
        '--seed',
        String(ctx.seed),
      ],
    };
    const perImage: Record<string, number> = {};
    for (const step of STEPS) {
      const report = path.join(base, `time-${step.split(' ')[0]}.txt`);
      await runSatOk(ctx, commands[step], { timeReport: report });
      const m = readTimeReport(report);
      const units = step === 'train 1 epoch' ? trainCaptions : images;
      perImage[step] = m.cpuSeconds / images;
      ctx.log(
        `coco ${scale.label} ${step}: ${m.seconds.toFixed(1)} s wall, ${m.cpuSeconds.toFixed(1)} s CPU, peak RSS ${m.peakMB.toFixed(0)} MB`,
      );
      rows.push({
        scenario: 'coco',
        subject: `${scale.label} ${step}`,
        trials: images,
        ok: '-',
        figures:
          `${m.seconds.toFixed(1)} s wall, ${m.cpuSeconds.toFixed(1)} s CPU, ` +
          `${(units / m.cpuSeconds).toFixed(0)} ${step.startsWith('train') ? 'captions' : 'img'}/CPU s, peak RSS ${m.peakMB.toFixed(0)} MB`,
        failures: '',
      });
      if (step === 'train 1 epoch') trainPeaks.push({ label: scale.label, mb: m.peakMB, perImage });
    }
    fs.rmSync(base, { recursive: true, force: true }); // the whole size's features take 5.7 GB
  }
  if (trainPeaks.length > 1) {
    const small = trainPeaks[0],
      big = trainPeaks.at(-1)!;
    const ratio = big.mb / small.mb;
    const cost = STEPS.map((s) => `${s.split(' ')[0]} ${(big.perImage[s] / small.perImage[s]).toFixed(2)}x`).join(', ');
    rows.push({
      scenario: 'coco',
      subject: `${big.label} vs ${small.label}`,
      trials: trainPeaks.length,
      ok: ratio <= 1.5 ? 'yes' : 'no',
      figures: `training peak RSS ${ratio.toFixed(2)}x (limit 1.5x); CPU seconds per image ${cost} (1.00x = linear)`,
      failures: ratio <= 1.5 ? '' : `training peak RSS grew ${ratio.toFixed(2)}x`,
    });
  }
  return rows;
}
