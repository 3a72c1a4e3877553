import { UserError } from '../util/errors.js';
import { readKerasH5, mapH5Weights } from './keras/hdf5.js';
import { layersUpTo, parseKerasLayers, type KerasLayer, type KerasWeights } from './keras/model.js';
import { kerasToOnnx } from './keras/to-onnx.js';
import { loadNsfwjsInceptionV3, tfjsWeights, type TfjsModelArtifacts } from './keras/tfjs.js';
import type { EncoderModel, InputScaling } from './types.js';

/**
 * Keras InceptionV3 (keras-applications, as shipped with Keras 2.2.4) cut at one of its "mixed" blocks.
 * The layer graph always comes from the nsfwjs package's Keras JSON (the same architecture for both weight
 * sets: its classifier head is simply never reached); the weights come from nsfwjs (fine-tuned for NSFW
 * classification, inputs x/255) or from the ImageNet "notop" HDF5 file (inputs x/127.5 - 1).
 */
export const INCEPTION_V3_LAYERS: Record<string, [h: number, w: number, c: number]> = {
  mixed0: [35, 35, 256],
  mixed1: [35, 35, 288],
  mixed2: [35, 35, 288],
  mixed3: [17, 17, 768],
  mixed4: [17, 17, 768],
  mixed5: [17, 17, 768],
  mixed6: [17, 17, 768],
  mixed7: [17, 17, 768],
  mixed8: [8, 8, 1280],
  mixed9: [8, 8, 2048],
  mixed10: [8, 8, 2048],
};
/** The tutorial's layer; the project's default is to be settled by measured caption quality (BLEU/CIDEr) per layer. */
export const DEFAULT_INCEPTION_V3_LAYER = 'mixed10';
export const INCEPTION_V3_INPUT_SIZE = 299;
/** Smallest input the Keras InceptionV3 accepts (keras.applications: min_size 75). */
export const INCEPTION_V3_MIN_INPUT_SIZE = 75;

/**
 * The feature-store id of a cut: "inception_v3_nsfwjs-mixed10" at the usual 299 x 299 input, with the input
 * side appended otherwise ("inception_v3_nsfwjs-mixed7-160"): the network is fully convolutional up to mixed10,
 * so a smaller input gives a coarser grid from the same weights, and a different feature store.
 */
export function inceptionV3Id(encoder: string, layer: string, inputSize: number): string {
  return inputSize === INCEPTION_V3_INPUT_SIZE ? `${encoder}-${layer}` : `${encoder}-${layer}-${inputSize}`;
}

function checkInputSize(size: number): void {
  if (!Number.isInteger(size) || size < INCEPTION_V3_MIN_INPUT_SIZE) {
    throw new UserError(
      `--encoder-size ${size}: InceptionV3 needs an integer input side of at least ${INCEPTION_V3_MIN_INPUT_SIZE} pixels (default ${INCEPTION_V3_INPUT_SIZE}).`,
    );
  }
}

let artifacts: TfjsModelArtifacts | undefined;
function nsfwjsArtifacts(): TfjsModelArtifacts {
  artifacts ??= loadNsfwjsInceptionV3();
  return artifacts;
}

/** Accepts the known "mixed" names, and any other layer of the graph (e.g. "activation_1") for experiments. */
function checkLayer(layers: KerasLayer[], layer: string, encoder: string): void {
  if (!layers.some((l) => l.name === layer)) {
    throw new UserError(
      `--layer ${layer} is not a layer of ${encoder}. Known feature layers: ${Object.keys(INCEPTION_V3_LAYERS).join(', ')} ` +
        `(default ${DEFAULT_INCEPTION_V3_LAYER}).`,
    );
  }
}

function build(
  encoder: string,
  layer: string,
  inputSize: number,
  layers: KerasLayer[],
  weights: KerasWeights,
  scaling: InputScaling,
): EncoderModel {
  const inputName = 'image',
    outputName = 'features';
  let converted: ReturnType<typeof kerasToOnnx>;
  try {
    converted = kerasToOnnx({ layers, weights, outputLayer: layer, inputSize, inputName, outputName });
  } catch (e) {
    throw new UserError(`--layer ${layer}: ${(e as Error).message}`);
  }
  const {
    onnx,
    outputShape: [h, w, c],
  } = converted;
  return {
    spec: {
      id: inceptionV3Id(encoder, layer, inputSize),
      inputSize,
      scaling,
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

/**
 * nsfwjs InceptionV3 (the default encoder): no download, the weights are in node_modules. `inputSize`: the
 * square input side (default 299).
 */
export function inceptionV3Nsfwjs(
  layer = DEFAULT_INCEPTION_V3_LAYER,
  inputSize = INCEPTION_V3_INPUT_SIZE,
): EncoderModel {
  checkInputSize(inputSize);
  const art = nsfwjsArtifacts();
  const layers = parseKerasLayers(art.modelTopology.model_config);
  checkLayer(layers, layer, 'inception_v3_nsfwjs');
  return build(
    'inception_v3_nsfwjs',
    layer,
    inputSize,
    layers,
    tfjsWeights(art, 'nsfwjs InceptionV3 weights'),
    'zero_one',
  );
}

/** ImageNet InceptionV3 from the keras-applications "notop" HDF5 weights file at `h5File`. */
export async function inceptionV3Imagenet(
  h5File: string,
  layer = DEFAULT_INCEPTION_V3_LAYER,
  inputSize = INCEPTION_V3_INPUT_SIZE,
): Promise<EncoderModel> {
  checkInputSize(inputSize);
  const art = nsfwjsArtifacts();
  const layers = parseKerasLayers(art.modelTopology.model_config);
  checkLayer(layers, layer, 'inception_v3_imagenet');
  // The notop file has the trunk's weights only: map those up to the last block (mixed10).
  const trunk = layersUpTo(layers, 'mixed10');
  const shapes = new Map(art.weightSpecs.map((s) => [s.name, s.shape]));
  const expected = (l: KerasLayer): Record<string, number[]> => {
    const out: Record<string, number[]> = {};
    for (const [name, shape] of shapes) if (name.startsWith(`${l.name}/`)) out[name.slice(l.name.length + 1)] = shape;
    return out;
  };
  let weights: KerasWeights;
  try {
    weights = mapH5Weights(h5File, await readKerasH5(h5File), trunk, expected);
  } catch (e) {
    throw new UserError(
      `${(e as Error).message}\nExpected the Keras ImageNet InceptionV3 notop weights ` +
        '(inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5).',
    );
  }
  return build('inception_v3_imagenet', layer, inputSize, layers, weights, 'minus_one_one');
}
