/**
 * `sat caption --model RUN_OR_CHECKPOINT_DIR IMAGE...`: caption image files with a trained checkpoint,
 * optionally with per-word attention figures (--attention) or machine-readable output (--json).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Captioner, type CaptionedImage } from '../decode/captioner.js';
import type { DecodeStrategy } from '../decode/types.js';
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

/** Where each image's attention figure goes: OUT.png for one image, else OUT/ as a folder. */
export function figurePaths(out: string, files: string[]): string[] {
  if (out.toLowerCase().endsWith('.png')) {
    if (files.length > 1) throw new UserError(`--attention ${out}: ${files.length} images need a folder, not one .png file (e.g. --attention attention/).`);
    return [out];
  }
  const used = new Set<string>();
  return files.map((f) => {
    const base = path.basename(f, path.extname(f));
    let name = `${base}.attention.png`;
    for (let k = 2; used.has(name); k++) name = `${base}-${k}.attention.png`;
    used.add(name);
    return path.join(out, name);
  });
}

/** The caption as printed; "..." marks one that reached --max-length without <end>. */
const text = (c: CaptionedImage) => c.words.join(' ') + (c.finished ? '' : ' ...');

/** Rounded to 6 significant digits to keep --json output readable. */
const round = (x: number) => Number(x.toPrecision(6));

function toJson(c: CaptionedImage, image: string, grid: number | null) {
  return {
    image,
    caption: c.words.join(' '),
    words: c.words,
    ids: c.ids,
    logProb: round(c.logProb),
    finished: c.finished,
    grid: grid === null ? null : [grid, grid],
    attention: c.attention.map((row) => Array.from(row, round)),
  };
}

const command: Command = {
  name: 'caption',
  summary: 'Caption image files with a trained checkpoint (greedy, beam search or sampling), with attention maps',
  usage: 'sat caption --model RUN_OR_CHECKPOINT_DIR IMAGE... [--beam K] [--sample --temperature T --seed N] [--json] [--attention OUT]',
  allowPositionals: true,
  options: {
    model: { type: 'string', description: 'run folder, its checkpoints/ folder, or a .safetensors checkpoint (best.* preferred over latest.*)' },
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
    if (positionals.length === 0) throw new UserError('no images given: sat caption --model DIR IMAGE... (JPEG or PNG files).');
    for (const f of positionals) {
      if (!fs.existsSync(f)) throw new UserError(`image ${f} does not exist. Check the path.`);
      if (fs.statSync(f).isDirectory()) throw new UserError(`${f} is a folder; pass image files (e.g. ${path.join(f, '*.jpg')}).`);
    }
    const strategy = strategyFromArgs(values);
    const maxLength = numberOption(values, 'max-length', { integer: true, min: 1, max: 1000 });
    const figures = typeof values.attention === 'string' ? figurePaths(values.attention, positionals) : [];

    const captioner = await Captioner.load(model, { encoder: encoderOptionsFromArgs(values) });
    try {
      const { id, locations } = captioner.spec;
      const side = Math.round(Math.sqrt(locations));
      const grid = side * side === locations ? side : null; // null: not a square feature map
      if (figures.length > 0 && grid === null) {
        throw new UserError(`--attention: encoder "${id}" has ${locations} locations, not a square grid, so there is no map to draw. Omit --attention.`);
      }
      const captions = await captioner.caption(positionals, { strategy, maxLength, suppressUnk: Boolean(values['suppress-unk']) });
      if (values.json) {
        console.log(JSON.stringify({
          checkpoint: captioner.checkpointFile,
          encoder: captioner.spec.id,
          locations: captioner.spec.locations,
          decoding: { ...strategy, maxLength: maxLength ?? captioner.defaultMaxLength },
          captions: captions.map((c, i) => toJson(c, positionals[i], grid)),
        }));
      } else {
        captions.forEach((c, i) => console.log(positionals.length === 1 ? text(c) : `${positionals[i]}\t${text(c)}`));
      }
      for (let i = 0; i < figures.length; i++) {
        const c = captions[i];
        const png = await renderAttentionFigure({ rgb: c.rgb, size: captioner.spec.inputSize, words: c.words, attention: c.attention },
          { heading: `${path.basename(c.file)}: ${text(c)}` });
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
