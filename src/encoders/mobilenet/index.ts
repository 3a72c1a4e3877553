import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../util/errors.js';
import { cacheDir } from '../../util/cache-dir.js';
import { fetchVerified } from '../download.js';
import type { EncoderModel } from '../types.js';
import { extractFromTar } from './archive.js';
import { buildMobileNetGraph, mobilenetV2Blocks, tensorNames, type TensorSource } from './mobilenet_v2.js';
import { encodeNpy, readNpy, type NpyArray } from './npy.js';
import { readTfliteConvs, tensorsFromTflite } from './tflite.js';

export const MOBILENET_V2_INPUT_SIZE = 224;

/** TensorFlow's hosted float MobileNetV2 1.0 224 (TFLite + checkpoint archive, 2018-11-05). */
export const MOBILENET_V2_TFLITE = {
  url: 'https://storage.googleapis.com/download.tensorflow.org/models/tflite_11_05_08/mobilenet_v2_1.0_224.tgz',
  fileName: 'mobilenet_v2_1.0_224.tgz',
  manualFlag: '--encoder-weights FILE',
};

/**
 * SHA-256 of the 104 trunk tensors (weights then bias of each conv in block order, float32 little-endian in
 * their stored layouts), measured on ../shared/models/mobilenet_v2_1.0_224, which README.md says was exported
 * from that archive's .tflite. Tensors read from a .tflite/.tgz must hash to this: no MD5 of the archive is
 * published, so we verify what we use.
 */
export const MOBILENET_V2_TENSORS_SHA256 = 'dd88317aac1eadcd050c494a1d6c2dd65078d2c4ef0e3eb6d47b04713eedbabb';

