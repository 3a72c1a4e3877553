/**
 * `sat bench features`: JPEG files -> stored fp16 features (decode + resize + inference + store write, the
 * whole `sat features` pipeline), against the PyTorch peer bench/features_torch.py doing the same work the
 * seed's way (PIL decode/resize, torchvision CNN body, one float16 .npy per image), measured in the same run.
 *
 * Repeats alternate ours / PyTorch so that load from other processes hits both sides alike; each side
 * warms up first (one batch, untimed) and model build/load time is excluded on both. Medians are reported.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { OptionSpec } from '../cli/command.js';
import { numberOption } from '../cli/command.js';
import { ENCODER_CLI_OPTIONS, encoderOptionsFromArgs, resolveEncoder } from '../encoders/registry.js';
import { UserError } from '../util/errors.js';
import { median } from '../util/stats.js';
import { DEFAULT_BATCH, extractFeatures } from './extract.js';
import { EncoderRunner } from './runner.js';

export const FEATURES_BENCH_OPTIONS: Record<string, OptionSpec> = {
  images: { type: 'string', description: 'features: folder of JPEG files, e.g. ../shared/data/flickr8k/Flicker8k_Dataset' },
  limit: { type: 'string', description: 'features: number of images (the first N by name)', default: '64' },
  batch: { type: 'string', description: 'features: images per inference batch, both sides', default: String(DEFAULT_BATCH) },
  threads: { type: 'string', description: 'features: compute threads, both sides (onnxruntime intra-op / torch.set_num_threads)', default: '2' },
  repeats: { type: 'string', description: 'features: timed repeats per side (median reported)', default: '3' },
  spin: { type: 'boolean', description: 'features: let onnxruntime threads spin-wait between ops (as `sat features --spin`)' },
  python: { type: 'string', description: 'features: Python with PyTorch + torchvision for the peer', default: '/usr/bin/python3' },
  'no-torch': { type: 'boolean', description: 'features: skip the PyTorch peer' },
  ...ENCODER_CLI_OPTIONS,
};

const TORCH_SCRIPT = fileURLToPath(new URL('../../bench/features_torch.py', import.meta.url));

export interface FeaturesBenchResult {
  images_per_s: number;
  torch_images_per_s: number | null;
  ratio: number | null;
  encoder: string;
  images: number;
  batch: number;
  threads: number;
  runs: number[];
  torch_runs: number[];
  /** CPU seconds (all threads of the process) per image, medians: less sensitive to other load than img/s. */
  cpu_s_per_image: number;
  torch_cpu_s_per_image: number | null;
  torch_arch: string | null;
}

