/**
 * `sat caption [--model NAME|URL|RUN|CHECKPOINT|BUNDLE] IMAGE_OR_URL...`: caption image files or http(s) URLs with
 * the shipped model (no --model), an installed model, a trained checkpoint (native addon) or an exported bundle
 * (onnxruntime-node), optionally with per-word
 * attention figures (--attention) or machine-readable output (--json). Built on loadCaptioner (src/models/load-captioner.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_STREAM_BATCH, MAX_STREAM_BATCH } from '../decode/caption-stream.js';
import { decodingSummary, type CaptionOptions, type CaptionResult, type Captioner } from '../decode/captioner-api.js';
import {
  checkBackend,
  DEFAULT_CAPTIONER_BACKEND,
  loadCaptioner,
  loadLocatedCaptioner,
  type NodeImageInput,
} from '../models/load-captioner.js';
import { locateModel } from '../models/source.js';
import { DEFAULT_MAX_IMAGE_BYTES, isImageUrl } from '../features/image-url.js';
import { renderAttentionFigure } from '../figures/attention.js';
import { isSquareGrid } from '../figures/heat.js';
import { UserError } from '../util/errors.js';
import { ProgressBar } from '../util/progress.js';
import {
  CAPTION_FLAGS,
  captionOptionFlags,
  captionOptionsFromFlags,
  listFlag,
  type CaptionFlagNames,
} from './caption-options.js';
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
    if (files.length > 1)
      throw new UserError(
        `--attention ${out}: ${files.length} images need a folder, not one .png file (e.g. --attention attention/).`,
      );
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
    alternatives: c.alternatives.map((a) => ({
      caption: a.caption,
      logProb: round(a.logProb),
      score: round(a.score),
      finished: a.finished,
    })),
  };
}

/** The images listed in `file` (- for stdin): one path or URL per line; blank lines and lines starting with # are skipped. */
export function readImageList(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    throw new UserError(
      `--images-from ${file}: ${(e as Error).message}. Pass a text file with one image path or URL per line.`,
    );
  }
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

interface StreamOutput {
  batchSize: number;
  /** Attention figure paths, one per image (none: no figures). */
  figures: string[];
  /** With --json: the fields of the document before its captions (model, decoding ...); null: plain lines. */
  json: Record<string, unknown> | null;
  grid: [number, number] | null;
  quiet: boolean;
}

/**
 * Captions `images` batch by batch (Captioner.captionStream) and writes each caption, figure and JSON entry as
 * its batch is done, so memory stays bounded for any number of images; a progress bar on stderr when there is
 * more than one batch. --json is one JSON object, its captions one per line.
 */
async function captionInBatches(
  captioner: Captioner<NodeImageInput>,
  images: string[],
  options: CaptionOptions,
  out: StreamOutput,
): Promise<void> {
  const { info } = captioner;
  if (out.json) console.log(JSON.stringify({ ...out.json, captions: [] }).slice(0, -2)); // without the closing "]}"

  const progress = new ProgressBar({
    total: images.length,
    label: 'caption',
    unit: 'img',
    silent: out.quiet || images.length <= out.batchSize,
  });
  const stream = captioner.captionStream(images, options, { batchSize: out.batchSize, pixels: out.figures.length > 0 });
  for await (const { index: i, result: c, rgb } of stream) {
    if (out.json) console.log((i > 0 ? ',' : '') + JSON.stringify(toJson(c, images[i], out.grid)));
    else console.log(images.length === 1 ? text(c) : `${images[i]}\t${text(c)}`);
    if (rgb && out.figures[i]) {
      const png = await renderAttentionFigure(
        { rgb, size: info.inputSize, words: c.words.map((w) => w.word), attention: c.words.map((w) => w.attention) },
        { heading: `${imageName(images[i])}: ${text(c)}` },
      );
      fs.mkdirSync(path.dirname(path.resolve(out.figures[i])), { recursive: true });
      fs.writeFileSync(out.figures[i], png);
      if (out.quiet || images.length <= out.batchSize) console.error(`sat caption: attention figure ${out.figures[i]}`);
    }
    progress.tick();
  }
  if (out.json) console.log(']}');
  if (images.length > out.batchSize) progress.finish();
}

