/**
 * @file show-attend-tell as a library: the front door. Only what this file exports is public (semver applies);
 * every other module is private, and the unstable internals that tools built on the package may need are
 * `show-attend-tell/internals` (src/internals.ts, no compatibility promise). test/public-api.test.ts pins this list.
 * Browsers use `show-attend-tell/web`.
 *
 * The whole pipeline, as `sat demo` runs it (synthetic shapes images, an encoder bundled in node_modules, no network):
 *
 *   import { prepareRun, resolveEncoder, extractFeatures, train, loadCaptioner, loadCaptionerEngine, startServer }
 *     from 'show-attend-tell';
 *
 *   const run = await prepareRun({ dataset: 'shapes', out: 'runs/shapes', images: 600 });   // vocabulary, splits
 *   const encoder = await resolveEncoder({ layer: 'mixed2', size: 96 });                    // InceptionV3 as ONNX
 *   await extractFeatures({ images: run.images, model: encoder, dir: `runs/shapes/features/${encoder.spec.id}` });
 *   await train({ runDir: 'runs/shapes', overrides: { epochs: 8 } });                      // runs/shapes/checkpoints
 *
 *   const captioner = await loadCaptioner('runs/shapes');       // a run, a checkpoint, a bundle, a model name or URL;
 *                                                                // loadCaptioner() alone: the shipped Flickr8k model
 *   const { caption, words } = await captioner.caption(run.images[0].path, { beam: 3 });
 *   console.log(caption, words.map((w) => w.word));
 *   await captioner.dispose();
 *
 *   const server = await startServer(() => loadCaptionerEngine('runs/shapes'), { port: 8080 });  // as `sat serve`
 *   console.log(`POST images to ${server.url}/v1/captions`);
 *
 * Groups below follow the data: dataset → features → model and training → checkpoints → captioning and export →
 * evaluation → serving.
 */
// dataset → run directory (vocabulary, captions as token ids, splits by image)
export { prepareRun, loadRun, imagesOf, DATASET_KINDS } from './dataset/prepare.js';
export type { PrepareOptions, RunInfo, LoadedRun } from './dataset/prepare.js';
export type { Dataset, DatasetImage, Split } from './dataset/types.js';
export { Vocabulary, tokenize } from './vocab/vocabulary.js';

// image encoders (ONNX graphs built in TypeScript) → cached fp16 features
export { resolveEncoder, ENCODERS, DEFAULT_ENCODER } from './encoders/registry.js';
export type { EncoderOptions } from './encoders/registry.js';
export type { EncoderSpec, EncoderModel } from './encoders/types.js';
export { extractFeatures } from './features/extract.js';
export { openFeatureStore } from './features/store.js';
export type { FeatureStoreReader } from './features/types.js';

// the native model and its training loop; checkpoints
export { createModel } from './model/index.js';
export type { CaptionModel, ModelConfig, GruState, InitState } from './model/types.js';
export { GRU_STATES, INIT_STATES } from './model/types.js';
export { train } from './train/train.js';
export type { TrainOptions, TrainOutcome } from './train/train.js';
export { runDemo } from './demo/demo.js';
export { saveCheckpoint, loadCheckpoint, restoreModel } from './checkpoint/checkpoint.js';

// captioning: one Captioner API on the native addon or onnxruntime (bundles from `sat export`), and stored features
export { loadCaptioner, CAPTIONER_BACKENDS, DEFAULT_CAPTIONER_BACKEND } from './models/load-captioner.js';
export type { LoadCaptionerOptions, NodeImageInput, RgbImage, CaptionerBackend } from './models/load-captioner.js';
export { CAPTION_OPTION_LIMITS } from './decode/captioner-api.js';
// models by name, path or URL: the shipped default, the cache, installs from a bundle's manifest URL (docs/models.md)
export { resolveModelSource } from './models/source.js';
export type { ModelSource, ModelOrigin } from './models/source.js';
export { listInstalledModels, removeInstalledModel } from './models/installed.js';
export type { InstalledModel } from './models/installed.js';
export { installModelFromUrl } from './models/install.js';
export type { InstallOptions } from './models/install.js';
export { DEFAULT_MODEL_NAME } from './models/default-model.js';
export type {
  Captioner,
  CaptionOptions,
  CaptionResult,
  CaptionWord,
  CaptionAlternativeText,
  CaptionerInfo,
  CaptionedImage,
} from './decode/captioner-api.js';
export type { CaptionStreamOptions } from './decode/caption-stream.js';
export { decodeImages, decodeVocab } from './decode/index.js';
export type { DecodeOptions, DecodedCaption, DecodeVocab } from './decode/index.js';
export { buildBundle, writeBundle } from './export/bundle.js';
export { readManifest } from './export/bundle-folder.js';
export type { Bundle } from './export/bundle-backend.js';
export type { BundleManifest, ModelCard } from './export/manifest.js';

// evaluation: metrics and attention figures
export { evaluate } from './eval/evaluate.js';
export type { EvaluateOptions, EvaluateResult } from './eval/evaluate.js';
export { scoreCaptions } from './metrics/score.js';
export type { Scores } from './metrics/score.js';
export { renderAttentionFigure } from './figures/attention.js';

// serving: the HTTP captioning service behind `sat serve`
export { startServer, DEFAULT_SERVE_OPTIONS } from './serve/server.js';
export type { ServeOptions, CaptionServer } from './serve/server.js';
export type { CaptionEngine } from './serve/engine.js';
export { loadCaptionerEngine } from './serve/captioner-adapter.js';
