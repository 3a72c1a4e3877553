import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../util/errors.js';
import type { EncoderModel } from '../types.js';
import { buildMobileNetGraph, mobilenetV2Blocks, tensorNames, type TensorSource } from './mobilenet_v2.js';
import { readNpy } from './npy.js';

export const MOBILENET_V2_INPUT_SIZE = 224;

/** Tensors from a folder of `<name>.npy` files (e.g. ../shared/models/mobilenet_v2_1.0_224/weights). */
export function npyFolder(dir: string): TensorSource {
  // Accept the model folder or its weights/ subfolder.
  const folder = fs.existsSync(path.join(dir, 'weights', 'Const_90.npy')) ? path.join(dir, 'weights') : dir;
  const missing = tensorNames(mobilenetV2Blocks()).filter((n) => !fs.existsSync(path.join(folder, `${n}.npy`)));
  if (missing.length > 0) {
    throw new UserError(`--encoder-weights ${dir}: ${missing.length} MobileNetV2 tensors are missing (e.g. ${missing.slice(0, 3).map((n) => `${n}.npy`).join(', ')}). ` +
      'Pass the folder of .npy tensors described in ../shared/models/README.md, or leave --encoder-weights out to download the TFLite model.');
  }
  return (name) => readNpy(path.join(folder, `${name}.npy`));
}

/** ImageNet MobileNetV2 1.0 224, cut at its 7x7x1280 `Conv_1` map; inputs x/127.5 - 1. */
export function mobilenetV2(tensors: TensorSource, source: string): EncoderModel {
  const inputName = 'image', outputName = 'features';
  const { onnx, outputShape: [h, w, c] } = buildMobileNetGraph({
    blocks: mobilenetV2Blocks(), tensors, inputSize: MOBILENET_V2_INPUT_SIZE, inputName, outputName, source,
  });
  return {
    spec: {
      id: 'mobilenet_v2_imagenet', inputSize: MOBILENET_V2_INPUT_SIZE, scaling: 'minus_one_one', inputLayout: 'nhwc', outputLayout: 'nhwc',
      inputName, outputName, locations: h * w, channels: c,
    },
    onnx,
  };
}
