/**
 * The package's glue to onnxruntime-node (CPU execution provider): the session options every Node session of this
 * package uses, onnxruntime-node as the runtime namespace the pure modules take, and the encoder of an
 * EncoderModel as an OnnxImageEncoder (src/features/onnx-encoder.ts). The only module of src/features that loads
 * onnxruntime-node; run-feature-store.ts, by contrast, says which feature store a run folder uses.
 */
import * as ort from 'onnxruntime-node';
import type { OrtNamespace } from '../encoders/onnx/runtime.js';
import type { EncoderModel } from '../encoders/types.js';
import { OnnxImageEncoder } from './onnx-encoder.js';

/**
 * onnxruntime's POSIX telemetry (1.30: core/platform/posix/telemetry.cc) runs when the first session creates the
 * runtime's environment: it matches std::regex patterns against the process's command line (/proc/self/cmdline),
 * and GCC's backtracking regex recurses once per character. A command line over about 30 KB (`sat caption
 * photos/*.jpg` with some 450 Flickr8k paths) overflows the main thread's 8 MB stack: SIGSEGV inside
 * libonnxruntime, about 87,000 frames deep. Telemetry is off here unless the user's environment sets it.
 */
process.env.ORT_DISABLE_TELEMETRY ??= '1';

export interface RunnerOptions {
  /** onnxruntime intra-op threads (the convolution thread pool). Default 2. */
  threads?: number;
  /**
   * Let idle pool threads spin-wait for the next op instead of sleeping. onnxruntime's default; it only
   * pays on an otherwise idle machine and burns CPU that other processes need on a shared one. Default off.
   */
  spin?: boolean;
}

/** onnxruntime-node session options: CPU, full graph optimisation, one inter-op thread, no spinning unless asked. */
export function nodeSessionOptions(opts: RunnerOptions = {}): object {
  const spin = opts.spin ? '1' : '0';
  return {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: opts.threads ?? 2,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } },
  };
}

/** onnxruntime-node as the runtime namespace the pure modules take. */
export const nodeOrt = ort as unknown as OrtNamespace;

/** The encoder's graph on onnxruntime-node. */
export function createEncoderRunner(model: EncoderModel, opts: RunnerOptions = {}): Promise<OnnxImageEncoder> {
  return OnnxImageEncoder.create(nodeOrt, model.spec, model.onnx, nodeSessionOptions(opts));
}
