/**
 * `sat caption --model RUN_OR_CHECKPOINT_OR_BUNDLE IMAGE_OR_URL...`: caption image files or http(s) URLs with a
 * trained checkpoint (native addon) or an exported bundle (onnxruntime-node), optionally with per-word
 * attention figures (--attention) or machine-readable output (--json). Built on loadCaptioner (src/export/load.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { CaptionOptions, CaptionResult } from '../decode/captioner-api.js';
import type { DecodeStrategy } from '../decode/types.js';
import type { EncoderOptions } from '../encoders/registry.js';
import { loadCaptioner } from '../export/load.js';
import { DEFAULT_MAX_IMAGE_BYTES, isImageUrl } from '../features/image-url.js';
import { renderAttentionFigure } from '../figures/attention.js';
import { UserError } from '../util/errors.js';
import { ENCODER_CLI_OPTIONS, encoderOptionsFromArgs } from './encoder-options.js';
import { numberOption, requireString, type Command, type OptionSpec } from './command.js';

// The encoder comes from the checkpoint; these flags only fill in what it cannot know (no defaults here).
const encoderFlags: Record<string, OptionSpec> = Object.fromEntries(Object.entries(ENCODER_CLI_OPTIONS).map(([name, spec]) => {
  const { default: _ignored, ...rest } = spec;
  const fromCheckpoint: Record<string, string> = {
    encoder: 'encoder override; normally read from the checkpoint (needed for a user .onnx encoder)',
    layer: 'InceptionV3 layer override; normally read from the checkpoint',
  };
  return [name, fromCheckpoint[name] ? { ...rest, description: fromCheckpoint[name] } : rest];
}));

/** Decoding strategy from the flags; --beam and --sample exclude each other. */
export function strategyFromArgs(values: Record<string, unknown>): DecodeStrategy {
  const beam = numberOption(values, 'beam', { integer: true, min: 1, max: 100 });
  const alpha = numberOption(values, 'alpha', { min: 0, max: 5 });
  const temperature = numberOption(values, 'temperature', { min: 1e-6 });
  const seed = numberOption(values, 'seed', { integer: true, min: 0 });
  if (values.sample) {
    if (beam !== undefined) throw new UserError('--beam and --sample exclude each other: choose beam search or sampling.');
    return { kind: 'sample', temperature: temperature ?? 1, seed: seed ?? 0 };
  }
  if (temperature !== undefined || seed !== undefined) throw new UserError('--temperature and --seed apply to --sample only.');
  if (beam !== undefined && beam > 1) return { kind: 'beam', beam, alpha: alpha ?? 0 };
  if (alpha !== undefined) throw new UserError('--alpha (length normalisation) applies to --beam K with K > 1.');
  return { kind: 'greedy' };
}

/** The CaptionOptions of a decoding strategy. */
export function captionOptionsFor(strategy: DecodeStrategy, maxLength: number | undefined, suppressUnk: boolean): CaptionOptions {
  const base = { maxLength, suppressUnk };
  if (strategy.kind === 'beam') return { ...base, beam: strategy.beam, alpha: strategy.alpha };
  if (strategy.kind === 'sample') return { ...base, sample: true, temperature: strategy.temperature, seed: strategy.seed };
  return base;
}

/** A file's or URL's name without folders (and without a URL's query). */
const imageName = (image: string) => path.basename(isImageUrl(image) ? new URL(image).pathname : image);

/** Where each image's attention figure goes: OUT.png for one image, else OUT/ as a folder. */
export function figurePaths(out: string, files: string[]): string[] {
  if (out.toLowerCase().endsWith('.png')) {
    if (files.length > 1) throw new UserError(`--attention ${out}: ${files.length} images need a folder, not one .png file (e.g. --attention attention/).`);
    return [out];
  }
  const used = new Set<string>();
  return files.map((f) => {
    const file = imageName(f) || 'image';
    const base = path.basename(file, path.extname(file));
    let name = `${base}.attention.png`;
    for (let k = 2; used.has(name); k++) name = `${base}-${k}.attention.png`;
    used.add(name);
    return path.join(out, name);
  });
}

/** The caption as printed; "..." marks one that reached --max-length without <end>. */
const text = (c: CaptionResult) => c.caption + (c.finished ? '' : ' ...');

/** Rounded to 6 significant digits to keep --json output readable. */
const round = (x: number) => Number(x.toPrecision(6));

function toJson(c: CaptionResult, image: string, grid: number | null) {
  return {
    image,
    caption: c.caption,
    words: c.words.map((w) => w.word),
    ids: c.ids,
    logProb: round(c.logProb),
    finished: c.finished,
    grid: grid === null ? null : [grid, grid],
    attention: c.words.map((w) => Array.from(w.attention, round)),
    alternatives: c.alternatives.map((a) => ({ caption: a.caption, logProb: round(a.logProb), score: round(a.score), finished: a.finished })),
  };
}

