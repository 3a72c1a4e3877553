/**
 * Does the PyTorch peer of `sat bench serve` caption as our model does? The peer's CNN has random weights (its
 * speed does not depend on them), so its decoder is checked on our real features instead: the first N JPEG files
 * of a folder go through our encoder (onnxruntime, real weights) into a float32 .npy [N, L, C], which
 * peers/serve_torch.py --caption-features decodes with the PyTorch twin (beam search as it serves); our native
 * Captioner captions the same images at the same beam. Prints both captions per image and exits 1 on a difference.
 *
 *   node --import tsx checks/serve-peer-parity.ts --model RUN_OR_CHECKPOINT --images DIR [--encoder-weights DIR]
 *       [--limit 8] [--beam 3] [--python /usr/bin/python3]
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { checkpointWeightsFile } from '../src/checkpoint/checkpoint.js';
import { openCheckpointSource } from '../src/checkpoint/source.js';
import { loadCaptioner } from '../src/models/load-captioner.js';
import { loadRgb } from '../src/features/image.js';
import { encodeImages } from '../src/features/onnx-encoder.js';
import { createEncoderRunner } from '../src/features/node-onnxruntime.js';
import { torchPeerCommand, torchPeerPath } from '../src/bench/torch-peer.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    images: { type: 'string' },
    'encoder-weights': { type: 'string' },
    limit: { type: 'string', default: '8' },
    beam: { type: 'string', default: '3' },
    python: { type: 'string', default: '/usr/bin/python3' },
  },
});
if (!values.model || !values.images)
  throw new Error('usage: checks/serve-peer-parity.ts --model RUN_OR_CHECKPOINT --images DIR [--encoder-weights DIR]');
const beam = Number(values.beam);
const encoder = values['encoder-weights'] ? { weights: values['encoder-weights'] } : {};
const files = fs
  .readdirSync(values.images)
  .filter((f) => /\.jpe?g$/i.test(f))
  .sort()
  .slice(0, Number(values.limit))
  .map((f) => path.join(values.images!, f));

/** .npy v1 header + data for float32 [n, l, c]. */
function npy(data: Float32Array, shape: number[]): Buffer {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head.writeUInt8(1, 6);
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([
    head,
    Buffer.from(header, 'latin1'),
    Buffer.from(data.buffer, data.byteOffset, data.byteLength),
  ]);
}

const source = await openCheckpointSource(values.model, encoder);
const { spec } = source.encoder;
const runner = await createEncoderRunner(source.encoder);
const images = await Promise.all(files.map((file) => loadRgb(file, spec.inputSize)));
const features = await encodeImages(runner, images);
await runner.release();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-peer-parity-'));
const featureFile = path.join(tmp, 'features.npy');
fs.writeFileSync(featureFile, npy(features, [files.length, spec.locations, spec.channels]));

const captioner = await loadCaptioner(values.model, { backend: 'native', encoder });
const ours = await captioner.captionBatch(files, { beam });
await captioner.dispose();
const checkpoint = checkpointWeightsFile(values.model);
const peerCommand = torchPeerCommand(values.python!, 'serve_torch', [
  '--checkpoint',
  torchPeerPath(checkpoint),
  '--caption-features',
  featureFile,
  '--beam',
  String(beam),
]);
const peer = execFileSync(peerCommand.command, peerCommand.args, { encoding: 'utf8', cwd: peerCommand.cwd })
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line) as { caption: string; log_prob: number });
fs.rmSync(tmp, { recursive: true, force: true });

let differ = 0;
files.forEach((file, i) => {
  const same = ours[i].caption === peer[i].caption;
  if (!same) differ++;
  console.log(
    `${same ? 'same  ' : 'DIFFER'} ${path.basename(file)}: ours "${ours[i].caption}" (log p ${ours[i].logProb.toFixed(4)}); peer "${peer[i].caption}" (log p ${peer[i].log_prob.toFixed(4)})`,
  );
});
console.log(`${files.length - differ}/${files.length} captions the same (beam ${beam}, ${checkpoint})`);
process.exit(differ === 0 ? 0 : 1);
