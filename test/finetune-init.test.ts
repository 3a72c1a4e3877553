/**
 * Fine-tuning from a trained model (`sat train --init MODEL` on a run with its own vocabulary,
 * src/train/init-source.ts): the vocabulary remap copies exactly the rows of shared words and leaves new words at
 * the model's normal initialisation; bundles give back their weights (fp32 exactly, int8 within a quantisation
 * step); the whole path through the CLI (features from the bundle's encoder, train --init BUNDLE, caption with
 * nothing but the run); and the refusals of a model trained on other features or of another size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { OnnxGraph } from '../src/encoders/onnx/graph.js';
import { buildBundle, writeBundle } from '../src/export/bundle.js';
import { bundleDecoderParameters } from '../src/export/bundle-weights.js';
import { createModel } from '../src/model/index.js';
import type { ModelConfig } from '../src/model/types.js';
import { initFromSource, loadInitSource, type InitSource } from '../src/train/init-source.js';
import { sat } from './helpers/cli-run.js';
import { makeCaptionRun } from './helpers/export-fixture.js';
import { tempDir } from './helpers/train-fixture.js';
import { onnxEncoderFlags } from './helpers/tiny-model.js';

const shape = {
  embedDim: 8,
  units: 16,
  attentionUnits: 8,
  dropout: 0,
  attentionLambda: 0,
  gruState: 'carry',
  initState: 'mean',
} as const;
const config = (vocabSize: number): ModelConfig => ({ locations: 4, channels: 3, vocabSize, ...shape });

/** An InitSource holding a seeded model's parameters for `words`. */
function sourceOf(words: string[], seed: number): InitSource {
  const model = createModel(config(words.length), { seed });
  const tensors = new Map(
    [...model.parameters()].map(([name, t]) => [name, { shape: t.shape.slice(), data: t.data.slice() }]),
  );
  model.dispose();
  return {
    where: 'memory',
    named: 'memory',
    kind: 'checkpoint',
    model: config(words.length),
    config: shape,
    encoder: { id: 'enc', locations: 4, channels: 3 },
    words,
    tensors,
  };
}

test('vocabulary remap: shared words keep their trained rows, new words the fresh initialisation, the rest is copied whole', () => {
  const modelWords = ['<pad>', '<unk>', '<start>', '<end>', 'a', 'dog', 'runs', 'cat'];
  const runWords = ['<pad>', '<unk>', '<start>', '<end>', 'kayak', 'dog', 'a', 'paddles', 'runs'];
  const source = sourceOf(modelWords, 1);
  const model = createModel(config(runWords.length), { seed: 2 });
  const fresh = createModel(config(runWords.length), { seed: 2 }); // what the model was before --init
  const summary = initFromSource(model, source, runWords);
  assert.deepEqual(summary, { shared: 7, fresh: ['kayak', 'paddles'], dropped: 1 });

  const p = model.parameters(),
    f = fresh.parameters();
  const E = shape.embedDim,
    U = shape.units,
    V = runWords.length,
    Vs = modelWords.length;
  const emb = p.get('embedding.embeddings')!.data,
    fc2 = p.get('fc2.kernel')!.data,
    bias = p.get('fc2.bias')!.data;
  const sEmb = source.tensors.get('embedding.embeddings')!.data,
    sFc2 = source.tensors.get('fc2.kernel')!.data,
    sBias = source.tensors.get('fc2.bias')!.data;
  runWords.forEach((w, j) => {
    const i = modelWords.indexOf(w);
    const row = Array.from(emb.subarray(j * E, (j + 1) * E));
    const column = Array.from({ length: U }, (_, u) => fc2[u * V + j]);
    if (i >= 0) {
      assert.deepEqual(row, Array.from(sEmb.subarray(i * E, (i + 1) * E)), `embedding row of "${w}"`);
      assert.deepEqual(
        column,
        Array.from({ length: U }, (_, u) => sFc2[u * Vs + i]),
        `output column of "${w}"`,
      );
      assert.equal(bias[j], sBias[i], `output bias of "${w}"`);
    } else {
      const fEmb = f.get('embedding.embeddings')!.data,
        fFc2 = f.get('fc2.kernel')!.data;
      assert.deepEqual(row, Array.from(fEmb.subarray(j * E, (j + 1) * E)), `"${w}" keeps its fresh embedding row`);
      assert.deepEqual(
        column,
        Array.from({ length: U }, (_, u) => fFc2[u * V + j]),
        `"${w}" keeps its fresh output column`,
      );
      assert.equal(bias[j], f.get('fc2.bias')!.data[j]);
    }
  });
  for (const name of [
    'projection.kernel',
    'attention.W1.kernel',
    'gru.kernel',
    'gru.bias',
    'fc1.kernel',
    'init_state.kernel',
  ]) {
    assert.deepEqual(p.get(name)!.data, source.tensors.get(name)!.data, `${name} copied whole`);
  }
  model.dispose();
  fresh.dispose();

  // A damaged source (a tensor of the wrong size) is refused by name.
  const broken = sourceOf(modelWords, 1);
  broken.tensors.set('fc1.kernel', { shape: [3, 3], data: new Float32Array(9) });
  const target = createModel(config(runWords.length), { seed: 2 });
  assert.throws(() => initFromSource(target, broken, runWords), /"fc1\.kernel" has shape \[3,3\]/);
  target.dispose();
});