export async function runFeaturesBench(values: Record<string, unknown>): Promise<FeaturesBenchResult> {
  const dir = values.images;
  if (typeof dir !== 'string') throw new UserError('--images is required: a folder of JPEG files, e.g. --images ../shared/data/flickr8k/Flicker8k_Dataset');
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`--images ${dir}: not a folder.`);
  const limit = numberOption(values, 'limit', { integer: true, min: 1 })!;
  const batch = numberOption(values, 'batch', { integer: true, min: 1, max: 256 })!;
  const threads = numberOption(values, 'threads', { integer: true, min: 1, max: 256 })!;
  const repeats = numberOption(values, 'repeats', { integer: true, min: 1, max: 50 })!;
  const files = fs.readdirSync(dir).filter((f) => /\.jpe?g$/i.test(f)).sort().slice(0, limit);
  if (files.length === 0) throw new UserError(`--images ${dir} has no .jpg/.jpeg files.`);
  const images = files.map((f) => ({ id: f, path: path.resolve(dir, f) }));

  const encoderOptions = encoderOptionsFromArgs(values);
  const model = await resolveEncoder(encoderOptions);
  const torchArch = values['no-torch'] ? null : peerArch(model.spec.id);
  const runner = await EncoderRunner.create(model, { threads, spin: Boolean(values.spin) });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-bench-features-'));
  const runs: number[] = [];
  const cpu: number[] = [];
  const torchRuns: number[] = [];
  const torchCpu: number[] = [];
  try {
    const once = async (name: string, list = images) => {
      const res = await extractFeatures({ images: list, model, runner, dir: path.join(tmp, name), batchSize: batch, progress: false, log: () => {} });
      if (res.stored !== list.length) throw new UserError(`bench: ${list.length - res.stored} of the images in ${dir} could not be read: ${res.skipped[0]?.reason}`);
      return res;
    };
    await once('warmup', images.slice(0, batch));
    for (let r = 0; r < repeats; r++) {
      const c0 = process.cpuUsage();
      const res = await once(`run${r}`);
      const c = process.cpuUsage(c0);
      runs.push(images.length / res.seconds);
      cpu.push((c.user + c.system) / 1e6 / images.length);
      process.stderr.write(`bench features: ours ${runs[r].toFixed(2)} img/s (repeat ${r + 1}/${repeats})\n`);
      if (torchArch) {
        const t = await runTorch(String(values.python), { images: dir, limit, batch, threads, arch: torchArch, layer: encoderOptions.layer });
        torchRuns.push(t.images_per_s);
        torchCpu.push(t.cpu_s_per_image);
        process.stderr.write(`bench features: PyTorch ${t.images_per_s.toFixed(2)} img/s (repeat ${r + 1}/${repeats})\n`);
      }
      fs.rmSync(path.join(tmp, `run${r}`), { recursive: true, force: true });
    }
  } finally {
    await runner.release();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const ours = median(runs);
  const torch = torchRuns.length ? median(torchRuns) : null;
  return {
    images_per_s: round(ours), torch_images_per_s: torch === null ? null : round(torch), ratio: torch === null ? null : round(ours / torch),
    encoder: model.spec.id, images: images.length, batch, threads, runs: runs.map(round), torch_runs: torchRuns.map(round), torch_arch: torchArch,
    cpu_s_per_image: round(median(cpu)), torch_cpu_s_per_image: torchCpu.length ? round(median(torchCpu)) : null,
  };
}

/** The torchvision architecture matching an encoder id, or null when the peer has none. */
function peerArch(encoderId: string): string | null {
  if (encoderId.startsWith('inception_v3')) return 'inception_v3';
  if (encoderId.startsWith('mobilenet_v2')) return 'mobilenet_v2';
  process.stderr.write(`bench features: no PyTorch peer for encoder "${encoderId}"; measuring ours only\n`);
  return null;
}

async function runTorch(python: string, o: { images: string; limit: number; batch: number; threads: number; arch: string; layer?: string }): Promise<{ images_per_s: number; cpu_s_per_image: number }> {
  const args = [TORCH_SCRIPT, '--images', o.images, '--limit', String(o.limit), '--batch', String(o.batch), '--threads', String(o.threads), '--arch', o.arch];
  if (o.arch === 'inception_v3' && o.layer) args.push('--layer', o.layer);
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)(python, args, { maxBuffer: 1 << 20 }));
  } catch (e) {
    throw new UserError(`The PyTorch peer failed (${python} ${path.basename(TORCH_SCRIPT)}): ${(e as Error).message.split('\n').slice(-3).join(' ')}\n` +
      'Point --python at a Python with torch and torchvision, or pass --no-torch.');
  }
  return JSON.parse(stdout.trim().split('\n').pop()!) as { images_per_s: number; cpu_s_per_image: number };
}

const round = (x: number) => Math.round(x * 1000) / 1000;

export function formatFeaturesBench(r: FeaturesBenchResult): string {
  const lines = [`${r.encoder}: ${r.images_per_s} img/s (median of ${r.runs.length}: ${r.runs.join(', ')}), ` +
    `${r.cpu_s_per_image} CPU s/img, ${r.images} JPEGs, batch ${r.batch}, ${r.threads} threads`];
  if (r.torch_images_per_s !== null) {
    lines.push(`PyTorch ${r.torch_arch}: ${r.torch_images_per_s} img/s (median of ${r.torch_runs.length}: ${r.torch_runs.join(', ')}), ${r.torch_cpu_s_per_image} CPU s/img`);
    lines.push(`ratio: ${r.ratio}x`);
  }
  return lines.join('\n');
}
