/** The captioning model: `createModel(config, {seed})` returns the native (CBLAS) implementation. */
import { NativeCaptionModel } from './native-model.js';
import type { CaptionModel, ModelConfig } from './types.js';

export * from './types.js';
export { PARAMETER_ORDER, RENAMED_PARAMETERS } from './binding.js';
export { parameterShapes } from './params.js';

export function createModel(config: ModelConfig, opts: { seed?: number } = {}): CaptionModel {
  return new NativeCaptionModel(config, opts.seed ?? 42);
}
