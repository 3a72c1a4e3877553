/**
 * The browser entry (src/web) run in Node: onnxruntime-web's wasm on one thread, a bundle's files read from a folder
 * through a fake fetch that records each file name it serves, and images as the raw RGB pixels a page would pass.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import * as ortWeb from 'onnxruntime-web';
import type { OrtNamespace } from '../../src/encoders/onnx/runtime.js';
import { loadCaptioner } from '../../src/web/index.js';

/** A web captioner over the bundle in `folder`; `fetched` lists the files fetched so far, in order. */
export async function webCaptionerFromFolder(folder: string) {
  const fetched: string[] = [];
  const fetchFile = (async (url: string) => {
    const name = new URL(url).pathname.split('/').pop()!;
    fetched.push(name);
    return new Response(fs.readFileSync(path.join(folder, name)));
  }) as typeof fetch;
  const captioner = await loadCaptioner(`http://bundle.test/${path.basename(folder)}/`, {
    ort: ortWeb as unknown as OrtNamespace,
    numThreads: 1,
    fetch: fetchFile,
  });
  return { captioner, fetched };
}

/** Image files as raw RGB pixels (the browser entry's { data, width, height, channels } input). */
export function rawPixels(files: readonly string[]) {
  return Promise.all(
    files.map(async (f) => {
      const { data, info } = await sharp(f).raw().toBuffer({ resolveWithObject: true });
      return { data: new Uint8Array(data), width: info.width, height: info.height, channels: 3 as const };
    }),
  );
}
