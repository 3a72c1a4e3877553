/**
 * Fixtures for the feature tests: tiny ONNX graphs serialized by hand (so the tests depend on nothing but
 * onnxruntime) and generated images, including every kind of bad file `sat features` must survive.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import type { EncoderModel, EncoderSpec } from '../../src/encoders/types.js';

// --- a minimal protobuf writer, enough for ModelProto -------------------------------------------
type Field =
  [number, 'varint', number] | [number, 'bytes', Uint8Array] | [number, 'string', string] | [number, 'msg', Field[]];

function varint(n: number): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, BigInt(n));
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

function encode(fields: Field[]): Uint8Array {
  const out: number[] = [];
  for (const [num, kind, value] of fields) {
    if (kind === 'varint') out.push(...varint((num << 3) | 0), ...varint(value));
    else {
      const payload = kind === 'bytes' ? value : kind === 'string' ? new TextEncoder().encode(value) : encode(value);
      out.push(...varint((num << 3) | 2), ...varint(payload.length), ...payload);
    }
  }
  return Uint8Array.from(out);
}

/** ValueInfoProto for a float tensor; a string dim is symbolic (dim_param). */
function valueInfo(name: string, dims: (number | string)[]): Field[] {
  const dim = dims.map((d): Field => [1, 'msg', [typeof d === 'number' ? [1, 'varint', d] : [2, 'string', d]]]);
  return [
    [1, 'string', name],
    [
      2,
      'msg',
      [
        [
          1,
          'msg',
          [
            [1, 'varint', 1 /* FLOAT */],
            [2, 'msg', dim],
          ],
        ],
      ],
    ],
  ];
}

function node(op: string, inputs: string[], outputs: string[], attrs: Field[][] = []): Field[] {
  return [
    ...inputs.map((i): Field => [1, 'string', i]),
    ...outputs.map((o): Field => [2, 'string', o]),
    [3, 'string', `${op}_${outputs[0]}`],
    [4, 'string', op],
    ...attrs.map((a): Field => [5, 'msg', a]),
  ];
}

function scalarInitializer(name: string, value: number): Field[] {
  const raw = new Uint8Array(new Float32Array([value]).buffer);
  return [
    [2, 'varint', 1 /* FLOAT */],
    [8, 'string', name],
    [9, 'bytes', raw],
  ];
}

/**
 * y = x * scale, with the input and output in either layout. `fixedBatch` pins the batch dimension.
 * As an encoder: locations = size*size, channels = 3, so the "features" are the scaled pixels themselves.
 */
export function scaleGraph(opts: {
  size: number;
  layoutIn: 'nhwc' | 'nchw';
  layoutOut: 'nhwc' | 'nchw';
  scale: number;
  fixedBatch?: number;
}): Uint8Array {
  const { size: s } = opts;
  const n: number | string = opts.fixedBatch ?? 'N';
  const inDims = opts.layoutIn === 'nhwc' ? [n, s, s, 3] : [n, 3, s, s];
  const outDims = opts.layoutOut === 'nhwc' ? [n, s, s, 3] : [n, 3, s, s];
  const nodes: Field[][] = [];
  let cur = 'image';
  if (opts.layoutIn !== opts.layoutOut) {
    const perm = opts.layoutIn === 'nhwc' ? [0, 3, 1, 2] : [0, 2, 3, 1];
    nodes.push(
      node(
        'Transpose',
        [cur],
        ['t'],
        [[[1, 'string', 'perm'], ...perm.map((p): Field => [8, 'varint', p]), [20, 'varint', 7 /* INTS */]]],
      ),
    );
    cur = 't';
  }
  nodes.push(node('Mul', [cur, 'scale'], ['features']));
  const graph: Field[] = [
    ...nodes.map((nd): Field => [1, 'msg', nd]),
    [2, 'string', 'scale_graph'],
    [5, 'msg', scalarInitializer('scale', opts.scale)],
    [11, 'msg', valueInfo('image', inDims)],
    [12, 'msg', valueInfo('features', outDims)],
  ];
  return encode([
    [1, 'varint', 8 /* ir_version */],
    [2, 'string', 'sat-tests'],
    [7, 'msg', graph],
    [
      8,
      'msg',
      [
        [1, 'string', ''],
        [2, 'varint', 13],
      ],
    ],
  ]);
}

