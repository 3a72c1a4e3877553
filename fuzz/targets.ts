/**
 * The fuzz targets: one per binary reader. Each has seeds (files written by the project's own writers and by
 * real tools: the Info-ZIP and Python archives of test/fixtures/zip, the Python safetensors reference file),
 * a run function, and the errors the reader may throw for bad input. Anything else is a bug.
 */
import fs from 'node:fs';
import os from 'node:os';
import zlib from 'node:zlib';
import path from 'node:path';
import { parseSafetensors, writeSafetensors } from '../src/checkpoint/safetensors.js';
import { bufferSource, extractZip, readZipDirectory } from '../src/dataset/zip.js';
import { extractFromTar } from '../src/encoders/mobilenet/archive.js';
import { encodeNpy, parseNpy } from '../src/encoders/mobilenet/npy.js';
import { CONV_2D, DEPTHWISE_CONV_2D, readTfliteConvs } from '../src/encoders/mobilenet/tflite.js';
import { readFields } from '../src/encoders/onnx/protobuf.js';
import { readBundleFolder } from '../src/export/bundle-folder.js';
import { decoderInitGraph, decoderStepGraph, type DecoderParameters } from '../src/export/graphs.js';
import { BundleError, parseManifest } from '../src/export/manifest.js';
import { expandStoredWeights, halfPrecisionInitializers } from '../src/export/onnx-rewrite.js';
import { parameterShapes } from '../src/model/params.js';
import type { ModelConfig } from '../src/model/types.js';
import { UserError } from '../src/util/errors.js';
import { ParseError } from '../src/util/parse-error.js';
import { makeZip } from '../test/helpers/zip-fixture.js';
import { writeBundleFolder } from '../test/helpers/manifest-fixture.js';
import { tarFile, tfliteModel } from '../test/helpers/tflite-fixture.js';
import { poolEncoderOnnx } from '../test/helpers/tiny-model.js';

export interface FuzzTarget {
  name: string;
  /** Valid inputs to start from (deterministic). */
  seeds(): Uint8Array[];
  /** Parse one input; throw on a broken property. */
  run(input: Uint8Array): void | Promise<void>;
  /** Whether `e` is the reader's own refusal of bad input. */
  expected(e: unknown): boolean;
  /** JSON inputs get structural mutations too. */
  json?: boolean;
}

const ROOT = path.resolve(import.meta.dirname, '..');
/** Scratch space for targets that need files: under SAT_FUZZ_SCRATCH (fuzz/run.ts removes it), else /dev/shm or the temp folder. */
const scratch = fs.mkdtempSync(
  path.join(process.env.SAT_FUZZ_SCRATCH ?? (fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir()), 'target-'),
);

const isParseError = (e: unknown) => e instanceof ParseError;
const ramp = (n: number, scale = 0.25) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * scale));
const check = (ok: boolean, what: string) => {
  if (!ok) throw new Error(`property broken: ${what}`);
};

const safetensors: FuzzTarget = {
  name: 'safetensors',
  seeds() {
    const file = path.join(scratch, 'seed.safetensors');
    const out: Uint8Array[] = [];
    for (const tensors of [
      new Map([
        ['a', { shape: [2, 3], data: ramp(6) }],
        ['b', { shape: [1], data: ramp(1) }],
      ]),
      new Map([
        ['w', { shape: [4, 4], data: ramp(16) }],
        ['empty', { shape: [0], data: new Float32Array(0) }],
        ['s', { shape: [], data: ramp(1) }],
      ]),
    ]) {
      writeSafetensors(file, tensors, { note: 'fuzz seed', config: '{"units": 8}' });
      out.push(new Uint8Array(fs.readFileSync(file)));
    }
    // Written by Python's safetensors: as it is (its I32 tensor is refused by dtype), and with I32 relabelled F32
    // (same element size), which the reader takes: the real tool's header layout, alignment and order.
    const python = fs.readFileSync(path.join(ROOT, 'test/fixtures/model-reference.safetensors'));
    out.push(
      new Uint8Array(python),
      new Uint8Array(Buffer.from(python.toString('latin1').replaceAll('"I32"', '"F32"'), 'latin1')),
    );
    return out;
  },
  run(input) {
    const { tensors } = parseSafetensors(input, 'fuzz.safetensors');
    let bytes = 0;
    for (const t of tensors.values()) bytes += t.data.byteLength;
    check(bytes <= input.length, 'the tensors fit in the file');
  },
  expected: isParseError,
};

const zip: FuzzTarget = {
  name: 'zip',
  seeds() {
    const dir = path.join(ROOT, 'test/fixtures/zip');
    const real = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.zip'))
      .sort()
      .map((f) => new Uint8Array(fs.readFileSync(path.join(dir, f))));
    const files = [
      { name: 'd/', data: '' },
      { name: 'd/a.txt', data: 'hello '.repeat(40) },
      { name: 'b.bin', data: Buffer.from(ramp(64).buffer), store: true },
    ];
    return [...real, new Uint8Array(makeZip(files)), new Uint8Array(makeZip(files, { zip64: true }))];
  },
  async run(input) {
    const entries = readZipDirectory(bufferSource(Buffer.from(input)), 'fuzz.zip');
    const declared = entries.reduce((n, e) => n + e.size, 0);
    const file = path.join(scratch, 'in.zip'),
      out = path.join(scratch, 'out');
    fs.writeFileSync(file, input);
    try {
      await extractZip(file, out, { silent: true });
      let written = 0;
      if (fs.existsSync(out))
        for (const e of fs.readdirSync(out, { recursive: true, withFileTypes: true }))
          if (e.isFile()) written += fs.statSync(path.join(e.parentPath, e.name)).size;
      check(written <= declared, `extracted ${written} bytes, declared ${declared}`);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  },
  expected: (e) => e instanceof UserError, // ParseError, or a refusal to write outside the destination
};

const npy: FuzzTarget = {
  name: 'npy',
  seeds() {
    const v1 = encodeNpy({ data: ramp(24), shape: [2, 3, 4] });
    const v2 = (() => {
      // format 2.0: a 4-byte header length
      const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }".padEnd(115, ' ') + '\n';
      const out = new Uint8Array(12 + header.length + 12);
      out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0]);
      new DataView(out.buffer).setUint32(8, header.length, true);
      out.set(new TextEncoder().encode(header), 12);
      out.set(new Uint8Array(ramp(3).buffer), 12 + header.length);
      return out;
    })();
    return [v1, v2, encodeNpy({ data: ramp(1), shape: [1] }), encodeNpy({ data: new Float32Array(0), shape: [0, 5] })];
  },
  run(input) {
    const a = parseNpy(input, 'fuzz.npy');
    check(a.data.byteLength <= input.length, 'the array fits in the file');
  },
  expected: isParseError,
};

