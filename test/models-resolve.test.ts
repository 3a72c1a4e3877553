/**
 * What a model source names (src/models/source.ts): nothing is the shipped model, a NAME a shipped or cached model,
 * a path a bundle or a checkpoint (run folder, checkpoints folder, .safetensors, .json), anything else a refusal that
 * lists the installed models; loadCaptioner and `sat caption` load by name and say which model captioned.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { checkpointModelId } from '../src/checkpoint/source.js';
import { DEFAULT_MODEL_NAME } from '../src/models/default-model.js';
import { listInstalledModels, removeInstalledModel } from '../src/models/installed.js';
import { loadCaptioner } from '../src/models/load-captioner.js';
import { resolveModelSource } from '../src/models/source.js';
import { defaultModelUrl } from '../src/web/index.js';
import { sat } from './helpers/cli-run.js';
import { makeBundleFixture, type BundleFixture } from './helpers/models-fixture.js';
import { setEnv } from './helpers/scoped-env.js';

let dir: string;
let fx: BundleFixture;
let shippedDir: string;
let cacheModelsDir: string;

/** Puts SAT_CACHE back after: other test files may share this process (test/run.mjs). */
let restoreCache = () => {};

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-models-'));
  restoreCache = setEnv('SAT_CACHE', path.join(dir, 'cache'));
  fx = await makeBundleFixture(path.join(dir, 'fx'));
  // A shipped folder holding the default model, and a cache holding "mine" and a same-named copy of the default.
  shippedDir = path.join(dir, 'shipped');
  cacheModelsDir = path.join(dir, 'cache', 'models');
  for (const to of [
    path.join(shippedDir, DEFAULT_MODEL_NAME),
    path.join(cacheModelsDir, 'mine'),
    path.join(cacheModelsDir, DEFAULT_MODEL_NAME),
  ]) {
    fs.cpSync(fx.bundle, to, { recursive: true });
  }
});

