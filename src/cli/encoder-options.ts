/** The flags that choose an image encoder, shared by the commands that build one (features, caption, export, serve, bench). */
import { DEFAULT_INCEPTION_V3_LAYER } from '../encoders/inception_v3.js';
import { DEFAULT_ENCODER, ENCODERS, type EncoderOptions } from '../encoders/registry.js';
import { SCALINGS } from '../encoders/user-onnx.js';
import { UserError } from '../util/errors.js';
import type { OptionSpec } from './command.js';

export const ENCODER_CLI_OPTIONS: Record<string, OptionSpec> = {
  encoder: {
    type: 'string',
    description: `image encoder: ${Object.keys(ENCODERS).join(', ')}, or a path to an .onnx file`,
    default: DEFAULT_ENCODER,
  },
  // No parser defaults below: each applies to some encoders only, and giving one to another is an error.
  layer: {
    type: 'string',
    description: `InceptionV3 layer to take features from, mixed0..mixed10 (default ${DEFAULT_INCEPTION_V3_LAYER})`,
  },
  'encoder-weights': {
    type: 'string',
    description:
      'weights: inception_v3_imagenet, the notop .h5 file; mobilenet_v2, a folder of .npy tensors or the .tflite/.tgz (default: download into the cache)',
  },
  'encoder-output': {
    type: 'string',
    description: 'user ONNX: output tensor name (needed when the model has several outputs)',
  },
  'encoder-size': {
    type: 'string',
    description:
      'square input side in pixels: user ONNX (default 224), InceptionV3 (default 299, a smaller side gives a coarser grid), mobilenet_v2 (default 224, a multiple of 32)',
  },
  'encoder-scaling': {
    type: 'string',
    description: `user ONNX: input scaling, ${Object.keys(SCALINGS).join('|')} (default imagenet)`,
  },
  'encoder-layout': { type: 'string', description: 'user ONNX: nchw|nhwc, of both input and output (default nchw)' },
};

export function encoderOptionsFromArgs(values: Record<string, unknown>): EncoderOptions {
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  const size = str('encoder-size');
  if (size !== undefined && !(Number.isInteger(Number(size)) && Number(size) >= 16))
    throw new UserError(`--encoder-size must be an integer >= 16, got "${size}".`);
  return {
    encoder: str('encoder'),
    layer: str('layer'),
    weights: str('encoder-weights'),
    output: str('encoder-output'),
    size: size === undefined ? undefined : Number(size),
    scaling: str('encoder-scaling'),
    layout: str('encoder-layout'),
  };
}

/**
 * The encoder flags of the commands that load a checkpoint (caption, export, serve): the checkpoint names its
 * encoder, so these only fill in what it cannot know (a weights folder, a user .onnx file and its flags) and
 * have no defaults.
 */
export const CHECKPOINT_ENCODER_OPTIONS: Record<string, OptionSpec> = Object.fromEntries(
  Object.entries(ENCODER_CLI_OPTIONS).map(([name, spec]) => {
    const { default: _noDefault, ...rest } = spec;
    const fromCheckpoint: Record<string, string> = {
      encoder: 'encoder override; normally read from the checkpoint (needed for a user .onnx encoder)',
      layer: 'InceptionV3 layer override; normally read from the checkpoint',
    };
    return [name, fromCheckpoint[name] ? { ...rest, description: fromCheckpoint[name] } : rest];
  }),
);

/** The encoder flags given on the command line, or undefined when none is (a bundle refuses them all). */
export function givenEncoderFlags(values: Record<string, unknown>): EncoderOptions | undefined {
  const e = encoderOptionsFromArgs(values);
  return Object.values(e).some((v) => v !== undefined) ? e : undefined;
}
