import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { KerasWeights, WeightTensor } from './model.js';

/**
 * TF.js layers models: a `modelTopology` (Keras JSON) and a `weightsManifest` listing tensors in
 * order, stored back to back in binary shards. Weights may be quantized: uint8/uint16 as
 * value = q * scale + min, or float16.
 */
export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: 'uint8' | 'uint16' | 'float16'; min?: number; scale?: number };
}

export interface TfjsModelArtifacts {
  modelTopology: { keras_version?: string; model_config: unknown };
  weightSpecs: WeightSpec[];
  /** All shards concatenated. */
  weightData: Uint8Array;
}

/**
 * nsfwjs ships its InceptionV3 as browserify UMD modules so bundlers can inline it:
 * `model.min.js` exports {modelTopology, weightsManifest} and each `group1-shardKofN.min.js` exports
 * its shard's bytes as one base64 string. Under Node they load with plain `require`.
 */
export function loadNsfwjsInceptionV3(): TfjsModelArtifacts {
  const require = createRequire(import.meta.url);
  let pkgDir: string;
  try {
    pkgDir = path.resolve(path.dirname(require.resolve('nsfwjs')), '..', '..'); // .../nsfwjs/dist/cjs/index.js
  } catch {
    throw new Error(
      'The npm package "nsfwjs" is not installed; it carries the default InceptionV3 weights. Run `npm install`.',
    );
  }
  const dir = path.join(pkgDir, 'dist', 'models', 'inception_v3');
  const model = require(path.join(dir, 'model.min.js')) as {
    modelTopology: TfjsModelArtifacts['modelTopology'];
    weightsManifest: { paths: string[]; weights: WeightSpec[] }[];
  };
  const specs: WeightSpec[] = [];
  const shards: Uint8Array[] = [];
  for (const group of model.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) {
      const b64 = require(path.join(dir, `${p}.min.js`)) as string;
      if (typeof b64 !== 'string')
        throw new Error(`nsfwjs shard ${p}.min.js did not export a base64 string; unsupported nsfwjs version.`);
      shards.push(Buffer.from(b64, 'base64'));
    }
  }
  return { modelTopology: model.modelTopology, weightSpecs: specs, weightData: Buffer.concat(shards) };
}

/** Bytes one stored value takes. */
function storedBytes(spec: WeightSpec): number {
  const q = spec.quantization?.dtype;
  if (q === 'uint8') return 1;
  if (q === 'uint16' || q === 'float16') return 2;
  if (spec.dtype === 'float32' || spec.dtype === 'int32') return 4;
  throw new Error(`Weight "${spec.name}": dtype ${spec.dtype} is not supported.`);
}

/** Splits and dequantizes the concatenated shards into float32 tensors keyed "layer/weight". */
export function tfjsWeights(art: TfjsModelArtifacts, source: string): KerasWeights {
  const tensors = new Map<string, WeightTensor>();
  const view = new DataView(art.weightData.buffer, art.weightData.byteOffset, art.weightData.byteLength);
  let offset = 0;
  for (const spec of art.weightSpecs) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const bytes = n * storedBytes(spec);
    if (offset + bytes > art.weightData.length)
      throw new Error(`${source}: weight data ends inside "${spec.name}" (truncated shards?).`);
    const data = new Float32Array(n);
    const q = spec.quantization;
    if (q?.dtype === 'uint8' || q?.dtype === 'uint16') {
      const scale = q.scale ?? 1,
        min = q.min ?? 0;
      for (let i = 0; i < n; i++)
        data[i] =
          (q.dtype === 'uint8' ? view.getUint8(offset + i) : view.getUint16(offset + 2 * i, true)) * scale + min;
    } else if (q?.dtype === 'float16') {
      for (let i = 0; i < n; i++) data[i] = halfToFloat(view.getUint16(offset + 2 * i, true));
    } else if (spec.dtype === 'float32') {
      for (let i = 0; i < n; i++) data[i] = view.getFloat32(offset + 4 * i, true);
    } else {
      for (let i = 0; i < n; i++) data[i] = view.getInt32(offset + 4 * i, true);
    }
    tensors.set(spec.name, { data, shape: spec.shape });
    offset += bytes;
  }
  if (offset !== art.weightData.length)
    throw new Error(
      `${source}: ${art.weightData.length - offset} bytes of weight data are not described by the manifest.`,
    );
  return { source, get: (layer, weight) => tensors.get(`${layer}/${weight}`) };
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
