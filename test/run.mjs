/**
 * `npm test`'s test runner: every test/*.test.ts through `node --import tsx --test --test-concurrency=2`, most of
 * the in-process ones sharing a few processes (SHARED), every other file in a process of its own.
 *
 * Why: each test process pays Node's start and tsx's loader (on Node 20 its hooks run on a thread of their own),
 * about 0.3 CPU-s; twelve small files cost 5.4 CPU-s as twelve processes and 1.6 as one. A shared process runs each
 * of its files inside a describe named for the file, so a file's top-level before/after hooks stay its own, and its
 * tests run one after another as they do alone. Files that spawn processes, drive Chromium, or set process-wide state
 * (environment, matmul backend or threads, global fetch, signal handlers) stay alone. A new test file runs alone
 * until it is added to a group; a group member that no longer exists is an error.
 *
 *   node test/run.mjs [node --test options ...]     e.g. --test-name-pattern=resume
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SHARED = {
  'train-model-encoders-dataset': [
    'eval-run',
    'encoders-hdf5',
    'encoders-inception',
    'train-self-critical',
    'train-native',
    'train-init-state',
    'train-loop',
    'train-gru-state',
    'train-checkpoint',
    'model-gradcheck',
    'model-native',
    'model-gru-state',
    'model-torch-reference',
    'model-parameter-table',
    'encoders-parsers',
    'encoders-mobilenet',
    'encoders-onnx',
    'export-onnx-rewrite-input',
    'dataset-shapes',
    'dataset-prepare',
    'dataset-zip',
    'dataset-readers',
    'dataset-malformed',
  ],
  'decode-serve-features-metrics': [
    'serve-shared-bundle',
    'decode-ensemble',
    'public-api',
    'serve-hardening',
    'serve-http',
    'features-resize-parity',
    'models-shipped',
    'finetune-init',
    'decode-caption',
    'features-cli',
    'decode-options',
    'decode-search',
    'decode-figure',
    'decode-alternatives',
    'decode-native',
    'eval-attention',
    'metrics-coco',
    'metrics-ptb-tokenizer',
    'metrics-score',
    'features-fp16',
    'checkpoint-safetensors',
    'vocab-vocabulary',
    'bench-torch-peer',
    'util',
    'export-manifest',
    'features-store',
  ],
};
/** Files alone that take longest, started first so that the run does not end waiting on one of them. */
const SLOW_FIRST = ['model-production-shapes', 'train-resume-native', 'serve-page', 'export-bundle', 'disk-full'];

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const testDir = path.join(root, 'test');
const all = fs
  .readdirSync(testDir)
  .filter((n) => n.endsWith('.test.ts'))
  .map((n) => n.slice(0, -'.test.ts'.length))
  .sort();
const shared = new Set(Object.values(SHARED).flat());
const missing = [...shared].filter((n) => !all.includes(n));
if (missing.length > 0) {
  console.error(`test/run.mjs: SHARED names ${missing.join(', ')}, which are not in test/: update the list.`);
  process.exit(2);
}
const groupDir = path.join(root, '.cache', 'test-groups');
fs.mkdirSync(groupDir, { recursive: true });
const groups = Object.entries(SHARED).map(([name, members]) => {
  const file = path.join(groupDir, `${name}.test.mjs`);
  const urls = members.map((n) => pathToFileURL(path.join(testDir, `${n}.test.ts`)).href);
  fs.writeFileSync(
    file,
    "// written by test/run.mjs: one describe per test file, each file's hooks scoped to it\n" +
      "import { describe } from 'node:test';\n" +
      `for (const url of ${JSON.stringify(urls, null, 1)})\n` +
      "  describe(url.slice(url.lastIndexOf('/test/') + 1), async () => {\n    await import(url);\n  });\n",
  );
  return file;
});
const alone = all.filter((n) => !shared.has(n));
alone.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
function rank(name) {
  const i = SLOW_FIRST.indexOf(name);
  return i < 0 ? SLOW_FIRST.length : i;
}
const files = [...groups, ...alone.map((n) => path.join('test', `${n}.test.ts`))];
const args = ['--import', 'tsx', '--test', '--test-concurrency=2', ...process.argv.slice(2), ...files];
const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exitCode = result.status ?? 1;
