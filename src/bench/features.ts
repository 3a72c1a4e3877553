/**
 * `sat bench features`: JPEG files -> stored fp16 features (decode + resize + inference + store write, the
 * whole `sat features` pipeline), against the PyTorch peer peers/features_torch.py doing the same work the
 * tutorial's way (PIL decode/resize, torchvision CNN body, one float16 .npy per image), measured in the same run.
 *
 * Repeats alternate ours / PyTorch so that load from other processes hits both sides alike; each side
 * warms up first (one batch, untimed) and model build/load time is excluded on both. Medians are reported.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { resolveEncoder, type EncoderOptions } from '../encoders/registry.js';
import { UserError } from '../util/errors.js';
import { median } from '../util/stats.js';
import { DEFAULT_BATCH, extractFeatures } from '../features/extract.js';
import { createEncoderRunner } from '../features/node-onnxruntime.js';
import { torchPeerCommand, torchPeerPath } from './torch-peer.js';

export interface FeaturesBenchOptions {
  /** Folder of JPEG files. */
  images: string;
  /** Number of images: the first N by name. */
  limit: number;
  /** Images per inference batch, both sides. */
  batch: number;
  /** Compute threads, both sides (onnxruntime intra-op / torch.set_num_threads). */
  threads: number;
  /** Timed repeats per side; medians are reported. */
  repeats: number;
  /** onnxruntime threads spin-wait between ops (as `sat features --spin`). */
  spin: boolean;
  /** Python with PyTorch and torchvision for the peer, or null to measure ours only. */
  python: string | null;
  encoder: EncoderOptions;
}

export const FEATURES_BENCH_DEFAULTS = {
  limit: 64,
  batch: DEFAULT_BATCH,
  threads: 2,
  repeats: 3,
  python: '/usr/bin/python3',
} as const;

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

export async function runFeaturesBench(opts: FeaturesBenchOptions): Promise<FeaturesBenchResult> {
  const { images: dir, limit, batch, threads, repeats } = opts;
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`--images ${dir}: not a folder.`);
  const files = fs
    .readdirSync(dir)
    .filter((f) => /\.jpe?g$/i.test(f))
    .sort()
    .slice(0, limit);
  if (files.length === 0) throw new UserError(`--images ${dir} has no .jpg/.jpeg files.`);
  const images = files.map((f) => ({ id: f, path: path.resolve(dir, f) }));

  const model = await resolveEncoder(opts.encoder);
  const torchArch = opts.python === null ? null : peerArch(model.spec.id);
  const runner = await createEncoderRunner(model, { threads, spin: opts.spin });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-bench-features-'));
  const runs: number[] = [];
  const cpu: number[] = [];
  const torchRuns: number[] = [];
  const torchCpu: number[] = [];
  try {
    const once = async (name: string, list = images) => {
      const res = await extractFeatures({
        images: list,
        model,
        runner,
        dir: path.join(tmp, name),
        batchSize: batch,
        progress: false,
        log: () => {},
      });
      if (res.stored !== list.length)
        throw new UserError(
          `bench: ${list.length - res.stored} of the images in ${dir} could not be read: ${res.skipped[0]?.reason}`,
        );
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
        const t = await runTorch(opts.python!, {
          images: dir,
          limit,
          batch,
          threads,
          arch: torchArch,
          layer: opts.encoder.layer,
        });
        torchRuns.push(t.images_per_s);
        torchCpu.push(t.cpu_s_per_image);
        process.stderr.write(
          `bench features: PyTorch ${t.images_per_s.toFixed(2)} img/s (repeat ${r + 1}/${repeats})\n`,
        );
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
    images_per_s: round(ours),
    torch_images_per_s: torch === null ? null : round(torch),
    ratio: torch === null ? null : round(ours / torch),
    encoder: model.spec.id,
    images: images.length,
    batch,
    threads,
    runs: runs.map(round),
    torch_runs: torchRuns.map(round),
    torch_arch: torchArch,
    cpu_s_per_image: round(median(cpu)),
    torch_cpu_s_per_image: torchCpu.length ? round(median(torchCpu)) : null,
  };
}

/** The torchvision architecture matching an encoder id, or null when the peer has none. */
function peerArch(encoderId: string): string | null {
  if (encoderId.startsWith('inception_v3')) return 'inception_v3';
  if (encoderId.startsWith('mobilenet_v2')) return 'mobilenet_v2';
  process.stderr.write(`bench features: no PyTorch peer for encoder "${encoderId}"; measuring ours only\n`);
  return null;
}

async function runTorch(
  python: string,
  o: { images: string; limit: number; batch: number; threads: number; arch: string; layer?: string },
): Promise<{ images_per_s: number; cpu_s_per_image: number }> {
  const peer = torchPeerCommand(python, 'features_torch', [
    '--images',
    torchPeerPath(o.images),
    '--limit',
    String(o.limit),
    '--batch',
    String(o.batch),
    '--threads',
    String(o.threads),
    '--arch',
    o.arch,
  ]);
  if (o.arch === 'inception_v3' && o.layer) peer.args.push('--layer', o.layer);
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)(peer.command, peer.args, { maxBuffer: 1 << 20, cwd: peer.cwd }));
  } catch (e) {
    throw new UserError(
      `The PyTorch peer failed (${python} ${peer.script}): ${(e as Error).message.split('\n').slice(-3).join(' ')}\n` +
        'Point --python at a Python with torch and torchvision (e.g. /usr/bin/python3 with the python3-torch and ' +
        'python3-torchvision packages, or `pip install torch torchvision`), or pass --no-torch.',
    );
  }
  return JSON.parse(stdout.trim().split('\n').pop()!) as { images_per_s: number; cpu_s_per_image: number };
}

const round = (x: number) => Math.round(x * 1000) / 1000;

export function formatFeaturesBench(r: FeaturesBenchResult): string {
  const lines = [
    `${r.encoder}: ${r.images_per_s} img/s (median of ${r.runs.length}: ${r.runs.join(', ')}), ` +
      `${r.cpu_s_per_image} CPU s/img, ${r.images} JPEGs, batch ${r.batch}, ${r.threads} threads`,
  ];
  if (r.torch_images_per_s !== null) {
    lines.push(
      `PyTorch ${r.torch_arch}: ${r.torch_images_per_s} img/s (median of ${r.torch_runs.length}: ${r.torch_runs.join(', ')}), ${r.torch_cpu_s_per_image} CPU s/img`,
    );
    lines.push(`ratio: ${r.ratio}x`);
  }
  return lines.join('\n');
}
