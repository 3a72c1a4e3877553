/**
 * manifest.json of an exported bundle (`sat export`): what the files are, how to feed them, and a SHA-256 of
 * each. Pure (no Node built-ins): the browser entry reads bundles with it too.
 *
 *   BUNDLE/
 *     manifest.json        this file
 *     encoder.onnx         image [n, size, size, 3] (or NCHW) -> features: exactly the graph `sat features` ran
 *     decoder-init.onnx    features [n, L, C] -> encoded, projected, hidden (src/export/graphs.ts)
 *     decoder-step.onnx    token, hidden, encoded, projected -> logits, attention, hidden_out
 *     decoder-K-init.onnx, decoder-K-step.onnx   an ensemble's member K = 2, 3 ... (manifest `ensemble`)
 *     memory-vectors.bin, memory-captions.json  optional caption memory for consensus reranking (manifest `memory`)
 */
import type { InputScaling } from '../encoders/types.js';
import type { ModelConfig } from '../model/types.js';
import { sha256HexSync } from '../util/sha256.js';
import { PACKAGE_NAME, PACKAGE_VERSION } from '../util/version.js';
import { DECODER_INIT_IO, DECODER_STEP_IO } from '../model/onnx-io.js';
import { BUNDLE_DTYPES, type BundleDtype } from './weights.js';
import { memoryEntryProblems, type BundleMemory } from './memory-files.js';

export const BUNDLE_FORMAT = 'show-attend-tell/bundle';
/**
 * The newest bundle format this package reads and writes: 2 adds ensembles (`ensemble`). A one-model bundle is
 * still written as version 1, which older packages read; they refuse an ensemble instead of running one member.
 */
export const BUNDLE_FORMAT_VERSION = 2;
/** The format version of bundles without `ensemble`. */
export const SINGLE_MODEL_FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';
export const BUNDLE_FILES = {
  encoder: 'encoder.onnx',
  decoderInit: 'decoder-init.onnx',
  decoderStep: 'decoder-step.onnx',
} as const;

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
    checkpoint: string; // file name of the .safetensors the bundle was exported from
    sha256: string; // of that file
    epoch: number; // completed training epochs
    best: { epoch: number; score: number; by: string } | null;
    run: string | null; // name of the run folder it was trained in (not its path: bundles travel)
  };
  model: ModelConfig;
  encoder: {
    id: string;
    file: string;
    inputName: string;
    outputName: string;
    inputSize: number; // square side in pixels
    scaling: InputScaling; // uint8 RGB -> float (see src/features/pixels.ts)
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
  /**
   * An ensemble's other members (2..K; member 1 is `modelId`, `source`, `model` and `decoder` above): each decodes
   * the one encoder's features with the same vocabulary (src/decode/ensemble.ts). Absent for one model.
   */
  ensemble?: BundleEnsembleMember[];
  /**
   * The caption memory consensus reranking reads (memory-files.ts; `sat export --memory RUN`). Absent: the bundle
   * captions without consensus reranking.
   */
  memory?: BundleMemory;
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

export interface BundleEnsembleMember {
  modelId: string;
  source: BundleManifest['source'];
  model: ModelConfig;
  decoder: BundleManifest['decoder'];
}

/** The decoder graphs' files and io names of ensemble member `member` (1 = the first, or only, model). */
export const decoderIo = (member = 1) => ({
  init: {
    file: member === 1 ? BUNDLE_FILES.decoderInit : `decoder-${member}-init.onnx`,
    inputs: { ...DECODER_INIT_IO.inputs },
    outputs: { ...DECODER_INIT_IO.outputs },
  },
  step: {
    file: member === 1 ? BUNDLE_FILES.decoderStep : `decoder-${member}-step.onnx`,
    inputs: { ...DECODER_STEP_IO.inputs },
    outputs: { ...DECODER_STEP_IO.outputs },
  },
});

/** Problems of an ensemble manifest's members (none for one model): sizes that differ from member 1, files not listed. */
function ensembleProblems(m: BundleManifest): string[] {
  if (m.ensemble === undefined) return [];
  if (!Array.isArray(m.ensemble)) return ['ensemble is not a list'];
  const problems: string[] = [];
  m.ensemble.forEach((member, i) => {
    const at = `ensemble[${i}] (member ${i + 2})`;
    const model = member?.model;
    if (!model || typeof model !== 'object' || !member.decoder?.init?.file || !member.decoder?.step?.file) {
      problems.push(`${at} lacks its model or decoder files`);
      return;
    }
    for (const key of ['locations', 'channels', 'vocabSize'] as const) {
      if (model[key] !== m.model[key]) problems.push(`${at} has model.${key} ${model[key]}, member 1 ${m.model[key]}`);
    }
    for (const key of ['embedDim', 'units', 'attentionUnits'] as const) {
      if (typeof model[key] !== 'number') problems.push(`${at} model.${key} (missing)`);
    }
    for (const listed of [member.decoder.init.file, member.decoder.step.file])
      if (!m.files[listed]) problems.push(`${at} file ${listed} is not listed`);
  });
  return problems;
}

/** A bundle that cannot be used; the message names the file and the fix. */
export class BundleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BundleError';
  }
}