export function tensorsDigest(tensors: TensorSource): string {
  const h = createHash('sha256');
  for (const name of tensorNames(mobilenetV2Blocks())) {
    const t = tensors(name);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest('hex');
}

/** Tensors from a folder of `<name>.npy` files (e.g. ../shared/models/mobilenet_v2_1.0_224/weights). */
export function npyFolder(dir: string): TensorSource {
  // Accept the model folder or its weights/ subfolder.
  const folder = fs.existsSync(path.join(dir, 'weights', 'Const_90.npy')) ? path.join(dir, 'weights') : dir;
  const missing = tensorNames(mobilenetV2Blocks()).filter((n) => !fs.existsSync(path.join(folder, `${n}.npy`)));
  if (missing.length > 0) {
    throw new UserError(
      `--encoder-weights ${dir}: ${missing.length} MobileNetV2 tensors are missing (e.g. ${missing
        .slice(0, 3)
        .map((n) => `${n}.npy`)
        .join(', ')}). ` +
        'Pass the folder of .npy tensors described in ../shared/models/README.md, the mobilenet_v2_1.0_224 .tflite or .tgz file, ' +
        'or leave --encoder-weights out to download it.',
    );
  }
  return (name) => readNpy(path.join(folder, `${name}.npy`));
}

/** Tensors from `mobilenet_v2_1.0_224.tflite`, or the .tgz archive that holds it; checked against the pinned digest. */
export function tfliteFile(file: string, expectedSha256 = MOBILENET_V2_TENSORS_SHA256): TensorSource {
  let bytes: Uint8Array = new Uint8Array(fs.readFileSync(file));
  let tensors: Map<string, NpyArray>;
  try {
    if (!file.endsWith('.tflite'))
      bytes = extractFromTar(bytes, (n) => n.endsWith('mobilenet_v2_1.0_224.tflite'), file).data;
    tensors = tensorsFromTflite(readTfliteConvs(bytes, file), mobilenetV2Blocks(), file);
  } catch (e) {
    throw new UserError(
      `${(e as Error).message}\nExpected TensorFlow's float mobilenet_v2_1.0_224.tflite or ${MOBILENET_V2_TFLITE.url}.`,
    );
  }
  const source: TensorSource = (name) => tensors.get(name)!;
  const digest = tensorsDigest(source);
  if (digest !== expectedSha256) {
    throw new UserError(
      `${file}: its MobileNetV2 tensors hash to ${digest}, expected ${expectedSha256}: ` +
        `not the ImageNet mobilenet_v2_1.0_224 float model (${MOBILENET_V2_TFLITE.url}).`,
    );
  }
  return source;
}

/**
 * No --encoder-weights: the verified tensors cached as .npy in <cache>/mobilenet_v2_1.0_224/, made on
 * first use from the downloaded archive (which is deleted afterwards).
 */
export async function cachedMobileNetV2(
  opts: { fetchImpl?: typeof fetch; silent?: boolean; expectedSha256?: string } = {},
): Promise<string> {
  const expected = opts.expectedSha256 ?? MOBILENET_V2_TENSORS_SHA256;
  const dir = path.join(cacheDir(), 'mobilenet_v2_1.0_224');
  if (fs.existsSync(path.join(dir, 'VERIFIED'))) return dir;
  const archive = await fetchVerified(MOBILENET_V2_TFLITE, opts);
  let tensors: TensorSource;
  try {
    tensors = tfliteFile(archive, expected);
  } catch (e) {
    fs.rmSync(archive, { force: true }); // a bad download must not stay in the cache under its own name
    throw e;
  }
  const tmp = `${dir}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  for (const name of tensorNames(mobilenetV2Blocks()))
    fs.writeFileSync(path.join(tmp, `${name}.npy`), encodeNpy(tensors(name)));
  fs.writeFileSync(path.join(tmp, 'VERIFIED'), `sha256 ${expected} from ${MOBILENET_V2_TFLITE.url}\n`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  fs.rmSync(archive, { force: true });
  return dir;
}

/** --encoder-weights for mobilenet_v2: a folder of .npy tensors, a .tflite or a .tgz; absent: download once. */
export async function mobilenetV2Tensors(
  weights: string | undefined,
): Promise<{ tensors: TensorSource; source: string }> {
  if (weights === undefined) {
    const dir = await cachedMobileNetV2();
    return { tensors: npyFolder(dir), source: dir };
  }
  if (!fs.existsSync(weights)) throw new UserError(`--encoder-weights ${weights} does not exist.`);
  return { tensors: fs.statSync(weights).isDirectory() ? npyFolder(weights) : tfliteFile(weights), source: weights };
}

/**
 * mobilenet_v2's feature layers, by output stride and tapped block: `Conv_1` as trained (output stride 32); its
 * dense, dilated form (stride 16); and `Conv_1_tap12`, the stride-32 map with block 12's finer 14x14x96 map folded
 * 2x2 into 384 more channels at each location (1664 in all; the decoder sees finer detail at the same 49 locations).
 */
export type MobileNetV2Layer = 'Conv_1' | 'Conv_1_os16' | 'Conv_1_tap12';
interface MobileNetV2LayerSpec {
  outputStride: 16 | 32;
  /** A block whose map is folded onto the output grid and appended to its channels. */
  tap?: string;
}
export const MOBILENET_V2_LAYERS: Readonly<Record<MobileNetV2Layer, MobileNetV2LayerSpec>> = {
  Conv_1: { outputStride: 32 },
  Conv_1_os16: { outputStride: 16 },
  Conv_1_tap12: { outputStride: 32, tap: 'expanded_conv_12' },
};

/**
 * ImageNet MobileNetV2 1.0, cut at its `Conv_1` map of 1280 channels; inputs x/127.5 - 1. At the default 224 x 224
 * input and layer Conv_1 the grid is 7x7 (id mobilenet_v2_imagenet); a larger `size` (a multiple of 32) or layer
 * Conv_1_os16 gives a finer grid, Conv_1_tap12 more channels, each with an id that names it (e.g.
 * mobilenet_v2_imagenet_os16, _tap12, _448).
 */
export function mobilenetV2(
  tensors: TensorSource,
  source: string,
  opts: { size?: number; layer?: MobileNetV2Layer } = {},
): EncoderModel {
  const inputName = 'image',
    outputName = 'features';
  const size = opts.size ?? MOBILENET_V2_INPUT_SIZE,
    layer = opts.layer ?? 'Conv_1';
  const {
    onnx,
    outputShape: [h, w, c],
  } = buildMobileNetGraph({
    blocks: mobilenetV2Blocks(MOBILENET_V2_LAYERS[layer].outputStride),
    tensors,
    inputSize: size,
    inputName,
    outputName,
    source,
    tap: MOBILENET_V2_LAYERS[layer].tap,
  });
  // ids name what differs from the 7x7 Conv_1 map: mobilenet_v2_imagenet_os16, _tap12, _448
  const suffix =
    (layer === 'Conv_1' ? '' : `_${layer.slice('Conv_1_'.length)}`) +
    (size === MOBILENET_V2_INPUT_SIZE ? '' : `_${size}`);
  return {
    spec: {
      id: `mobilenet_v2_imagenet${suffix}`,
      inputSize: size,
      scaling: 'minus_one_one',
      inputLayout: 'nhwc',
      outputLayout: 'nhwc',
      inputName,
      outputName,
      locations: h * w,
      channels: c,
    },
    onnx,
  };
}
