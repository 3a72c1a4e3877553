/**
 * `sat caption [--model NAME|URL|RUN|CHECKPOINT|BUNDLE] IMAGE_OR_URL...`: caption image files or http(s) URLs with
 * the shipped model (no --model), an installed model, a trained checkpoint (native addon) or an exported bundle
 * (onnxruntime-node), optionally with per-word
 * attention figures (--attention) or machine-readable output (--json). Built on loadCaptioner (src/models/load-captioner.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { decodingSummary, type CaptionOptions, type CaptionResult } from '../decode/captioner-api.js';
import { checkBackend, loadCaptioner, loadLocatedCaptioner } from '../models/load-captioner.js';
import { locateModel } from '../models/source.js';
import { DEFAULT_MAX_IMAGE_BYTES, isImageUrl } from '../features/image-url.js';
import { renderAttentionFigure } from '../figures/attention.js';
import { isSquareGrid } from '../figures/heat.js';
import { UserError } from '../util/errors.js';
import { CAPTION_FLAGS, captionOptionFlags, captionOptionsFromFlags, listFlag, type CaptionFlagNames } from './caption-options.js';
import { numberOption, type Command } from './command.js';
import { CHECKPOINT_ENCODER_OPTIONS, givenEncoderFlags } from './encoder-options.js';

/** The decoding flags; --json prints the beam's alternatives (plain output does not, so the search need not wait for them). */
const FLAGS: CaptionFlagNames = { ...CAPTION_FLAGS, alternatives: 'json' };

/** CaptionOptions straight from the flags, checked by the Captioner API's own rules with the flags named. */
export function captionOptionsFromArgs(values: Record<string, unknown>): CaptionOptions {
  return captionOptionsFromFlags(values, FLAGS);
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

function toJson(c: CaptionResult, image: string, grid: [number, number] | null) {
  return {
    image,
    caption: c.caption,
    words: c.words.map((w) => w.word),
    ids: c.ids,
    logProb: round(c.logProb),
    finished: c.finished,
    grid,
    attention: c.words.map((w) => Array.from(w.attention, round)),
    alternatives: c.alternatives.map((a) => ({ caption: a.caption, logProb: round(a.logProb), score: round(a.score), finished: a.finished })),
  };
}

const command: Command = {
  name: 'caption',
  summary: 'Caption image files or URLs with the shipped model, an installed one, a checkpoint or a bundle (greedy, beam, sampling), with attention maps',
  usage: 'sat caption [--model NAME_URL_RUN_CHECKPOINT_OR_BUNDLE] IMAGE_OR_URL... [--beam K [--groups G --diversity D]] [--sample --temperature T --top-k K --top-p P --seed N] [--block-trigrams] [--json] [--attention OUT]',
  allowPositionals: true,
  options: {
    model: {
      type: 'string', multiple: true,
      description: 'an installed model\'s name (`sat models`), a bundle folder from sat export, a run folder, its checkpoints/ folder, a .safetensors checkpoint ' +
        '(best.* preferred over latest.*), or the https URL of a bundle\'s manifest.json (installed once; #sha256=HEX pins it). Default: the shipped model. ' +
        'Repeat it (or separate with commas) for an ensemble of checkpoints',
    },
    backend: { type: 'string', description: 'native (the C++ addon; a checkpoint) or onnx (onnxruntime-node; a bundle, or a checkpoint exported in memory). Default: onnx for a bundle, else native' },
    'max-image-mb': { type: 'string', description: `size limit of images downloaded from http(s) URLs, in MiB (default ${DEFAULT_MAX_IMAGE_BYTES / 1024 / 1024})` },
    ...captionOptionFlags(FLAGS),
    json: { type: 'boolean', description: 'print JSON: per image the words and, per word, the attention weights over the encoder locations' },
    attention: { type: 'string', description: 'write attention figures: OUT.png for one image, or a folder (one IMAGE.attention.png each)' },
    ...CHECKPOINT_ENCODER_OPTIONS,
  },
  async run({ values, positionals }) {
    const models = listFlag(values, 'model');
    if (positionals.length === 0) throw new UserError('no images given: sat caption [--model MODEL] IMAGE... (JPEG or PNG files, or http(s) URLs).');
    for (const f of positionals) {
      if (isImageUrl(f)) continue;
      if (!fs.existsSync(f)) throw new UserError(`image ${f} does not exist. Check the path.`);
      if (fs.statSync(f).isDirectory()) throw new UserError(`${f} is a folder; pass image files (e.g. ${path.join(f, '*.jpg')}).`);
    }
    const options = captionOptionsFromArgs(values);
    const figures = typeof values.attention === 'string' ? figurePaths(values.attention, positionals) : [];
    const maxImageMb = numberOption(values, 'max-image-mb', { min: 0.001 });
    const backend = values.backend === undefined ? undefined : checkBackend(values.backend, '--backend');

    const loadOptions = {
      backend, encoder: givenEncoderFlags(values), maxImageBytes: maxImageMb === undefined ? undefined : Math.round(maxImageMb * 1024 * 1024),
    };
    // One model (or none: the shipped one) is located first, so the output can say where it came from.
    const model = models && models.length > 1
      ? { origin: 'path' as const, path: models.join(',') }
      : await locateModel(models?.[0], { silent: false });
    const captioner = 'kind' in model ? await loadLocatedCaptioner(model, loadOptions) : await loadCaptioner(models!, loadOptions);
    try {
      const { encoderId: id, locations, inputSize } = captioner.info;
      const grid = isSquareGrid(captioner.info.grid) ? captioner.info.grid : null; // null: not a square feature map
      if (figures.length > 0 && grid === null) {
        throw new UserError(`--attention: encoder "${id}" has ${locations} locations, not a square grid, so there is no map to draw. Omit --attention.`);
      }
      // Each image once (a URL is downloaded once), then one encoder batch and one decoder batch.
      const rgb: Uint8Array[] = [];
      for (const image of positionals) rgb.push(await captioner.preprocess(image));
      const pixels = rgb.map((data) => ({ data, width: inputSize, height: inputSize }));
      const captions = await captioner.captionBatch(pixels, options);
      const { modelId, modelName } = captioner.info;
      if (values.json) {
        console.log(JSON.stringify({
          model: { id: modelId, ...(modelName !== undefined ? { name: modelName } : {}), origin: model.origin, path: model.path },
          checkpoint: captioner.info.source,
          encoder: id,
          locations,
          decoding: decodingSummary(options, captioner.info.maxLength),
          captions: captions.map((c, i) => toJson(c, positionals[i], grid)),
        }));
      } else {
        console.error(`sat caption: model ${modelName !== undefined ? `${modelName} (${model.origin}), id ` : ''}${modelId}`);
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
