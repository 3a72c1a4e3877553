import * as fs from 'node:fs';
import type { KerasLayer, KerasWeights, WeightTensor } from './model.js';

/**
 * Keras weights in HDF5 (`model.save_weights(...)`, e.g. the keras-applications "notop" files):
 *   /                      attr layer_names = [layer, ...] (model.layers order)
 *   /<layer>               attr weight_names = ["<layer>/kernel:0", ...]
 *   /<layer>/<layer>/kernel:0   dataset (a full `model.save` file has all of this under /model_weights)
 *
 * Layer names in such files are Keras auto-names ("conv2d_7", "batch_normalization_7"), numbered in
 * creation order; files saved by tf.keras start at "conv2d" instead of "conv2d_1". So file layers are
 * mapped onto our architecture per weight kind in creation order (the number in the name), never by
 * the raw name, and every tensor's shape is checked against the architecture.
 */
export interface H5Layer {
  name: string;
  /** Short weight name ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance") -> tensor. */
  weights: Map<string, WeightTensor>;
}

/** Reads every layer that has weights, in the file's layer_names order. */
export async function readKerasH5(file: string): Promise<H5Layer[]> {
  if (!fs.existsSync(file)) throw new Error(`Keras weights file ${file} does not exist.`);
  if (!hasHdf5Signature(file)) throw new Error(`${file} is not a readable HDF5 file (no HDF5 signature).`);
  const h5wasm = (await import('h5wasm/node')).default;
  await h5wasm.ready;
  let f: InstanceType<typeof h5wasm.File>;
  try {
    f = new h5wasm.File(file, 'r');
  } catch (e) {
    throw new Error(`${file} is not a readable HDF5 file (${(e as Error).message}).`);
  }
  try {
    let root = f as InstanceType<typeof h5wasm.Group>;
    if (f.keys().includes('model_weights')) root = f.get('model_weights') as InstanceType<typeof h5wasm.Group>;
    const names = stringList(root.attrs['layer_names']?.value);
    if (!names) throw new Error(`${file} has no "layer_names" attribute: it is not a Keras weights file.`);
    const layers: H5Layer[] = [];
    for (const name of names) {
      const group = root.get(name) as InstanceType<typeof h5wasm.Group> | null;
      const weightNames = stringList(group?.attrs['weight_names']?.value) ?? [];
      if (weightNames.length === 0) continue;
      const weights = new Map<string, WeightTensor>();
      for (const wn of weightNames) {
        const ds = group!.get(wn) as InstanceType<typeof h5wasm.Dataset> | null;
        if (!ds || !(ds instanceof h5wasm.Dataset))
          throw new Error(`${file}: layer "${name}" lists weight "${wn}" but has no such dataset.`);
        const v = ds.value;
        if (!(v instanceof Float32Array || v instanceof Float64Array))
          throw new Error(`${file}: weight "${wn}" is not a float tensor.`);
        weights.set(shortWeightName(wn), {
          data: v instanceof Float32Array ? v : Float32Array.from(v),
          shape: ds.shape ?? [],
        });
      }
      layers.push({ name, weights });
    }
    return layers;
  } finally {
    f.close();
  }
}

/** The HDF5 superblock signature sits at byte 0, 512, 1024, 2048... (we look at the first few places). */
function hasHdf5Signature(file: string): boolean {
  const signature = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(8);
    for (const offset of [0, 512, 1024, 2048, 4096]) {
      if (fs.readSync(fd, buf, 0, 8, offset) === 8 && buf.equals(signature)) return true;
    }
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

/** "conv2d_1/kernel:0" -> "kernel" */
function shortWeightName(full: string): string {
  return full.slice(full.lastIndexOf('/') + 1).replace(/:\d+$/, '');
}

function stringList(v: unknown): string[] | undefined {
  if (v === null || v === undefined) return undefined;
  const arr = Array.isArray(v) ? v : [v];
  return arr.map((s) => (typeof s === 'string' ? s : new TextDecoder().decode(s as Uint8Array)).replace(/\0+$/, ''));
}

/** Keras auto-name "conv2d_12" -> ["conv2d", 12]; "conv2d" -> ["conv2d", 0]. */
function autoName(name: string): [string, number] {
  const m = /^(.*?)(?:_(\d+))?$/.exec(name)!;
  return [m[1], m[2] ? Number(m[2]) : 0];
}

/** Which layers carry weights, grouped by their name stem ("conv2d", "batch_normalization"), in creation order. */
function byStem<T extends { name: string }>(items: T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const it of items) {
    const [stem] = autoName(it.name);
    groups.set(stem, [...(groups.get(stem) ?? []), it]);
  }
  for (const g of groups.values()) g.sort((a, b) => autoName(a.name)[1] - autoName(b.name)[1]);
  return groups;
}

/**
 * Maps file layers onto the architecture's weighted layers (stem by stem, in creation order) and
 * returns them as KerasWeights keyed by the architecture's names. `expected` gives each needed
 * weight's shape; a missing layer or a shape mismatch is an error naming the file and layer.
 */
export function mapH5Weights(
  file: string,
  fileLayers: H5Layer[],
  archLayers: KerasLayer[],
  expected: (l: KerasLayer) => Record<string, number[]>,
): KerasWeights {
  const arch = archLayers.filter((l) => Object.keys(expected(l)).length > 0);
  const fileGroups = byStem(fileLayers);
  const tensors = new Map<string, WeightTensor>();
  for (const [stem, layers] of byStem(arch)) {
    const candidates = fileGroups.get(stem) ?? [];
    if (candidates.length < layers.length) {
      throw new Error(
        `${file} has ${candidates.length} "${stem}" layers with weights, the architecture needs ${layers.length} ` +
          `(first needed: ${layers[0].name}). Is this the right weights file for the encoder?`,
      );
    }
    layers.forEach((l, i) => {
      const src = candidates[i];
      for (const [w, shape] of Object.entries(expected(l))) {
        const t = src.weights.get(w);
        if (!t)
          throw new Error(
            `${file}: layer "${src.name}" (our "${l.name}") has no "${w}" weight (has: ${[...src.weights.keys()].join(', ')}).`,
          );
        if (t.shape.join(',') !== shape.join(',')) {
          throw new Error(
            `${file}: "${src.name}/${w}" has shape [${t.shape.join(', ')}], our "${l.name}" needs [${shape.join(', ')}]. ` +
              'Is this the right weights file for the encoder?',
          );
        }
        tensors.set(`${l.name}/${w}`, t);
      }
    });
  }
  return { source: file, get: (layer, weight) => tensors.get(`${layer}/${weight}`) };
}
