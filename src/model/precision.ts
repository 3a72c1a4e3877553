/**
 * Training precision: 'fp32', or 'bf16' (the step's matrix products take bf16 operands with f32 accumulation,
 * on the oneDNN backend, on CPUs with bf16 instructions: AVX512-BF16 or AMX), or 'auto' (bf16 where it runs
 * natively, else fp32). Weights, gradients, Adam moments, softmax and loss are f32 in both; decoding is fp32.
 */
import { UserError } from '../util/errors.js';
import { loadBinding, type Precision } from './binding.js';

export type PrecisionChoice = Precision | 'auto';
export const PRECISION_CHOICES: readonly PrecisionChoice[] = ['fp32', 'bf16', 'auto'];

export interface ResolvedPrecision {
  precision: Precision;
  /** Why: the CPU feature or backend behind the choice, for the start-of-training report. */
  reason: string;
}

/** A training run's precision as its checkpoints record it: what was asked, what the steps ran in, and why. */
export interface TrainingPrecision {
  asked: PrecisionChoice;
  used: Precision;
  reason: string;
}

/** Why bf16 cannot run here, or null when it can. */
export function bf16Unavailable(): string | null {
  const info = loadBinding().gemmInfo();
  if (!info.onednn) return 'this build of the native core has no oneDNN (install libdnnl-dev, then `npm rebuild`)';
  if (info.backend !== 'onednn') return `the matmul backend is ${info.backend} (SAT_GEMM_BACKEND); bf16 needs onednn`;
  if (!info.onednn.nativeBf16) {
    return `this CPU has no bf16 instructions (AVX512-BF16 or AMX): oneDNN's ISA here is ${info.onednn.isa}`;
  }
  return null;
}

/** The precision a training run uses; 'bf16' where it cannot run is refused with the reason. */
export function resolvePrecision(choice: PrecisionChoice): ResolvedPrecision {
  if (choice === 'fp32') return { precision: 'fp32', reason: 'as asked' };
  const why = bf16Unavailable();
  if (choice === 'bf16') {
    if (why) throw new UserError(`precision bf16: ${why}. Use --precision fp32 (or auto, which picks fp32 here).`);
    return { precision: 'bf16', reason: `as asked (oneDNN ISA ${loadBinding().gemmInfo().onednn!.isa})` };
  }
  if (why) return { precision: 'fp32', reason: `auto: ${why}` };
  return {
    precision: 'bf16',
    reason: `auto: this CPU has bf16 instructions (oneDNN ISA ${loadBinding().gemmInfo().onednn!.isa})`,
  };
}
