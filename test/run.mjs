/**
 * `npm test`'s test runner: every test/*.test.ts through `node --import tsx --test --test-concurrency=3`, in a few
 * processes of related files (SHARED); a file in no group runs in a process of its own.
 *
 * Why: each test process pays Node's start and tsx's loader (on Node 20 its hooks run on a thread of their own),
 * about 0.3 CPU-s; twelve small files cost 5.4 CPU-s as twelve processes and 1.6 as one. A shared process runs each
 * of its files inside a describe named for the file, so a file's top-level before/after hooks stay its own, and its
 * tests run one after another as they do alone. A test file that changes process-wide state (environment, working
 * folder, matmul backend or threads) puts it back when done (in a finally or an after hook), so that the next file
 * of its group starts as it would alone. A crash of the process (a native abort) fails every file after it in the
 * group: run the file alone to see it. A new test file runs alone until it is added to a group; a group member
 * that no longer exists is an error.
 *
 *   node test/run.mjs [node --test options ...]     e.g. --test-name-pattern=resume
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Groups of test files that share a process, the longest first. */
const SHARED = {
  browser: ['serve-page', 'site-static', 'web-chromium', 'models-web'],
  'serve-export': ['serve-sigterm', 'export-bundle', 'export-manifest'],
  train: [
    'eval-run',
    'train-resume-native',
    'train-self-critical',
    'train-native',
    'train-init-state',
    'train-loop',
    'train-examples',
    'train-gru-state',
    'train-checkpoint',
    'checkpoint-average',
  ],
  'model-native': [
    'model-production-shapes',
    'model-precision',
    'model-gradcheck',
    'model-gru-state',
    'model-torch-reference',
    'model-parameter-table',
    'model-backends',
    'bf16-reference',
    'native-binding-safety',
    'capabilities',
  ],
  'encoders-dataset': [
    'encoders-hdf5',
    'encoders-inception',
    'encoders-tflite',
    'encoders-parsers',
    'encoders-mobilenet',
    'encoders-registry',
    'encoders-onnx',
    'export-onnx-rewrite-input',
    'dataset-download',
    'dataset-shapes',
    'dataset-prepare',
    'dataset-zip',
    'dataset-readers',
    'dataset-malformed',
    'url-safety',
  ],
  'cli-processes': [
    'train-sigint',
    'disk-full',
    'folder-lock',
    'bench-train',
    'cli',
    'fuzz-harness',
    'caption-many',
    'features-extract',
  ],
  'serve-decode': [
    'serve-shared-bundle',
    'serve-hardening',
    'serve-linger',
    'serve-http',
    'decode-ensemble',
    'decode-caption',
    'decode-options',
    'decode-search',
    'decode-figure',
    'decode-alternatives',
    'decode-native',
    'eval-attention',
    'public-api',
  ],
  'features-models-metrics': [
    'features-resize-parity',
    'models-shipped',
    'finetune-init',
    'features-cli',
    'features-image-url',
    'features-store',
    'features-fp16',
    'models-install',
    'models-resolve',
    'metrics-coco',
    'metrics-ptb-tokenizer',
    'metrics-score',
    'checkpoint-safetensors',
    'vocab-vocabulary',
    'bench-torch-peer',
    'util',
  ],
};

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
      "// One import at a time: imports that overlap can evaluate a file inside another file's describe (they wait on\n" +
      '// shared modules), which moves its tests and hooks there.\n' +
      "import { describe } from 'node:test';\n" +
      `for (const url of ${JSON.stringify(urls, null, 1)})\n` +
      '  await new Promise((registered) =>\n' +
      "    describe(url.slice(url.lastIndexOf('/test/') + 1), async () => {\n" +
      '      try {\n        await import(url);\n      } finally {\n        registered();\n      }\n    }),\n' +
      '  );\n',
  );
  return file;
});
// model-native's profiling test starts a worker thread that loads the addon again: alone, so that nothing an
// earlier file left in the process can touch it (once in three runs of a group with the training files before it,
// its worker ended without its message; never alone).
const alone = all.filter((n) => !shared.has(n));
const files = [...groups, ...alone.map((n) => path.join('test', `${n}.test.ts`))];
// Three processes on two cores: many tests wait on servers, timers, Chromium or child processes, so a third
// process fills those waits (quiet 2-core machine: 40-44 s against 58-62 s with two; four lost a test once).
const args = ['--import', 'tsx', '--test', '--test-concurrency=3', ...process.argv.slice(2), ...files];
const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exitCode = result.status ?? 1;