/** The fields a manifest must have, and the type of each (checked before anything reads them). */
const REQUIRED: Record<string, 'string' | 'number' | 'object' | 'string[]' | 'number[]'> = {
  modelId: 'string',
  dtype: 'string',
  model: 'object',
  encoder: 'object',
  decoder: 'object',
  vocab: 'object',
  files: 'object',
  'model.locations': 'number',
  'model.channels': 'number',
  'model.embedDim': 'number',
  'model.units': 'number',
  'model.attentionUnits': 'number',
  'model.vocabSize': 'number',
  'encoder.id': 'string',
  'encoder.file': 'string',
  'encoder.inputName': 'string',
  'encoder.outputName': 'string',
  'encoder.inputSize': 'number',
  'encoder.inputLayout': 'string',
  'encoder.outputLayout': 'string',
  'encoder.locations': 'number',
  'encoder.channels': 'number',
  'encoder.grid': 'number[]',
  'decoder.init': 'object',
  'decoder.init.file': 'string',
  'decoder.step': 'object',
  'decoder.step.file': 'string',
  'vocab.words': 'string[]',
  'vocab.pad': 'number',
  'vocab.start': 'number',
  'vocab.end': 'number',
  'vocab.unk': 'number',
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
    const value = key
      .split('.')
      .reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), m);
    const got = typeOf(value);
    if (got !== want) bad.push(`${key} (${value === undefined ? 'missing' : `${got}, expected ${want}`})`);
  }
  return bad;
}

/**
 * Bounds on a manifest's numbers, so a hostile or damaged manifest cannot make a reader allocate or loop
 * without limit. The defaults are far above any real model's values.
 */
export interface ManifestLimits {
  /** Largest encoder.inputSize, the square image side in pixels (default 4096). */
  maxInputSize?: number;
  /** Largest vocab.maxLength, the decoding steps per caption (default 1024). */
  maxLength?: number;
  /** Largest model.vocabSize (default 1,000,000). */
  maxVocabSize?: number;
  /** Largest model width (channels, embedDim, units, attentionUnits) and number of locations (default 65,536). */
  maxDimension?: number;
  /** Largest file the manifest may list, in bytes (default 4 GiB). */
  maxFileBytes?: number;
  /** Most files the manifest may list (default 64). */
  maxFiles?: number;
}

const MANIFEST_LIMITS: Required<ManifestLimits> = {
  maxInputSize: 4096,
  maxLength: 1024,
  maxVocabSize: 1_000_000,
  maxDimension: 65_536,
  maxFileBytes: 4 * 2 ** 30,
  maxFiles: 64,
};

/**
 * A bundle file name: one plain path segment of letters, digits, '.', '_' and '-', not starting with '.'.
 * No folders, no "..", no absolute paths or drive letters, nothing a URL or a file system would read as more.
 */
export const isBundleFileName = (name: string) => /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/.test(name);

const isCount = (v: unknown, min: number, max: number) =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

