/**
 * manifest.json of an exported bundle (`sat export`): what the files are, how to feed them, and a SHA-256 of
 * each. Pure (no Node built-ins): the browser entry reads bundles with it too.
 *
 *   BUNDLE/
 *     manifest.json        this file
 *     encoder.onnx         image [n, size, size, 3] (or NCHW) -> features: exactly the graph `sat features` ran
 *     decoder-init.onnx    features [n, L, C] -> encoded, projected, hidden (src/export/graphs.ts)
 *     decoder-step.onnx    token, hidden, encoded, projected -> logits, attention, hidden_out
 */
import type { InputScaling } from '../encoders/types.js';
import type { ModelConfig } from '../model/types.js';
import { sha256HexSync } from '../util/sha256.js';
import { PACKAGE_NAME, PACKAGE_VERSION } from '../util/version.js';
import { DECODER_INIT_IO, DECODER_STEP_IO } from '../model/onnx-io.js';
import { BUNDLE_DTYPES, type BundleDtype } from './weights.js';

export const BUNDLE_FORMAT = 'show-attend-tell/bundle';
/** The newest bundle format this package reads and writes. */
export const BUNDLE_FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';
export const BUNDLE_FILES = { encoder: 'encoder.onnx', decoderInit: 'decoder-init.onnx', decoderStep: 'decoder-step.onnx' } as const;

export interface BundleManifest {
  format: typeof BUNDLE_FORMAT;
  formatVersion: number;
  /** The package that wrote the bundle; a reader of an older format version names it in its refusal. */
  writtenBy: { package: string; version: string };
  createdAt: string;
  /** Stable id of the model: the source checkpoint's name and the first 12 hex digits of its SHA-256. */
  modelId: string;
  dtype: BundleDtype;
  source: {
    checkpoint: string;          // file name of the .safetensors the bundle was exported from
    sha256: string;              // of that file
    epoch: number;               // completed training epochs
    best: { epoch: number; score: number; by: string } | null;
    run: string | null;
  };
  model: ModelConfig;
  encoder: {
    id: string;
    file: string;
    inputName: string;
    outputName: string;
    inputSize: number;           // square side in pixels
    scaling: InputScaling;       // uint8 RGB -> float (see src/features/pixels.ts)
    inputLayout: 'nhwc' | 'nchw';
    outputLayout: 'nhwc' | 'nchw';
    locations: number;
    channels: number;
    /** [h, w] of the attention grid: location l is row floor(l / w), column l % w. */
    grid: [number, number];
  };
  decoder: {
    init: { file: string; inputs: Record<string, string>; outputs: Record<string, string> };
    step: { file: string; inputs: Record<string, string>; outputs: Record<string, string> };
  };
  vocab: { words: string[]; pad: number; start: number; end: number; unk: number; maxLength: number };
  /** Every other file of the bundle: SHA-256 (hex) and size. */
  files: Record<string, { sha256: string; bytes: number }>;
  /** What the model is, for people and `sat models` (optional; `sat export --card FILE`). */
  card?: ModelCard;
}

/** A model card's essentials in the manifest; docs/models.md has the full card of the shipped model. */
export interface ModelCard {
  /** The name it installs under from a URL, e.g. "flickr8k-mobilenet-v2". */
  name?: string;
  description?: string;
  /** The training data and its terms. */
  data?: string;
  license?: string;
  /** What `scores` were measured on, e.g. "Flickr8k dev, beam 3". */
  evaluatedOn?: string;
  /** Metric -> value, e.g. { "BLEU-4": 0.21, "CIDEr-D": 0.52 }. */
  scores?: Record<string, number>;
}

export const decoderIo = () => ({
  init: { file: BUNDLE_FILES.decoderInit, inputs: { ...DECODER_INIT_IO.inputs }, outputs: { ...DECODER_INIT_IO.outputs } },
  step: { file: BUNDLE_FILES.decoderStep, inputs: { ...DECODER_STEP_IO.inputs }, outputs: { ...DECODER_STEP_IO.outputs } },
});

/** A bundle that cannot be used; the message names the file and the fix. */
export class BundleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BundleError';
  }
}

/** The fields a manifest must have, and the type of each (checked before anything reads them). */
const REQUIRED: Record<string, 'string' | 'number' | 'object' | 'string[]' | 'number[]'> = {
  modelId: 'string', dtype: 'string', model: 'object', encoder: 'object', decoder: 'object', vocab: 'object', files: 'object',
  'model.locations': 'number', 'model.channels': 'number', 'model.embedDim': 'number', 'model.units': 'number',
  'model.attentionUnits': 'number', 'model.vocabSize': 'number',
  'encoder.id': 'string', 'encoder.file': 'string', 'encoder.inputName': 'string', 'encoder.outputName': 'string',
  'encoder.inputSize': 'number', 'encoder.inputLayout': 'string', 'encoder.outputLayout': 'string',
  'encoder.locations': 'number', 'encoder.channels': 'number', 'encoder.grid': 'number[]',
  'decoder.init': 'object', 'decoder.init.file': 'string', 'decoder.step': 'object', 'decoder.step.file': 'string',
  'vocab.words': 'string[]', 'vocab.pad': 'number', 'vocab.start': 'number', 'vocab.end': 'number', 'vocab.unk': 'number',
  'vocab.maxLength': 'number',
};

