/**
 * A Keras functional model as two parts: the layer graph (from a Keras/TF.js `model_config` JSON) and a
 * weight source (TF.js shards, an HDF5 file...). The converter in to-onnx.ts only sees these interfaces.
 */
export interface KerasLayer {
  name: string;
  className: string;
  config: Record<string, unknown>;
  /** Names of the layers feeding this one, in order (single-node functional models only). */
  inbound: string[];
}

export interface WeightTensor {
  data: Float32Array;
  shape: number[];
}

export interface KerasWeights {
  /** Human description for error messages, e.g. "nsfwjs InceptionV3 shards". */
  readonly source: string;
  /** The tensor `weight` ("kernel", "bias", "beta", "moving_mean"...) of layer `layer`, or undefined. */
  get(layer: string, weight: string): WeightTensor | undefined;
}

interface RawLayer {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: [string, number, number, unknown][][];
}

/** Parses `model_config` ({class_name: "Model", config: {layers: [...]}}) into layers in file order (topological). */
export function parseKerasLayers(modelConfig: unknown): KerasLayer[] {
  const cfg = (modelConfig as { config?: { layers?: RawLayer[] } })?.config;
  if (!cfg || !Array.isArray(cfg.layers))
    throw new Error('Keras model_config has no config.layers array (is it a functional Model?).');
  return cfg.layers.map((l) => {
    if (l.inbound_nodes.length > 1)
      throw new Error(
        `Keras layer "${l.name}" is called ${l.inbound_nodes.length} times; shared layers are not supported.`,
      );
    return {
      name: l.name,
      className: l.class_name,
      config: l.config,
      inbound: (l.inbound_nodes[0] ?? []).map((n) => n[0]),
    };
  });
}

/** Layers needed to compute `target`, in topological (file) order. */
export function layersUpTo(layers: KerasLayer[], target: string): KerasLayer[] {
  const byName = new Map(layers.map((l) => [l.name, l]));
  if (!byName.has(target)) throw new Error(`Layer "${target}" is not in the model.`);
  const needed = new Set<string>();
  const stack = [target];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (needed.has(name)) continue;
    needed.add(name);
    stack.push(...byName.get(name)!.inbound);
  }
  return layers.filter((l) => needed.has(l.name));
}