const command: Command = {
  name: 'caption',
  summary: 'Caption image files or URLs with a trained checkpoint or bundle (greedy, beam search or sampling), with attention maps',
  usage: 'sat caption --model RUN_CHECKPOINT_OR_BUNDLE IMAGE_OR_URL... [--beam K] [--sample --temperature T --seed N] [--json] [--attention OUT]',
  allowPositionals: true,
  options: {
    model: { type: 'string', description: 'run folder, its checkpoints/ folder, a .safetensors checkpoint (best.* preferred over latest.*), or a bundle folder from sat export' },
    backend: { type: 'string', description: 'native (the C++ addon; a checkpoint) or onnx (onnxruntime-node; a bundle, or a checkpoint exported in memory). Default: onnx for a bundle, else native' },
    'max-image-mb': { type: 'string', description: `size limit of images downloaded from http(s) URLs, in MiB (default ${DEFAULT_MAX_IMAGE_BYTES / 1024 / 1024})` },
    beam: { type: 'string', description: 'beam search width (default 1: greedy, the most likely word at each step)' },
    alpha: { type: 'string', description: 'beam search length normalisation: rank by logProb / length^alpha (0 = off)' },
    sample: { type: 'boolean', description: 'sample each word from softmax(logits / temperature), as the TF tutorial does' },
    temperature: { type: 'string', description: 'sampling temperature (with --sample; default 1)' },
    seed: { type: 'string', description: 'sampling seed (with --sample; default 0)' },
    'max-length': { type: 'string', description: 'most words per caption, <end> included (default: the vocabulary\'s max length - 1)' },
    'suppress-unk': { type: 'boolean', description: 'never emit <unk>' },
    json: { type: 'boolean', description: 'print JSON: per image the words and, per word, the attention weights over the encoder locations' },
    attention: { type: 'string', description: 'write attention figures: OUT.png for one image, or a folder (one IMAGE.attention.png each)' },
    ...encoderFlags,
  },
  async run({ values, positionals }) {
    const model = requireString(values, 'model', 'the run (or checkpoints) folder of a trained model, e.g. --model runs/shapes');
    if (positionals.length === 0) throw new UserError('no images given: sat caption --model DIR IMAGE... (JPEG or PNG files, or http(s) URLs).');
    for (const f of positionals) {
      if (isImageUrl(f)) continue;
      if (!fs.existsSync(f)) throw new UserError(`image ${f} does not exist. Check the path.`);
      if (fs.statSync(f).isDirectory()) throw new UserError(`${f} is a folder; pass image files (e.g. ${path.join(f, '*.jpg')}).`);
    }
    const strategy = strategyFromArgs(values);
    const maxLength = numberOption(values, 'max-length', { integer: true, min: 1, max: 1000 });
    const figures = typeof values.attention === 'string' ? figurePaths(values.attention, positionals) : [];
    const maxImageMb = numberOption(values, 'max-image-mb', { min: 0.001 });
    const backend = values.backend as string | undefined;
    if (backend !== undefined && backend !== 'native' && backend !== 'onnx') throw new UserError(`--backend must be native or onnx, got "${backend}".`);
    const encoder = encoderOptionsFromArgs(values);
    const given = Object.values(encoder).some((v) => v !== undefined) ? encoder : undefined;

    const captioner = await loadCaptioner(model, {
      backend, encoder: given as EncoderOptions | undefined, maxImageBytes: maxImageMb === undefined ? undefined : Math.round(maxImageMb * 1024 * 1024),
    });
    try {
      const { encoderId: id, locations, inputSize } = captioner.info;
      const side = Math.round(Math.sqrt(locations));
      const grid = side * side === locations ? side : null; // null: not a square feature map
      if (figures.length > 0 && grid === null) {
        throw new UserError(`--attention: encoder "${id}" has ${locations} locations, not a square grid, so there is no map to draw. Omit --attention.`);
      }
      // Each image once (a URL is downloaded once), then one encoder batch and one decoder batch.
      const rgb: Uint8Array[] = [];
      for (const image of positionals) rgb.push(await captioner.preprocess(image));
      const pixels = rgb.map((data) => ({ data, width: inputSize, height: inputSize }));
      const captions = await captioner.captionBatch(pixels, captionOptionsFor(strategy, maxLength, Boolean(values['suppress-unk'])));
      if (values.json) {
        console.log(JSON.stringify({
          checkpoint: captioner.info.source,
          encoder: id,
          locations,
          decoding: { ...strategy, maxLength: maxLength ?? captioner.info.maxLength },
          captions: captions.map((c, i) => toJson(c, positionals[i], grid)),
        }));
      } else {
        captions.forEach((c, i) => console.log(positionals.length === 1 ? text(c) : `${positionals[i]}\t${text(c)}`));
      }
      for (let i = 0; i < figures.length; i++) {
        const c = captions[i];
        const png = await renderAttentionFigure({ rgb: rgb[i], size: inputSize, words: c.words.map((w) => w.word), attention: c.words.map((w) => w.attention) },
          { heading: `${imageName(positionals[i])}: ${text(c)}` });
        fs.mkdirSync(path.dirname(path.resolve(figures[i])), { recursive: true });
        fs.writeFileSync(figures[i], png);
        console.error(`sat caption: attention figure ${figures[i]}`);
      }
    } finally {
      await captioner.dispose();
    }
  },
};

export default command;
