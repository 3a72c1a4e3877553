/**
 * show-attend-tell as a library: the same pipeline the `sat` CLI runs, one stage per export group,
 * in the order data flows: dataset → features → model/training → checkpoint → decoding → metrics.
 */
// dataset → run directory (vocabulary, captions as token ids, splits by image)
export { prepareRun, loadRun, imagesOf, readDataset, DATASET_KINDS } from './dataset/prepare.js';
export type { PrepareOptions, RunInfo, LoadedRun } from './dataset/prepare.js';
export type { Dataset, DatasetImage, Split } from './dataset/types.js';
export { generateShapesDataset, loadShapesAnnotations } from './dataset/shapes.js';
export { Vocabulary, tokenize } from './vocab/vocabulary.js';

// image encoders (ONNX graphs built in TypeScript) → cached fp16 features
export { resolveEncoder, ENCODERS, DEFAULT_ENCODER } from './encoders/registry.js';
export type { EncoderOptions } from './encoders/registry.js';
export type { EncoderSpec, EncoderModel, InputScaling } from './encoders/types.js';
export { extractFeatures } from './features/extract.js';
export { openFeatureStore } from './features/store.js';
export type { FeatureStoreReader } from './features/types.js';

// the native model and its training loop
export { createModel } from './model/index.js';
export type { CaptionModel, ModelConfig, GruState, InitState, TrainBatch, DecoderState, StepOutput } from './model/types.js';
export { GRU_STATES, INIT_STATES } from './model/types.js';
export { train } from './train/train.js';
export type { TrainOptions, TrainOutcome } from './train/train.js';
export { runDemo } from './demo/demo.js';
export { saveCheckpoint, loadCheckpoint, restoreModel } from './checkpoint/checkpoint.js';

// decoding, attention figures, evaluation and metrics
export { decodeImages } from './decode/index.js';
// one Captioner API on the native addon or onnxruntime (bundles from `sat export`; the browser entry is show-attend-tell/web)
export { loadCaptioner, loadBundleCaptioner, CAPTIONER_BACKENDS } from './export/load.js';
export type { LoadCaptionerOptions, NodeImageInput, RgbImage, CaptionerBackend } from './export/load.js';
export { checkCaptionOptions, CAPTION_OPTION_LIMITS } from './decode/captioner-api.js';
export type { Captioner, CaptionOptions, CaptionResult, CaptionWord, CaptionAlternativeText, CaptionerInfo } from './decode/captioner-api.js';
export { buildBundle, writeBundle } from './export/bundle.js';
export { readBundleFolder, readManifest } from './export/bundle-folder.js';
export type { Bundle } from './export/bundle-backend.js';
export type { BundleManifest } from './export/manifest.js';
export { attentionGrid, upsampleBilinear, heatMap, heatColour } from './figures/heat.js';
export { renderAttentionFigure } from './figures/attention.js';
export { evaluate } from './eval/evaluate.js';
export type { EvaluateOptions, EvaluateResult } from './eval/evaluate.js';
export { scoreCaptions, scoreTokenized } from './metrics/score.js';
export type { Scores } from './metrics/score.js';

// serving: the HTTP captioning service behind `sat serve`
export { startServer, DEFAULT_SERVE_OPTIONS } from './serve/server.js';
export type { ServeOptions, CaptionServer } from './serve/server.js';
export type { CaptionEngine } from './serve/engine.js';
export { loadCaptionerEngine } from './serve/captioner-adapter.js';