const tflite: FuzzTarget = {
  name: 'tflite',
  seeds() {
    const w = ramp(4 * 3 * 3 * 3),
      b = ramp(4),
      dw = ramp(3 * 3 * 4);
    const tensors = [
      { name: 'in', shape: [1, 8, 8, 3] },
      { name: 'w', shape: [4, 3, 3, 3], data: w },
      { name: 'b', shape: [4], data: b },
      { name: 'c', shape: [1, 4, 4, 4] },
      { name: 'dw', shape: [1, 3, 3, 4], data: dw },
      { name: 'db', shape: [4], data: b },
      { name: 'out', shape: [1, 4, 4, 4] },
    ];
    return [
      tfliteModel(tensors, [
        { code: CONV_2D, inputs: [0, 1, 2], outputs: [3] },
        { code: DEPTHWISE_CONV_2D, inputs: [3, 4, 5], outputs: [6] },
        { code: 0, inputs: [3, 6], outputs: [6] },
      ]),
      tfliteModel(tensors.slice(0, 4), [{ code: CONV_2D, inputs: [0, 1, 2], outputs: [3] }]),
    ];
  },
  run(input) {
    const convs = readTfliteConvs(input, 'fuzz.tflite');
    const distinct = new Set(convs.flatMap((c) => [c.weights.data, c.bias.data]));
    check([...distinct].reduce((n, d) => n + d.byteLength, 0) <= input.length, 'the weights fit in the file');
  },
  expected: isParseError,
};

const tar: FuzzTarget = {
  name: 'tar',
  seeds() {
    const files = [
      { name: 'mobilenet_v2_1.0_224.tflite', data: tflite.seeds()[1] },
      { name: 'README', data: new TextEncoder().encode('weights\n') },
    ];
    const plain = tarFile(files);
    return [plain, new Uint8Array(zlib.gzipSync(plain)), tarFile([files[1], files[0]])];
  },
  run(input) {
    const found = extractFromTar(input, (n) => n.endsWith('.tflite'), 'fuzz.tgz', 8 * 2 ** 20);
    check(found.data.length <= 8 * 2 ** 20, 'the file fits in the inflated archive');
  },
  expected: isParseError,
};

/** Every length-delimited payload that parses as a message, walked to `depth` (strings usually do not parse). */
function walk(bytes: Uint8Array, depth: number): number {
  let fields = 0;
  for (const f of readFields(bytes, 'fuzz.onnx')) {
    fields++;
    if (f.wire === 2 && depth > 0) {
      try {
        fields += walk(f.value as Uint8Array, depth - 1);
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
      }
    }
  }
  return fields;
}

const TINY: ModelConfig = {
  locations: 4,
  channels: 3,
  embedDim: 4,
  units: 5,
  attentionUnits: 3,
  vocabSize: 7,
  dropout: 0,
  attentionLambda: 0,
};

const onnx: FuzzTarget = {
  name: 'onnx',
  seeds() {
    const p = Object.fromEntries(
      Object.entries(parameterShapes(TINY)).map(([name, shape]) => [
        name,
        ramp(
          shape.reduce((a, b) => a * b, 1),
          0.1,
        ),
      ]),
    ) as unknown as DecoderParameters;
    return [
      poolEncoderOnnx(),
      decoderInitGraph(TINY, p, 'fp32'),
      decoderStepGraph(TINY, p, 'int8'),
      decoderStepGraph(TINY, p, 'fp16'),
    ];
  },
  run(input) {
    walk(input, 6);
    const expanded = expandStoredWeights(input);
    halfPrecisionInitializers(expanded, 1);
  },
  expected: isParseError,
};

const manifestDir = path.join(scratch, 'bundle');
const manifest: FuzzTarget = {
  name: 'manifest',
  json: true,
  seeds() {
    return [
      new Uint8Array(writeBundleFolder(manifestDir)),
      new Uint8Array(
        writeBundleFolder(manifestDir, (m) => ({
          ...m,
          dtype: 'int8',
          source: { ...m.source, best: { epoch: 1, score: 0.5, by: 'cider' } },
        })),
      ),
    ];
  },
  async run(input) {
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(input));
    } catch {
      json = undefined;
    }
    if (json !== undefined) {
      try {
        parseManifest(json, 'fuzz');
      } catch (e) {
        if (!(e instanceof BundleError)) throw e;
      }
    }
    fs.writeFileSync(path.join(manifestDir, 'manifest.json'), input);
    await readBundleFolder(manifestDir);
  },
  expected: (e) => e instanceof UserError,
};

export const TARGETS: FuzzTarget[] = [safetensors, zip, npy, tflite, tar, onnx, manifest];
