/**
 * @file `show-attend-tell/internals`: building blocks below the front door (src/index.ts), for tools built on this
 * package that need them. Unstable: they change with the code that uses them, without a semver promise. Anything
 * not exported here or from src/index.ts is private.
 */
// datasets
export { readDataset } from './dataset/prepare.js';
export { generateShapesDataset, loadShapesAnnotations } from './dataset/shapes.js';
export type { InputScaling } from './encoders/types.js';

// the model's step interface (what decoding and training call)
export type { TrainBatch, DecoderState, StepOutput } from './model/types.js';

// captioning internals: option checks, bundles already read, the service's engine
export { checkCaptionOptions } from './decode/captioner-api.js';
export { loadBundleCaptioner, loadLocatedCaptioner } from './models/load-captioner.js';
export { locateModel } from './models/source.js';
export type { ModelLocation, ResolveModelOptions } from './models/source.js';
export { readBundleFolder } from './export/bundle-folder.js';
export type { BatchResult } from './serve/engine.js';

// metrics on tokenised captions; the pixel helpers behind attention figures
export { scoreTokenized } from './metrics/score.js';
export { attentionGrid, upsampleBilinear, heatMap, heatColour } from './figures/heat.js';
