/**
 * Captioning any number of images with bounded memory: images are taken from an iterable (or async iterable)
 * `batchSize` at a time; each batch is preprocessed, encoded and decoded before the next image is read, and its
 * captions are yielded in input order. Memory holds one batch's pixels and features whatever the image count, so
 * a caller that writes each caption as it comes (`sat caption photos/*.jpg`) stays flat from 10 images to 100,000.
 *
 * Results equal one big batch's: the encoder and decoder chunk their work anyway, each image's caption does not
 * depend on its batch, and sampling seeds each image's stream by its index in the whole job (firstImage).
 */
import type { DecodedCaption, DecodeOptions } from './types.js';

/** Images per batch unless the caller says otherwise: one decoder batch (DEFAULT_DECODE_BATCH). */
export const DEFAULT_STREAM_BATCH = 64;
export const MAX_STREAM_BATCH = 4096;

export interface CaptionStreamOptions {
  /** Images read, encoded and decoded together (default 64, at most 4096); memory holds one batch. */
  batchSize?: number;
  /** Also yield each image as the encoder saw it (RGB uint8 HWC, info.inputSize square), e.g. to draw attention. */
  pixels?: boolean;
}

/** One image's outcome, in input order. */
export interface DecodedImage<Image> {
  /** Position of the image in the input (0-based). */
  index: number;
  image: Image;
  decoded: DecodedCaption;
  /** With `pixels`: the image as the encoder saw it. */
  rgb?: Uint8Array;
}

/** The part of a CaptionRuntime (captioner-api.ts) a stream uses. */
export interface StreamBackend<Image> {
  preprocess(image: Image): Promise<Uint8Array>;
  /** RGB images -> features [n, L, C]. */
  encode(rgb: readonly Uint8Array[]): Promise<Float32Array>;
  decode(features: Float32Array, n: number, options: DecodeOptions): Promise<DecodedCaption[]>;
}

/** `batchSize` checked: an integer from 1 to MAX_STREAM_BATCH. */
export function streamBatchSize(stream: CaptionStreamOptions, fail: (message: string) => Error): number {
  const size = stream.batchSize ?? DEFAULT_STREAM_BATCH;
  if (!Number.isInteger(size) || size < 1 || size > MAX_STREAM_BATCH) {
    throw fail(`batchSize must be an integer from 1 to ${MAX_STREAM_BATCH}, got ${JSON.stringify(stream.batchSize)}.`);
  }
  return size;
}

/** Decodes `images` batch by batch on `backend` (see the file comment). */
export async function* decodeInBatches<Image>(
  backend: StreamBackend<Image>,
  images: Iterable<Image> | AsyncIterable<Image>,
  options: DecodeOptions,
  stream: CaptionStreamOptions = {},
  fail: (message: string) => Error = (m) => new Error(m),
): AsyncGenerator<DecodedImage<Image>> {
  const size = streamBatchSize(stream, fail);
  const firstImage = options.firstImage ?? 0;
  let batch: Image[] = [];
  let done = 0;
  async function* flush(): AsyncGenerator<DecodedImage<Image>> {
    if (batch.length === 0) return;
    const images = batch;
    batch = [];
    const rgb: Uint8Array[] = [];
    for (const image of images) rgb.push(await backend.preprocess(image));
    const features = await backend.encode(rgb);
    const decoded = await backend.decode(features, images.length, { ...options, firstImage: firstImage + done });
    const first = done;
    done += images.length;
    for (let i = 0; i < images.length; i++) {
      yield { index: first + i, image: images[i], decoded: decoded[i], ...(stream.pixels ? { rgb: rgb[i] } : {}) };
    }
  }
  for await (const image of images) {
    batch.push(image);
    if (batch.length >= size) yield* flush();
  }
  yield* flush();
}
