import { UserError } from '../util/errors.js';
import { fetchVerified } from './download.js';
import {
  DEFAULT_INCEPTION_V3_LAYER,
  INCEPTION_V3_LAYERS,
  inceptionV3Imagenet,
  inceptionV3Nsfwjs,
} from './inception_v3.js';
import { MOBILENET_V2_LAYERS, type MobileNetV2Layer, mobilenetV2, mobilenetV2Tensors } from './mobilenet/index.js';
import { bundleEncoder, isBundleDir } from './bundle-encoder.js';
import type { EncoderModel } from './types.js';
import { parseScaling, userOnnxEncoder } from './user-onnx.js';

/**
 * Turns encoder options (the CLI's flags: src/cli/encoder-options.ts) into an EncoderModel. Built graphs are kept in memory per option set,
 * so resolving the same encoder again is free within a process.
 */
export interface EncoderOptions {
  /** Known encoder name, a path to a user .onnx file, or a bundle folder (`sat export`). Default: inception_v3_nsfwjs. */
  encoder?: string;
  /** Cut layer for InceptionV3 (mixed0..mixed10). */
  layer?: string;
  /** Weights file/folder; downloaded into the cache when omitted and the encoder has a download. */
  weights?: string;
  /** User ONNX only: output tensor, input side, input scaling, layout. */
  output?: string;
  size?: number;
  scaling?: string;
  layout?: string;
}

export const DEFAULT_ENCODER = 'inception_v3_nsfwjs';

export const ENCODERS: Record<string, string> = {
  inception_v3_nsfwjs: `Keras InceptionV3 fine-tuned by nsfwjs (weights in node_modules), 299x299 (--encoder-size N for another side), --layer ${Object.keys(INCEPTION_V3_LAYERS).join('|')} (default ${DEFAULT_INCEPTION_V3_LAYER})`,
  inception_v3_imagenet:
    'Keras ImageNet InceptionV3 (the tutorial\'s encoder; "notop" HDF5 downloaded once, or --encoder-weights FILE), 299x299, --layer as above',
  mobilenet_v2:
    "ImageNet MobileNetV2 1.0 224 (TensorFlow's .tflite downloaded once, or --encoder-weights DIR of .npy tensors / .tflite / .tgz), 7x7x1280; --layer Conv_1_os16 for its dense 14x14 form, Conv_1_tap12 for 7x7x1664 with block 12's finer map, --encoder-size N (a multiple of 32) for another side",
};

export const INCEPTION_V3_IMAGENET_WEIGHTS = {
  url: 'https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5',
  fileName: 'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5',
  md5: 'bcbd6486424b2319ff4ef7d526e38f63', // keras.applications.inception_v3 WEIGHTS_PATH_NO_TOP file_hash
  manualFlag: '--encoder-weights FILE',
};

const cache = new Map<string, Promise<EncoderModel>>();

export function resolveEncoder(options: EncoderOptions = {}): Promise<EncoderModel> {
  const key = JSON.stringify(options, Object.keys(options).sort());
  let model = cache.get(key);
  if (!model) {
    model = build(options);
    cache.set(key, model);
    model.catch(() => cache.delete(key)); // a failed build (e.g. offline) may succeed later
  }
  return model;
}

async function build(o: EncoderOptions): Promise<EncoderModel> {
  const name = o.encoder ?? DEFAULT_ENCODER;
  const onlyFor = (flag: string, value: unknown, encoders: string) => {
    if (value !== undefined) throw new UserError(`${flag} applies to ${encoders} only, not to --encoder ${name}.`);
  };
  if (isBundleDir(name)) {
    for (const [flag, v] of [
      ['--layer', o.layer],
      ['--encoder-weights', o.weights],
      ['--encoder-output', o.output],
      ['--encoder-size', o.size],
      ['--encoder-scaling', o.scaling],
      ['--encoder-layout', o.layout],
    ] as const) {
      if (v !== undefined)
        throw new UserError(
          `${flag} does not apply to --encoder ${name}: a bundle's manifest says how to run its encoder.onnx.`,
        );
    }
    return bundleEncoder(name);
  }
  if (name.endsWith('.onnx')) {
    onlyFor('--layer', o.layer, 'inception_v3_*');
    onlyFor('--encoder-weights', o.weights, 'inception_v3_imagenet and mobilenet_v2');
    const layout = o.layout ?? 'nchw';
    if (layout !== 'nchw' && layout !== 'nhwc')
      throw new UserError(`--encoder-layout must be nchw or nhwc, got "${layout}".`);
    return userOnnxEncoder({
      file: name,
      output: o.output,
      size: o.size ?? 224,
      scaling: parseScaling(o.scaling ?? 'imagenet'),
      layout,
    });
  }
  for (const [flag, v] of [
    ['--encoder-output', o.output],
    ['--encoder-scaling', o.scaling],
    ['--encoder-layout', o.layout],
  ] as const) {
    onlyFor(flag, v, 'a user .onnx encoder');
  }
  switch (name) {
    case 'inception_v3_nsfwjs':
      onlyFor('--encoder-weights', o.weights, 'inception_v3_imagenet and mobilenet_v2');
      return inceptionV3Nsfwjs(o.layer, o.size);
    case 'inception_v3_imagenet':
      return inceptionV3Imagenet(o.weights ?? (await fetchVerified(INCEPTION_V3_IMAGENET_WEIGHTS)), o.layer, o.size);
    case 'mobilenet_v2': {
      if (o.layer !== undefined && !(o.layer in MOBILENET_V2_LAYERS))
        throw new UserError(
          `--layer ${o.layer}: mobilenet_v2's feature layers are Conv_1 (7x7x1280 at 224), Conv_1_os16 (the same ` +
            "weights with the last stride dilated away: 14x14x1280 at 224) and Conv_1_tap12 (Conv_1 with block 12's " +
            '14x14x96 map folded into 384 more channels: 7x7x1664 at 224).',
        );
      if (o.size !== undefined && (o.size % 32 !== 0 || o.size < 32 || o.size > 1024))
        throw new UserError(
          `--encoder-size ${o.size}: mobilenet_v2 takes a multiple of 32 from 32 to 1024 (default 224).`,
        );
      const { tensors, source } = await mobilenetV2Tensors(o.weights);
      return mobilenetV2(tensors, source, { size: o.size, layer: o.layer as MobileNetV2Layer | undefined });
    }
    default:
      throw new UserError(
        `Unknown --encoder "${name}". Known encoders:\n${Object.entries(ENCODERS)
          .map(([k, v]) => `  ${k}: ${v}`)
          .join('\n')}\n` +
          'or a path to an .onnx file (with --encoder-output, --encoder-size, --encoder-scaling, --encoder-layout), or a bundle folder (sat export).',
      );
  }
}