after(() => {
  restoreCache();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('nothing names the shipped model; a missing one is refused with the fix', async () => {
  const m = await resolveModelSource(undefined, { shippedDir, cacheModelsDir });
  assert.deepEqual(m, {
    kind: 'bundle',
    path: path.join(shippedDir, DEFAULT_MODEL_NAME),
    name: DEFAULT_MODEL_NAME,
    origin: 'shipped',
    id: fx.id,
  });
  await assert.rejects(
    resolveModelSource(undefined, { shippedDir: path.join(dir, 'nowhere'), cacheModelsDir }),
    /the shipped model flickr8k-mobilenet-v2 is missing .*Reinstall show-attend-tell, or name a model/,
  );
});

test('a NAME is a shipped model first, then a cached one', async () => {
  const shipped = await resolveModelSource(DEFAULT_MODEL_NAME, { shippedDir, cacheModelsDir });
  assert.equal(shipped.origin, 'shipped');
  assert.equal(shipped.path, path.join(shippedDir, DEFAULT_MODEL_NAME));
  const mine = await resolveModelSource('mine', { shippedDir, cacheModelsDir });
  assert.deepEqual(mine, {
    kind: 'bundle',
    path: path.join(cacheModelsDir, 'mine'),
    name: 'mine',
    origin: 'cache',
    id: fx.id,
  });
  // The listing shows each name once: the cached copy of the shipped name is hidden by the shipped model.
  const listed = listInstalledModels({ shippedDir, cacheModelsDir });
  assert.deepEqual(
    listed.map((m) => [m.name, m.origin, m.isDefault]),
    [
      [DEFAULT_MODEL_NAME, 'shipped', true],
      ['mine', 'cache', false],
    ],
  );
  assert.deepEqual(listed[1].card?.scores, { 'BLEU-4': 1 });
  assert.ok(listed[1].bytes > 0);
});

test('paths: a bundle folder or its manifest.json, a run folder, a checkpoints folder, a .safetensors or its .json', async () => {
  const bundle = await resolveModelSource(fx.bundle);
  assert.deepEqual(bundle, { kind: 'bundle', path: fx.bundle, origin: 'path', id: fx.id });
  assert.equal((await resolveModelSource(path.join(fx.bundle, 'manifest.json'))).path, fx.bundle);
  const best = path.join(fx.run, 'checkpoints', 'best.safetensors');
  for (const source of [
    fx.run,
    path.join(fx.run, 'checkpoints'),
    best,
    path.join(fx.run, 'checkpoints', 'best.json'),
  ]) {
    const m = await resolveModelSource(source);
    assert.deepEqual(m, { kind: 'checkpoint', path: best, origin: 'path', id: fx.id }, source);
  }
  assert.equal(checkpointModelId(best), fx.id, 'a checkpoint and its export carry one id');
  const empty = path.join(dir, 'empty');
  fs.mkdirSync(empty);
  await assert.rejects(
    resolveModelSource(empty),
    /empty holds neither a bundle \(no manifest\.json\) nor a checkpoint/,
  );
});

test('a path wins over a model of the same name', async () => {
  const cwd = process.cwd();
  const here = path.join(dir, 'cwd');
  fs.cpSync(fx.run, path.join(here, 'mine'), { recursive: true });
  process.chdir(here);
  try {
    assert.equal((await resolveModelSource('mine', { shippedDir, cacheModelsDir })).kind, 'checkpoint');
  } finally {
    process.chdir(cwd);
  }
});

test('an unknown name lists the installed models and the other kinds of source', async () => {
  await assert.rejects(
    resolveModelSource('nope', { shippedDir, cacheModelsDir }),
    (e: Error) =>
      /model "nope" is neither a file or folder nor an installed model\. Installed models: flickr8k-mobilenet-v2 \(shipped, default\), mine \(cache\)\./.test(
        e.message,
      ) && /a run folder.*https URL of a bundle's manifest\.json/.test(e.message),
  );
  await assert.rejects(
    resolveModelSource('nope', { shippedDir: path.join(dir, 'nowhere'), cacheModelsDir: path.join(dir, 'nowhere') }),
    /No models are installed\./,
  );
});

test('loadCaptioner and sat caption load a cached model by name and say which model captioned', async () => {
  const captioner = await loadCaptioner('mine');
  try {
    assert.equal(captioner.info.modelId, fx.id);
    assert.equal(captioner.info.modelName, 'mine');
    assert.equal((await captioner.caption(fx.images.red)).caption, 'a red square');
  } finally {
    await captioner.dispose();
  }
  const json = JSON.parse(await sat(['caption', '--model', 'mine', '--json', fx.images.blue]));
  assert.deepEqual(json.model, { id: fx.id, name: 'mine', origin: 'cache', path: path.join(cacheModelsDir, 'mine') });
  assert.equal(json.captions[0].caption, 'a blue circle on the left');
});

test('remove deletes a cached model, refuses a shipped one, and lists the installed ones for an unknown name', () => {
  const places = { shippedDir, cacheModelsDir };
  assert.throws(
    () => removeInstalledModel(DEFAULT_MODEL_NAME, places),
    /is the model shipped in the package .*cannot be removed/,
  );
  fs.cpSync(fx.bundle, path.join(cacheModelsDir, 'doomed'), { recursive: true });
  assert.equal(removeInstalledModel('doomed', places).origin, 'cache');
  assert.equal(fs.existsSync(path.join(cacheModelsDir, 'doomed')), false);
  assert.deepEqual(fs.readdirSync(cacheModelsDir).sort(), [DEFAULT_MODEL_NAME, 'mine']);
  assert.throws(
    () => removeInstalledModel('doomed', places),
    /no model named "doomed" is installed\. Installed models: .*mine \(cache\)/,
  );
});

test("in browsers the shipped model is found beside the script, in the installed package's models/ folder", () => {
  assert.equal(
    defaultModelUrl('https://cdn.example/npm/show-attend-tell@0.1.0/dist/web/show-attend-tell.mjs'),
    `https://cdn.example/npm/show-attend-tell@0.1.0/models/${DEFAULT_MODEL_NAME}/`,
  );
  assert.equal(
    defaultModelUrl('http://localhost:8080/node_modules/show-attend-tell/dist/web/show-attend-tell.mjs'),
    `http://localhost:8080/node_modules/show-attend-tell/models/${DEFAULT_MODEL_NAME}/`,
  );
});