/** The bounded fields that are out of range, e.g. ["encoder.inputSize 100000 (1 to 4096)"]. */
function outOfRange(m: BundleManifest, limits: Required<ManifestLimits>): string[] {
  const { model, encoder: enc, vocab } = m;
  const checks: [string, unknown, number, number][] = [
    ['encoder.inputSize', enc.inputSize, 1, limits.maxInputSize],
    ['vocab.maxLength', vocab.maxLength, 1, limits.maxLength],
    ['model.vocabSize', model.vocabSize, 1, limits.maxVocabSize],
    ['model.locations', model.locations, 1, limits.maxDimension],
    ['model.channels', model.channels, 1, limits.maxDimension],
    ['model.embedDim', model.embedDim, 1, limits.maxDimension],
    ['model.units', model.units, 1, limits.maxDimension],
    ['model.attentionUnits', model.attentionUnits, 1, limits.maxDimension],
    ...(['pad', 'start', 'end', 'unk'] as const).map((k): [string, unknown, number, number] => [
      `vocab.${k}`,
      vocab[k],
      0,
      model.vocabSize - 1,
    ]),
    ...enc.grid.map((g, i): [string, unknown, number, number] => [`encoder.grid[${i}]`, g, 1, limits.maxDimension]),
  ];
  return checks
    .filter(([, v, min, max]) => !isCount(v, min, max))
    .map(([k, v, min, max]) => `${k} ${JSON.stringify(v)} (an integer from ${min} to ${max})`);
}

/**
 * Checks a parsed manifest.json (from `where`, a folder or URL used in messages) and returns it typed.
 * Refuses another format, a newer format version (naming the package version that wrote it), missing or
 * mistyped fields, numbers out of range (ManifestLimits), file names that are not plain names inside the
 * bundle, and inconsistent sizes, each with the file named and the fix.
 */
export function parseManifest(json: unknown, where: string, limits: ManifestLimits = {}): BundleManifest {
  const m = json as Partial<BundleManifest> | null;
  const file = `${where}/${MANIFEST_FILE}`;
  const fix = 'Export it again with `sat export --model RUN --out DIR`.';
  if (!m || typeof m !== 'object' || Array.isArray(m) || m.format !== BUNDLE_FORMAT) {
    throw new BundleError(
      `${file} is not a show-attend-tell bundle manifest (format ${JSON.stringify(m?.format)}, expected "${BUNDLE_FORMAT}"). ` +
        'Point at a folder written by `sat export`.',
    );
  }
  if (typeof m.formatVersion !== 'number' || m.formatVersion > BUNDLE_FORMAT_VERSION) {
    const by = isRecord(m.writtenBy)
      ? `${shown(m.writtenBy.package)} ${shown(m.writtenBy.version)}`
      : 'a newer package';
    throw new BundleError(
      `${file} is bundle format version ${shown(m.formatVersion)}, written by ${by}; ` +
        `${PACKAGE_NAME} ${PACKAGE_VERSION} reads format version ${BUNDLE_FORMAT_VERSION} and older. Upgrade to ${by} or newer, ` +
        `or export the checkpoint again with this version.`,
    );
  }
  const bad = badFields(m);
  if (bad.length > 0) throw new BundleError(`${file} is damaged: ${bad.join(', ')}. ${fix}`);
  if (!BUNDLE_DTYPES.includes(m.dtype!))
    throw new BundleError(`${file}: unknown dtype ${JSON.stringify(m.dtype)}. ${fix}`);
  const model = m.model!,
    enc = m.encoder!,
    vocab = m.vocab!;
  const all = { ...MANIFEST_LIMITS, ...limits };
  const range = outOfRange(m as BundleManifest, all);
  if (range.length > 0) throw new BundleError(`${file} has values out of range: ${range.join(', ')}. ${fix}`);
  if (!['nhwc', 'nchw'].includes(enc.inputLayout) || !['nhwc', 'nchw'].includes(enc.outputLayout)) {
    throw new BundleError(
      `${file}: encoder layouts ${JSON.stringify(enc.inputLayout)}, ${JSON.stringify(enc.outputLayout)} (expected "nhwc" or "nchw"). ${fix}`,
    );
  }
  if (enc.grid.length !== 2 || enc.grid[0] * enc.grid[1] !== enc.locations) {
    throw new BundleError(`${file}: the attention grid [${enc.grid}] does not have ${enc.locations} locations. ${fix}`);
  }
  if (vocab.words.length !== model.vocabSize) {
    throw new BundleError(
      `${file}: the vocabulary has ${vocab.words.length} words but the model ${model.vocabSize}. ${fix}`,
    );
  }
  if (enc.locations !== model.locations || enc.channels !== model.channels) {
    throw new BundleError(
      `${file}: the encoder gives ${enc.locations} x ${enc.channels} features but the decoder takes ` +
        `${model.locations} x ${model.channels}. ${fix}`,
    );
  }
  checkFiles(m as BundleManifest, file, all, fix);
  const ensemble = ensembleProblems(m as BundleManifest);
  if (ensemble.length > 0) throw new BundleError(`${file}: the ensemble is damaged: ${ensemble.join('; ')}. ${fix}`);
  if (m.memory !== undefined) {
    const memory = memoryEntryProblems(m.memory, enc, m.files!);
    if (memory.length > 0)
      throw new BundleError(`${file}: the caption memory is damaged: ${memory.join('; ')}. ${fix}`);
  }
  return m as BundleManifest;
}

