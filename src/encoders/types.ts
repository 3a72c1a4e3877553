/**
 * An image encoder is a definition (weights + input size + input scaling + chosen layer), turned into an
 * ONNX graph that onnxruntime-node runs. Every graph we build ends in NHWC so that the output
 * [n, h, w, c] reshapes for free to [n, locations = h*w, channels = c], the decoder's layout.
 */
export type InputScaling =
  | 'zero_one' // x / 255             (nsfwjs InceptionV3)
  | 'minus_one_one' // x / 127.5 - 1       (Keras InceptionV3 preprocess_input, MobileNetV2)
  | { mean: [number, number, number]; std: [number, number, number] }; // (x/255 - mean) / std (torchvision)

export interface EncoderSpec {
  /** Stable id used for the feature-store folder, e.g. "inception_v3_nsfwjs-mixed10". */
  id: string;
  /** Square input side in pixels (299 for InceptionV3, 224 for MobileNetV2). */
  inputSize: number;
  scaling: InputScaling;
  /** Layout of the graph's image input. Our own graphs take NHWC float32 [n, size, size, 3]. */
  inputLayout: 'nhwc' | 'nchw';
  /** Layout of the feature output; 'nchw' outputs are transposed to NHWC after the run. */
  outputLayout: 'nhwc' | 'nchw';
  inputName: string;
  outputName: string;
  /** Feature map shape after flattening: locations = h*w, channels = c. */
  locations: number;
  channels: number;
}

export interface EncoderModel {
  spec: EncoderSpec;
  /** Serialized ONNX ModelProto. */
  onnx: Uint8Array;
}