test('bundles give back their decoder weights: fp32 exactly, int8 within half a quantisation step', async () => {
  const dir = tempDir('sat-finetune-bundle-');
  for (const gruState of ['carry', 'reset'] as const) {
    const fixture = await makeCaptionRun(path.join(dir, gruState), { gruState, initState: 'mean', steps: 50 });
    const ckpt = loadCheckpoint(path.join(fixture.run, 'checkpoints'));
    for (const dtype of ['fp32', 'int8'] as const) {
      const bundle = await buildBundle(fixture.run, { dtype, encoder: fixture.encoder });
      const params = bundleDecoderParameters(bundle, 'test');
      for (const [name, saved] of ckpt.tensors) {
        if (name.startsWith('optimizer.')) continue;
        const got = params.get(name as never);
        if (name === 'gru.recurrent_kernel' && gruState === 'reset') {
          assert.equal(got, undefined);
          continue;
        }
        assert.ok(got, `${gruState} ${dtype}: ${name} is in the bundle`);
        assert.deepEqual(got.shape, saved.shape, `${name} shape`);
        let worst = 0,
          max = 0;
        for (let k = 0; k < saved.data.length; k++) {
          worst = Math.max(worst, Math.abs(got.data[k] - saved.data[k]));
          max = Math.max(max, Math.abs(saved.data[k]));
        }
        if (dtype === 'fp32') assert.equal(worst, 0, `${name} exact in fp32`);
        else assert.ok(worst <= max / 127 / 2 + max * 1e-3, `${name}: int8/fp16 error ${worst} vs max ${max}`);
      }
    }
  }
});

/** NHWC [n, 16, 16, 3] -> 8x8 average pool -> [n, 2, 2, 3]: another encoder (id and grid) than the fixture's. */
function otherEncoderOnnx(): Uint8Array {
  const g = new OnnxGraph('pool8');
  const x = g.addInput('image', ['n', 16, 16, 3]);
  const nchw = g.addNode('Transpose', [x], 'nchw', { perm: [0, 3, 1, 2] });
  const pooled = g.addNode('AveragePool', [nchw], 'pooled', { kernel_shape: [8, 8], strides: [8, 8] });
  g.addNode('Transpose', [pooled], ['features'], { perm: [0, 2, 3, 1] });
  g.addOutput('features', ['n', 2, 2, 3]);
  return g.toModel();
}

/** A folder dataset of solid-colour PNGs with captions in a vocabulary of its own (new words: crimson, navy, ...). */
async function ownFolder(dir: string): Promise<string> {
  const root = path.join(dir, 'photos');
  fs.mkdirSync(root, { recursive: true });
  const colours: [string, [number, number, number]][] = [
    ['crimson', [0xe0, 0x10, 0x10]],
    ['navy', [0x10, 0x30, 0xe0]],
    ['green', [0x20, 0xc0, 0x30]],
  ];
  const rows = ['image,caption,split'];
  for (let i = 0; i < 12; i++) {
    const [name, [r, g, b]] = colours[i % 3];
    const file = `${name}-${i}.png`;
    await sharp({ create: { width: 20 + i, height: 12, channels: 3, background: { r, g, b } } })
      .png()
      .toFile(path.join(root, file));
    rows.push(`${file},a ${name} square,${i < 9 ? 'train' : 'dev'}`);
  }
  fs.writeFileSync(path.join(root, 'captions.csv'), rows.join('\n') + '\n');
  return root;
}