/** An untrusted value in a message: strings as they are, anything else as JSON (never its own toString). */
const shown = (v: unknown) => (typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v)));
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The `files` table: plain names inside the bundle, a hex SHA-256 and a bounded size each; the three graphs listed. */
function checkFiles(m: BundleManifest, file: string, limits: Required<ManifestLimits>, fix: string): void {
  const names = Object.keys(m.files);
  if (names.length > limits.maxFiles)
    throw new BundleError(`${file} lists ${names.length} files, more than ${limits.maxFiles}. ${fix}`);
  for (const name of [...names, m.encoder.file, m.decoder.init.file, m.decoder.step.file]) {
    if (!isBundleFileName(name) || name === MANIFEST_FILE) {
      throw new BundleError(
        `${file} lists a file named ${JSON.stringify(name)}: bundle files are plain names inside the bundle folder ` +
          `(letters, digits, '.', '_', '-'; no folders, no "..", no absolute paths). ${fix}`,
      );
    }
  }
  for (const name of names) {
    const entry: unknown = m.files[name];
    if (
      !isRecord(entry) ||
      typeof entry.sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(entry.sha256) ||
      !isCount(entry.bytes, 0, limits.maxFileBytes)
    ) {
      throw new BundleError(
        `${file}: the entry of ${name} needs "sha256" (64 lowercase hex digits) and "bytes" (an integer from 0 to ${limits.maxFileBytes}). ${fix}`,
      );
    }
  }
  for (const listed of [m.encoder.file, m.decoder.init.file, m.decoder.step.file]) {
    if (!Object.hasOwn(m.files, listed))
      throw new BundleError(`${file} lists no SHA-256 and size for ${listed}. ${fix}`);
  }
}

/**
 * Refuses manifest bytes whose SHA-256 is not `expectedHex` (case-insensitive): for bundles installed from a URL
 * with a pinned manifest hash, which through the manifest's own SHA-256s pins every file of the bundle.
 */
export async function verifyManifestSha256(bytes: Uint8Array, expectedHex: string, where: string): Promise<void> {
  const want = expectedHex.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(want))
    throw new BundleError(
      `the pinned SHA-256 of ${where}/${MANIFEST_FILE} must be 64 hex digits, not ${JSON.stringify(expectedHex)}.`,
    );
  const got = await sha256Hex(bytes);
  if (got !== want) {
    throw new BundleError(
      `${where}/${MANIFEST_FILE} has SHA-256 ${got}, not the pinned ${want}: the bundle was changed or replaced since the hash ` +
        'was published. Check where the bundle comes from, and pin the new hash only if you trust the change.',
    );
  }
}

/** SHA-256 (hex) with the Web Crypto API (browsers and Node >= 20), or in TypeScript where a page has none (plain http). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  if (!globalThis.crypto?.subtle) return sha256HexSync(bytes);
  const digest = await globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Refuses a bundle file whose size or SHA-256 differs from the manifest's. */
export async function verifyBundleFile(
  manifest: BundleManifest,
  file: string,
  bytes: Uint8Array,
  where: string,
): Promise<void> {
  const want = Object.hasOwn(manifest.files, file) ? manifest.files[file] : undefined;
  if (!want) throw new BundleError(`${where}/${MANIFEST_FILE} does not list ${file}.`);
  const got = bytes.length === want.bytes ? await sha256Hex(bytes) : null;
  if (got !== want.sha256) {
    throw new BundleError(
      `${where}/${file} does not match its manifest (${got === null ? `${bytes.length} bytes instead of ${want.bytes}` : `SHA-256 ${got} instead of ${want.sha256}`}): ` +
        'the file is damaged, truncated, or from another export. Copy the whole bundle folder again, or export it again with `sat export`.',
    );
  }
}
