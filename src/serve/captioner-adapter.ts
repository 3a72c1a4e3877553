/**
 * CaptionEngine over the Captioner API (`loadCaptioner`, src/models/load-captioner.ts): a run folder, a checkpoint or an
 * export bundle, on the native decoder or onnxruntime-node; or a bundle already in memory (`sat serve` exports a
 * checkpoint once and shares the bytes with every model thread).
 *
 *   images RGB [N, S, S, 3] -> Captioner.captionBatch: one encoder batch [N, L, C], one decoder batch of
 *   N images x k beams -> captions with words, attention and the beam's alternatives
 */
import fs from 'node:fs';
import { checkpointWeightsFile } from '../checkpoint/checkpoint.js';
import type { Captioner, CaptionerInfo, CaptionOptions } from '../decode/captioner-api.js';
import type { EncoderOptions } from '../encoders/registry.js';
import type { Bundle } from '../export/bundle-backend.js';
import { isBundleFolder, readManifest } from '../export/bundle-folder.js';
import {
  DEFAULT_CAPTIONER_BACKEND,
  loadBundleCaptioner,
  loadCaptioner,
  type CaptionerBackend,
  type NodeImageInput,
} from '../models/load-captioner.js';
import type { BundleManifest } from '../export/manifest.js';
import { loadBinding } from '../model/binding.js';
import type { BatchResult, CaptionEngine } from './engine.js';

export interface EngineOptions {
  /** 'native' or 'onnx'; a bundle runs on 'onnx' only. Default: DEFAULT_CAPTIONER_BACKEND ('onnx'). */
  backend?: CaptionerBackend;
  /** Fills in what a checkpoint cannot say about its encoder (weights folder, user .onnx flags); not for bundles. */
  encoder?: EncoderOptions;
  /** onnxruntime intra-op threads (the encoder; with backend 'onnx' also the decoder). */
  threads?: number;
  /** OpenBLAS threads of the native decoder (process-wide). */
  blasThreads?: number;
}

/**
 * Loads `source` as a CaptionEngine. With `exported` (the bundle `source` was exported to, e.g. shared by the
 * thread that exported it), backend 'onnx' runs those bytes instead of exporting the checkpoint again.
 */
export async function loadCaptionerEngine(
  source: string,
  opts: EngineOptions = {},
  exported?: Bundle,
): Promise<CaptionEngine> {
  const backend = opts.backend ?? DEFAULT_CAPTIONER_BACKEND;
  if (backend === 'native' && opts.blasThreads !== undefined)
    loadBinding().setThreads(opts.blasThreads, opts.blasThreads);
  const captioner =
    exported && backend === 'onnx'
      ? await loadBundleCaptioner(exported, source, { threads: opts.threads })
      : await loadCaptioner(source, { backend, encoder: opts.encoder, threads: opts.threads });
  // a bundle in memory names no folder: the source is the model it was exported from
  const info: CaptionerInfo = {
    ...captioner.info,
    source: captioner.info.backend === 'native' ? captioner.info.source : source,
  };
  const details = isBundleFolder(source) ? bundleDetails(readManifest(source)) : checkpointDetails(source);
  return new CaptionerEngine(captioner, info, details);
}

function bundleDetails(m: BundleManifest): Record<string, unknown> {
  return { format: m.format, createdAt: m.createdAt, dtype: m.dtype, decoder: m.model, source: m.source };
}

/** What the JSON beside the checkpoint that loadCaptioner picks (best before latest) says about it. */
function checkpointDetails(source: string): Record<string, unknown> {
  let meta: { format?: string; createdAt?: string; model?: unknown; progress?: { epoch?: number; best?: unknown } };
  try {
    meta = JSON.parse(fs.readFileSync(checkpointWeightsFile(source).replace(/\.safetensors$/, '.json'), 'utf8'));
  } catch {
    return {};
  }
  return {
    format: meta.format,
    createdAt: meta.createdAt,
    decoder: meta.model,
    epochs: meta.progress?.epoch ?? null,
    best: meta.progress?.best ?? null,
  };
}

class CaptionerEngine implements CaptionEngine {
  private disposed = false;

  constructor(
    private readonly captioner: Captioner<NodeImageInput>,
    readonly info: CaptionerInfo,
    readonly details: Record<string, unknown>,
  ) {}

  async captionBatch(images: Uint8Array[], options: CaptionOptions): Promise<BatchResult> {
    const size = this.info.inputSize;
    const t0 = performance.now();
    const captions = await this.captioner.captionBatch(
      images.map((data) => ({ data, width: size, height: size, channels: 3 as const })),
      options,
    );
    return { captions, modelMs: performance.now() - t0 };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.captioner.dispose();
  }
}
