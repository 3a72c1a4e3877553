/**
 * Decoder shapes for the model tests: a ModelConfig from its six sizes, the dims array the addon's trainStep takes,
 * and the two small shapes several tests share.
 *
 *   sizes [L, C, E, U, A, V]: locations, channels, embedding, GRU units, attention units, vocabulary
 *   dims  Int32 [B, T, L, C, E, U, A, V] (native/binding.cc)
 */
import { createModel } from '../../src/model/index.js';
import type { CaptionModel, ModelConfig } from '../../src/model/types.js';

export type ModelSizes = readonly [number, number, number, number, number, number];

/** The gradient-check shape: small enough for central differences on every parameter. */
export const GRADCHECK_SIZES: ModelSizes = [3, 5, 4, 6, 5, 7];
/** The small shape of the native-model, GRU-state and precision tests. */
export const SMALL_SIZES: ModelSizes = [5, 12, 8, 16, 10, 11];

/** A ModelConfig of `sizes`, dropout and the attention penalty off unless `rest` sets them. */
export function modelConfig([L, C, E, U, A, V]: ModelSizes, rest: Partial<ModelConfig> = {}): ModelConfig {
  return {
    locations: L,
    channels: C,
    embedDim: E,
    units: U,
    attentionUnits: A,
    vocabSize: V,
    dropout: 0,
    attentionLambda: 0,
    ...rest,
  };
}

/** trainStep's dims for a batch of B rows and T steps of a model of `config`. */
export function stepDims(config: ModelConfig, B: number, T: number): Int32Array {
  const { locations, channels, embedDim, units, attentionUnits, vocabSize } = config;
  return Int32Array.of(B, T, locations, channels, embedDim, units, attentionUnits, vocabSize);
}

/**
 * A seeded model with its weights scaled up (the embedding, which starts at +-0.05 as Keras' uniform, x30; the rest
 * x3), so that its distributions are peaked and the search's choices are not near-ties.
 */
export function peakedModel(config: ModelConfig, seed: number): CaptionModel {
  const model = createModel(config, { seed });
  for (const [name, t] of model.parameters()) {
    const scale = name.startsWith('embedding') ? 30 : 3;
    for (let i = 0; i < t.data.length; i++) t.data[i] *= scale;
  }
  return model;
}