function typeOf(value: unknown): string {
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === 'string')) return 'string[]';
    return value.every((v) => typeof v === 'number') ? 'number[]' : 'array';
  }
  return value === null ? 'null' : typeof value;
}

/** The required fields that are absent or of another type, e.g. ["vocab.words (missing)"]. */
function badFields(m: object): string[] {
  const bad: string[] = [];
  for (const [key, want] of Object.entries(REQUIRED)) {
    const parent = key.split('.').slice(0, -1).join('.');
    if (parent && bad.some((b) => b.startsWith(`${parent} `))) continue; // the parent is already reported
    const value = key.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), m);
    const got = typeOf(value);
    if (got !== want) bad.push(`${key} (${value === undefined ? 'missing' : `${got}, expected ${want}`})`);
  }
  return bad;
}

/**
 * Checks a parsed manifest.json (from `where`, a folder or URL used in messages) and returns it typed.
 * Refuses another format, a newer format version (naming the package version that wrote it), missing or
 * mistyped fields and inconsistent sizes, each with the file named and the fix.
 */
export function parseManifest(json: unknown, where: string): BundleManifest {
  const m = json as Partial<BundleManifest> | null;
  const file = `${where}/${MANIFEST_FILE}`;
  const fix = 'Export it again with `sat export --model RUN --out DIR`.';
  if (!m || typeof m !== 'object' || m.format !== BUNDLE_FORMAT) {
    throw new BundleError(`${file} is not a show-attend-tell bundle manifest (format ${JSON.stringify(m?.format)}, expected "${BUNDLE_FORMAT}"). ` +
      'Point at a folder written by `sat export`.');
  }
  if (typeof m.formatVersion !== 'number' || m.formatVersion > BUNDLE_FORMAT_VERSION) {
    const by = m.writtenBy ? `${m.writtenBy.package} ${m.writtenBy.version}` : 'a newer package';
    throw new BundleError(`${file} is bundle format version ${m.formatVersion}, written by ${by}; ` +
      `${PACKAGE_NAME} ${PACKAGE_VERSION} reads format version ${BUNDLE_FORMAT_VERSION} and older. Upgrade to ${by} or newer, ` +
      `or export the checkpoint again with this version.`);
  }
  const bad = badFields(m);
  if (bad.length > 0) throw new BundleError(`${file} is damaged: ${bad.join(', ')}. ${fix}`);
  if (!BUNDLE_DTYPES.includes(m.dtype!)) throw new BundleError(`${file}: unknown dtype ${JSON.stringify(m.dtype)}. ${fix}`);
  const model = m.model!, enc = m.encoder!, vocab = m.vocab!;
  if (vocab.words.length !== model.vocabSize) {
    throw new BundleError(`${file}: the vocabulary has ${vocab.words.length} words but the model ${model.vocabSize}. ${fix}`);
  }
  if (enc.locations !== model.locations || enc.channels !== model.channels) {
    throw new BundleError(`${file}: the encoder gives ${enc.locations} x ${enc.channels} features but the decoder takes ` +
      `${model.locations} x ${model.channels}. ${fix}`);
  }
  for (const listed of [enc.file, m.decoder!.init.file, m.decoder!.step.file]) {
    const entry = m.files![listed];
    if (!entry || typeof entry.sha256 !== 'string' || typeof entry.bytes !== 'number') throw new BundleError(`${file} lists no SHA-256 and size for ${listed}. ${fix}`);
  }
  return m as BundleManifest;
}

/** SHA-256 (hex) with the Web Crypto API (browsers and Node >= 20), or in TypeScript where a page has none (plain http). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  if (!globalThis.crypto?.subtle) return sha256HexSync(bytes);
  const digest = await globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Refuses a bundle file whose size or SHA-256 differs from the manifest's. */
export async function verifyBundleFile(manifest: BundleManifest, file: string, bytes: Uint8Array, where: string): Promise<void> {
  const want = manifest.files[file];
  if (!want) throw new BundleError(`${where}/${MANIFEST_FILE} does not list ${file}.`);
  const got = bytes.length === want.bytes ? await sha256Hex(bytes) : null;
  if (got !== want.sha256) {
    throw new BundleError(`${where}/${file} does not match its manifest (${got === null ? `${bytes.length} bytes instead of ${want.bytes}` : `SHA-256 ${got} instead of ${want.sha256}`}): ` +
      'the file is damaged, truncated, or from another export. Copy the whole bundle folder again, or export it again with `sat export`.');
  }
}
