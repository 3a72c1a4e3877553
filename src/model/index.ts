/**
 * The captioning model: `createModel(config, {seed, precision})` returns the native implementation (oneDNN or
 * CBLAS matmuls); `precision` applies to its training steps (src/model/precision.ts), decoding is fp32.
 */
import { NativeCaptionModel } from './native-model.js';
import type { CaptionModel, ModelConfig } from './types.js';
import type { Precision } from './binding.js';

export * from './types.js';
export { PARAMETER_ORDER, RENAMED_PARAMETERS, parameterShapes, type ParameterName } from './params.js';
export {
  PRECISION_CHOICES,
  bf16Unavailable,
  resolvePrecision,
  type PrecisionChoice,
  type ResolvedPrecision,
  type TrainingPrecision,
} from './precision.js';
export type { Precision } from './binding.js';

export function createModel(config: ModelConfig, opts: { seed?: number; precision?: Precision } = {}): CaptionModel {
  return new NativeCaptionModel(config, opts.seed ?? 42, opts.precision ?? 'fp32');
}