export function scaleEncoder(
  opts: {
    size?: number;
    layoutIn?: 'nhwc' | 'nchw';
    layoutOut?: 'nhwc' | 'nchw';
    scale?: number;
    scaling?: EncoderSpec['scaling'];
    fixedBatch?: number;
    id?: string;
  } = {},
): EncoderModel {
  const size = opts.size ?? 4;
  const layoutIn = opts.layoutIn ?? 'nhwc';
  const layoutOut = opts.layoutOut ?? 'nhwc';
  const spec: EncoderSpec = {
    id: opts.id ?? 'test-scale',
    inputSize: size,
    scaling: opts.scaling ?? 'zero_one',
    inputLayout: layoutIn,
    outputLayout: layoutOut,
    inputName: 'image',
    outputName: 'features',
    locations: size * size,
    channels: 3,
  };
  return { spec, onnx: scaleGraph({ size, layoutIn, layoutOut, scale: opts.scale ?? 2, fixedBatch: opts.fixedBatch }) };
}

// --- images -------------------------------------------------------------------------------------

const created: string[] = [];
process.on('exit', () => {
  for (const d of created) fs.rmSync(d, { recursive: true, force: true });
});

/** A fresh temporary folder, removed when the test process exits. */
export function tmpDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sat-${prefix}-`));
  created.push(dir);
  return dir;
}

/** A solid-colour JPEG/PNG; colour derived from `k` so every image differs. */
export async function writeSolidImage(
  file: string,
  k: number,
  opts: { width?: number; height?: number; format?: 'jpeg' | 'png' } = {},
): Promise<[number, number, number]> {
  const rgb: [number, number, number] = [(k * 37) % 256, (k * 91 + 20) % 256, (k * 53 + 200) % 256];
  const img = sharp({
    create: {
      width: opts.width ?? 8,
      height: opts.height ?? 6,
      channels: 3,
      background: { r: rgb[0], g: rgb[1], b: rgb[2] },
    },
  });
  await (opts.format === 'png' ? img.png() : img.jpeg({ quality: 100 })).toFile(file);
  return rgb;
}

/** Every bad input of issue 2, part 6. Returns the file paths keyed by kind (the "missing" one does not exist). */
export async function writeBadImages(
  dir: string,
): Promise<Record<'truncated' | 'corrupt' | 'notImage' | 'missing' | 'bomb', string>> {
  const good = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 10, b: 30 } } })
    .jpeg()
    .toBuffer();
  const truncated = path.join(dir, 'truncated.jpg');
  fs.writeFileSync(truncated, good.subarray(0, Math.floor(good.length / 2)));
  const corrupt = path.join(dir, 'corrupt.jpg');
  const c = Buffer.from(good);
  for (let i = 200; i < c.length - 10; i += 7) c[i] ^= 0x5a;
  fs.writeFileSync(corrupt, c);
  const notImage = path.join(dir, 'captions.jpg');
  fs.writeFileSync(notImage, 'a dog runs on the grass\n'.repeat(10));
  // A PNG whose header claims 50000 x 50000 pixels (2.5 gigapixels, 7.5 GB decoded) in a few dozen bytes:
  // the decompression-bomb shape. It must be refused from the header, before any decoding.
  const bomb = path.join(dir, 'bomb.png');
  fs.writeFileSync(bomb, pngHeaderOnly(50000, 50000));
  return { truncated, corrupt, notImage, missing: path.join(dir, 'does-not-exist.jpg'), bomb };
}

/** PNG signature + IHDR (8-bit greyscale, width x height) + an empty IDAT + IEND, with valid CRCs. */
function pngHeaderOnly(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body) >>> 0);
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.alloc(0))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