const command: Command = {
  name: 'caption',
  summary:
    'Caption image files or URLs with the shipped model, an installed one, a checkpoint or a bundle (greedy, beam, sampling), with attention maps',
  usage:
    'sat caption [--model NAME_URL_RUN_CHECKPOINT_OR_BUNDLE] IMAGE_OR_URL... [--images-from LIST] [--beam K [--groups G --diversity D]] [--sample --temperature T --top-k K --top-p P --seed N] [--block-trigrams] [--json] [--attention OUT]',
  allowPositionals: true,
  options: {
    model: {
      type: 'string',
      multiple: true,
      description:
        "an installed model's name (`sat models`), a bundle folder from sat export, a run folder, its checkpoints/ folder, a .safetensors checkpoint " +
        "(best.* preferred over latest.*), or the https URL of a bundle's manifest.json (installed once; #sha256=HEX pins it). Default: the shipped model. " +
        'Repeat it (or separate with commas) for an ensemble of checkpoints',
    },
    backend: {
      type: 'string',
      description:
        'onnx (onnxruntime-node; a bundle, or a checkpoint exported in memory) or native (the C++ addon; a checkpoint)',
      default: DEFAULT_CAPTIONER_BACKEND,
    },
    'max-image-mb': {
      type: 'string',
      description: `size limit of images downloaded from http(s) URLs, in MiB (default ${DEFAULT_MAX_IMAGE_BYTES / 1024 / 1024})`,
    },
    ...captionOptionFlags(FLAGS),
    'images-from': {
      type: 'string',
      description:
        'also caption the images listed in this file, one path or URL per line (- reads stdin; for more files than a command line holds)',
    },
    'batch-size': {
      type: 'string',
      description: `images read, encoded and decoded together; memory holds one batch (default ${DEFAULT_STREAM_BATCH})`,
    },
    quiet: { type: 'boolean', description: 'no progress bar' },
    json: {
      type: 'boolean',
      description: 'print JSON: per image the words and, per word, the attention weights over the encoder locations',
    },
    attention: {
      type: 'string',
      description: 'write attention figures: OUT.png for one image, or a folder (one IMAGE.attention.png each)',
    },
    ...CHECKPOINT_ENCODER_OPTIONS,
  },
  async run({ values, positionals: named }) {
    const models = listFlag(values, 'model');
    const positionals = [
      ...named,
      ...(typeof values['images-from'] === 'string' ? readImageList(values['images-from']) : []),
    ];
    if (positionals.length === 0)
      throw new UserError(
        'no images given: sat caption [--model MODEL] IMAGE... (JPEG or PNG files, or http(s) URLs), or --images-from LIST.',
      );
    for (const f of positionals) {
      if (isImageUrl(f)) continue;
      if (!fs.existsSync(f)) throw new UserError(`image ${f} does not exist. Check the path.`);
      if (fs.statSync(f).isDirectory())
        throw new UserError(`${f} is a folder; pass image files (e.g. ${path.join(f, '*.jpg')}).`);
    }
    const options = captionOptionsFromArgs(values);
    const figures = typeof values.attention === 'string' ? figurePaths(values.attention, positionals) : [];
    const maxImageMb = numberOption(values, 'max-image-mb', { min: 0.001 });
    const backend = checkBackend(values.backend, '--backend');
    const batchSize =
      numberOption(values, 'batch-size', { integer: true, min: 1, max: MAX_STREAM_BATCH }) ?? DEFAULT_STREAM_BATCH;

    const loadOptions = {
      backend,
      encoder: givenEncoderFlags(values),
      maxImageBytes: maxImageMb === undefined ? undefined : Math.round(maxImageMb * 1024 * 1024),
      allowFiles: true,
      allowPrivateNetwork: true, // the user at the terminal names files and may name local servers
    };
    // One model (or none: the shipped one) is located first, so the output can say where it came from; several
    // paths are an ensemble.
    const located = models && models.length > 1 ? undefined : await locateModel(models?.[0], { silent: false });
    const captioner = located
      ? await loadLocatedCaptioner(located, loadOptions)
      : await loadCaptioner(models!, loadOptions);
    const origin = located?.origin ?? 'path';
    const modelPath = located?.path ?? models!.join(',');
    try {
      const { encoderId: id, locations } = captioner.info;
      const grid = isSquareGrid(captioner.info.grid) ? captioner.info.grid : null; // null: not a square feature map
      if (figures.length > 0 && grid === null) {
        throw new UserError(
          `--attention: encoder "${id}" has ${locations} locations, not a square grid, so there is no map to draw. Omit --attention.`,
        );
      }
      const { modelId, modelName } = captioner.info;
      const head = {
        model: {
          id: modelId,
          ...(modelName !== undefined ? { name: modelName } : {}),
          origin,
          path: modelPath,
        },
        checkpoint: captioner.info.source,
        encoder: id,
        locations,
        decoding: decodingSummary(options, captioner.info.maxLength),
      };
      if (!values.json)
        console.error(`sat caption: model ${modelName !== undefined ? `${modelName} (${origin}), id ` : ''}${modelId}`);
      await captionInBatches(captioner, positionals, options, {
        batchSize,
        figures,
        json: values.json === true ? head : null,
        grid,
        quiet: values.quiet === true,
      });
    } finally {
      await captioner.dispose();
    }
  },
};

export default command;
