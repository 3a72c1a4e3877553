import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { UserError } from '../util/errors.js';
import type { EncoderModel, InputScaling } from './types.js';

/**
 * Any ONNX image model the user exported (e.g. a torchvision ResNet cut before its pooling).
 * We do not trust declared shapes: the model is run once on a zero image to learn its output shape.
 */
export interface UserOnnxOptions {
  file: string;
  /** Output tensor to use; optional when the model has exactly one output. */
  output?: string;
  size: number;
  scaling: InputScaling;
  /** Layout of both the image input and the feature output. */
  layout: 'nchw' | 'nhwc';
}

export const SCALINGS: Record<string, InputScaling> = {
  zero_one: 'zero_one',
  minus_one_one: 'minus_one_one',
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
};

export function parseScaling(name: string): InputScaling {
  const s = SCALINGS[name];
  if (!s)
    throw new UserError(`--encoder-scaling ${name} is not known; use one of ${Object.keys(SCALINGS).join(', ')}.`);
  return s;
}

export async function userOnnxEncoder(opts: UserOnnxOptions): Promise<EncoderModel> {
  if (!fs.existsSync(opts.file)) throw new UserError(`--encoder ${opts.file}: no such ONNX file.`);
  const onnx = new Uint8Array(fs.readFileSync(opts.file));
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(onnx);
  } catch (e) {
    throw new UserError(`--encoder ${opts.file}: onnxruntime cannot load it (${(e as Error).message}).`);
  }
  try {
    if (session.inputNames.length !== 1) {
      throw new UserError(
        `--encoder ${opts.file} has ${session.inputNames.length} inputs (${session.inputNames.join(', ')}); an image encoder needs exactly one.`,
      );
    }
    const inputName = session.inputNames[0];
    const outputName = opts.output ?? (session.outputNames.length === 1 ? session.outputNames[0] : undefined);
    if (!outputName || !session.outputNames.includes(outputName)) {
      throw new UserError(
        `--encoder-output ${opts.output ?? '(missing)'}: choose one of the outputs of ${opts.file}: ${session.outputNames.join(', ')}.`,
      );
    }
    const s = opts.size;
    const dims = opts.layout === 'nchw' ? [1, 3, s, s] : [1, s, s, 3];
    let out: ort.Tensor;
    try {
      out = (
        await session.run({ [inputName]: new ort.Tensor('float32', new Float32Array(3 * s * s), dims) }, [outputName])
      )[outputName];
    } catch (e) {
      throw new UserError(
        `--encoder ${opts.file} failed on a [${dims.join(', ')}] float32 input (check --encoder-size and --encoder-layout): ${(e as Error).message}`,
      );
    }
    const d = out.dims;
    let locations: number, channels: number;
    if (d.length === 4) {
      [locations, channels] = opts.layout === 'nchw' ? [d[2] * d[3], d[1]] : [d[1] * d[2], d[3]];
    } else if (d.length === 3 && opts.layout === 'nhwc') {
      [locations, channels] = [d[1], d[2]]; // already [n, locations, channels] (e.g. transformer tokens)
    } else {
      throw new UserError(
        `--encoder-output ${outputName} has shape [${d.join(', ')}]; expected a feature map [n, c, h, w] (nchw) or [n, h, w, c] / [n, locations, c] (nhwc).`,
      );
    }
    const hash = createHash('sha1').update(onnx).digest('hex').slice(0, 8);
    const safe = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_'); // the id names a folder
    return {
      spec: {
        id: `${safe(path.basename(opts.file, '.onnx'))}-${safe(outputName)}-${hash}`,
        inputSize: s,
        scaling: opts.scaling,
        inputLayout: opts.layout,
        outputLayout: opts.layout,
        inputName,
        outputName,
        locations,
        channels,
      },
      onnx,
    };
  } finally {
    await session.release();
  }
}
