/**
 * The public surface of the package: the names src/index.ts exports (the entry `show-attend-tell`), pinned so that a
 * change to them is deliberate: adding or removing one means editing the lists below in the same commit. Internals
 * go to src/internals.ts (`show-attend-tell/internals`), which is not pinned.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import ts from 'typescript';

const PUBLIC_VALUES = [
  'CAPTIONER_BACKENDS',
  'CAPTION_OPTION_LIMITS',
  'DEFAULT_CAPTIONER_BACKEND',
  'DATASET_KINDS',
  'DEFAULT_ENCODER',
  'DEFAULT_MODEL_NAME',
  'DEFAULT_SERVE_OPTIONS',
  'ENCODERS',
  'GRU_STATES',
  'INIT_STATES',
  'Vocabulary',
  'buildBundle',
  'createModel',
  'decodeImages',
  'decodeVocab',
  'evaluate',
  'extractFeatures',
  'imagesOf',
  'installModelFromUrl',
  'listInstalledModels',
  'loadCaptioner',
  'loadCaptionerEngine',
  'loadCheckpoint',
  'loadRun',
  'openFeatureStore',
  'prepareRun',
  'readManifest',
  'removeInstalledModel',
  'renderAttentionFigure',
  'resolveEncoder',
  'resolveModelSource',
  'restoreModel',
  'runDemo',
  'saveCheckpoint',
  'scoreCaptions',
  'startServer',
  'tokenize',
  'train',
  'writeBundle',
];
const PUBLIC_TYPES = [
  'Bundle',
  'BundleManifest',
  'CaptionAlternativeText',
  'CaptionEngine',
  'CaptionModel',
  'CaptionOptions',
  'CaptionResult',
  'CaptionStreamOptions',
  'CaptionedImage',
  'CaptionServer',
  'CaptionWord',
  'Captioner',
  'CaptionerBackend',
  'CaptionerInfo',
  'Dataset',
  'DatasetImage',
  'DecodeOptions',
  'DecodeVocab',
  'DecodedCaption',
  'EncoderModel',
  'EncoderOptions',
  'EncoderSpec',
  'EvaluateOptions',
  'EvaluateResult',
  'FeatureStoreReader',
  'GruState',
  'InitState',
  'InstallOptions',
  'InstalledModel',
  'LoadCaptionerOptions',
  'LoadedRun',
  'ModelCard',
  'ModelConfig',
  'ModelOrigin',
  'ModelSource',
  'NodeImageInput',
  'PrepareOptions',
  'RgbImage',
  'RunInfo',
  'Scores',
  'ServeOptions',
  'Split',
  'TrainOptions',
  'TrainOutcome',
];

const entry = new URL('../src/index.ts', import.meta.url);

/** The export names of src/index.ts by kind, read from its export declarations (it re-exports by name only). */
function declaredExports(): { values: string[]; types: string[] } {
  const source = ts.createSourceFile('index.ts', fs.readFileSync(entry, 'utf8'), ts.ScriptTarget.ES2022, false);
  const values: string[] = [],
    types: string[] = [];
  for (const statement of source.statements) {
    if (!ts.isExportDeclaration(statement)) {
      const exported =
        ts.canHaveModifiers(statement) &&
        ts.getModifiers(statement)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
      assert.ok(
        !exported,
        `src/index.ts declares an export of its own at "${statement.getText(source).slice(0, 60)}": re-export it from its module`,
      );
      continue;
    }
    const clause = statement.exportClause;
    assert.ok(
      clause && ts.isNamedExports(clause),
      `src/index.ts has "export *": name every public export (${statement.getText(source)})`,
    );
    for (const element of clause.elements)
      (statement.isTypeOnly || element.isTypeOnly ? types : values).push(element.name.text);
  }
  return { values: values.sort(), types: types.sort() };
}

test('src/index.ts exports exactly the pinned public names (edit the lists here to change the surface)', () => {
  const { values, types } = declaredExports();
  assert.deepEqual(values, [...PUBLIC_VALUES].sort());
  assert.deepEqual(types, [...PUBLIC_TYPES].sort());
});

test('the entry module, loaded, has exactly the pinned values', async () => {
  const api = await import(entry.href);
  assert.deepEqual(Object.keys(api).sort(), [...PUBLIC_VALUES].sort());
  for (const name of PUBLIC_VALUES) assert.notEqual(api[name], undefined, name);
});

test('the example of the @file comment uses only public names', () => {
  const text = fs.readFileSync(entry, 'utf8');
  const example = /import \{([^}]*)\}\s*\*?\s*from 'show-attend-tell'/.exec(text.replace(/\n \*\s+/g, ' '));
  assert.ok(example, 'src/index.ts opens with an example importing from show-attend-tell');
  for (const name of example[1]
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean))
    assert.ok(PUBLIC_VALUES.includes(name), name);
});

test('package.json publishes the entry, the browser entry, the internals and the shipped models, and nothing else of dist/src', () => {
  const manifest = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    exports: Record<string, unknown>;
  };
  assert.deepEqual(Object.keys(manifest.exports).sort(), [
    '.',
    './internals',
    './models/*',
    './package.json',
    './web',
    './web/*',
  ]);
});

test('show-attend-tell/internals loads and repeats no public name', async () => {
  const internals = await import(new URL('../src/internals.ts', import.meta.url).href);
  assert.ok(Object.keys(internals).length > 0);
  for (const name of Object.keys(internals))
    assert.ok(!PUBLIC_VALUES.includes(name), `${name} is public: export it from src/index.ts only`);
});