test('sat features --encoder-from BUNDLE, sat train --init BUNDLE, then sat caption with the run alone; mismatches refused', async () => {
  const dir = tempDir('sat-finetune-cli-');
  const fixture = await makeCaptionRun(path.join(dir, 'model'), { steps: 300 });
  const bundleDir = path.join(dir, 'bundle');
  writeBundle(bundleDir, await buildBundle(fixture.run, { dtype: 'int8', encoder: fixture.encoder }));
  const root = await ownFolder(dir);
  const run = path.join(dir, 'mine');
  await sat(['prepare', '--dataset', 'folder', '--root', root, '--out', run]);

  // Features from another encoder: --init is refused with what differs and the command that fixes it.
  const other = path.join(dir, 'pool8.onnx');
  fs.writeFileSync(other, otherEncoderOnnx());
  await sat(['features', '--run', run, ...onnxEncoderFlags(other, 16)]);
  await assert.rejects(
    sat(['train', '--run', run, '--init', bundleDir, '--epochs', '1', '--quiet']),
    (e: Error) =>
      /trained on other features/.test(e.message) &&
      /encoder "pool4-features-\w+" \(this run: "pool8-features-\w+"\)/.test(e.message) &&
      /grid 16 locations x 3 channels \(this run: 4 x 3\)/.test(e.message) &&
      e.message.includes(`sat features --run ${run} --encoder-from ${bundleDir}`),
  );

  // A bundle's manifest says how to run its encoder: flags for another encoder are refused, as are two choices.
  await assert.rejects(
    sat(['features', '--run', run, '--encoder', bundleDir, '--encoder-size', '32']),
    /--encoder-size does not apply to --encoder .*a bundle's manifest/,
  );
  await assert.rejects(
    sat(['features', '--run', run, '--encoder', other, '--encoder-from', bundleDir]),
    /both choose the encoder: give one of them/,
  );
  // A damaged encoder.onnx is refused against the manifest's SHA-256.
  const damaged = path.join(dir, 'damaged');
  fs.cpSync(bundleDir, damaged, { recursive: true });
  fs.appendFileSync(path.join(damaged, 'encoder.onnx'), 'x');
  await assert.rejects(
    sat(['features', '--run', run, '--encoder-from', damaged]),
    /encoder\.onnx does not match its manifest/,
  );

  // The fix: features from the bundle's own encoder; run.json and the store remember it.
  await sat(['features', '--run', run, '--encoder-from', bundleDir]);
  const runJson = JSON.parse(fs.readFileSync(path.join(run, 'run.json'), 'utf8'));
  assert.deepEqual(runJson.features.encoderOptions, { encoder: bundleDir });
  assert.match(runJson.features.encoderId, /^pool4-features-/);

  // Another model size than the bundle's is refused, naming the fields.
  await assert.rejects(
    sat(['train', '--run', run, '--init', bundleDir, '--embed-dim', '32', '--epochs', '1', '--quiet']),
    /model's size is fixed by its weights.*embedDim 8 \(asked 32\)/,
  );

  await sat([
    'train',
    '--run',
    run,
    '--init',
    bundleDir,
    '--epochs',
    '2',
    '--learning-rate',
    '0.01',
    '--batch-size',
    '4',
    '--val-metric',
    'loss',
    '--quiet',
  ]);
  const tuned = loadCheckpoint(path.join(run, 'checkpoints'), 'latest');
  assert.deepEqual(
    tuned.meta.encoder.options,
    { encoder: bundleDir },
    'the checkpoint records how to rebuild its encoder',
  );
  assert.equal(tuned.meta.model.embedDim, 8, 'the shape comes from the bundle');

  // Captioning the fine-tuned run needs no encoder flags: the encoder is rebuilt from the recorded bundle.
  const out = await sat(['caption', '--model', run, path.join(root, 'navy-1.png')]);
  assert.match(out, /\bsquare\b/, `a caption of the fine-tuned model: ${out}`);
});

test('a run remembers its encoder options: sat caption and sat export need no encoder flags again', async () => {
  const dir = tempDir('sat-finetune-remember-');
  const fixture = await makeCaptionRun(path.join(dir, 'model'), { steps: 50 });
  const root = await ownFolder(dir);
  const run = path.join(dir, 'mine');
  await sat(['prepare', '--dataset', 'folder', '--root', root, '--out', run]);
  const onnx = fixture.encoder.encoder!;
  // a relative path in the flags is recorded absolute
  await sat(['features', '--run', run, ...onnxEncoderFlags(path.relative(process.cwd(), onnx), 16)]);
  const store = JSON.parse(fs.readFileSync(path.join(run, 'run.json'), 'utf8')).features.dir;
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(store, 'encoder-options.json'), 'utf8')), {
    encoder: onnx,
    size: 16,
    scaling: 'zero_one',
    layout: 'nhwc',
  });
  await sat([
    'train',
    '--run',
    run,
    '--epochs',
    '1',
    '--embed-dim',
    '8',
    '--units',
    '16',
    '--attention-units',
    '8',
    '--val-metric',
    'loss',
    '--quiet',
  ]);
  assert.match(await sat(['caption', '--model', run, path.join(root, 'crimson-0.png')]), /\w/);
  const bundle = path.join(dir, 'bundle');
  await sat(['export', '--model', run, '--out', bundle]);
  assert.ok(fs.existsSync(path.join(bundle, 'manifest.json')));

  // The fixture's checkpoint was saved without encoder options (as before they were recorded) and runs a user
  // .onnx encoder, which its id alone cannot rebuild: --encoder-from says which flags to pass.
  const init = await loadInitSource(fixture.run);
  assert.equal(init.kind, 'checkpoint');
  assert.equal(init.encoder.options, undefined);
  await assert.rejects(
    sat(['features', '--run', run, '--encoder-from', fixture.run]),
    /cannot rebuild by itself: pass the same --encoder FILE\.onnx/,
  );
  // The run trained here recorded them, so its encoder comes back with --encoder-from the run.
  const again = await loadInitSource(run);
  assert.deepEqual(again.encoder.options, { encoder: onnx, size: 16, scaling: 'zero_one', layout: 'nhwc' });
});
