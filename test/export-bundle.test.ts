/**
 * `sat export` and loadCaptioner: the exported graphs compute the native model's math (both GRU modes, both
 * initial states, every weight format), a bundle captions exactly as its checkpoint, onnxruntime-web (single-
 * threaded wasm, in Node) captions as onnxruntime-node, and broken bundles are refused with the file named.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import sharp from 'sharp';
import type { CaptionResult } from '../src/decode/captioner-api.js';
import { buildBundle, writeBundle } from '../src/export/bundle.js';
import { bundleBackend } from '../src/export/bundle-backend.js';
import { readBundleFolder } from '../src/export/bundle-folder.js';
import { BUNDLE_FORMAT_VERSION } from '../src/export/manifest.js';
import { decoderInitGraph, decoderStepGraph, parametersByName } from '../src/export/graphs.js';
import { loadCaptioner } from '../src/models/load-captioner.js';
import type { OrtNamespace } from '../src/encoders/onnx/runtime.js';
import { OnnxDecoderModel } from '../src/model/onnx-model.js';
import { expandStoredWeights } from '../src/export/onnx-rewrite.js';
import type { BundleDtype } from '../src/export/weights.js';
import { createModel } from '../src/model/index.js';
import { sha256HexSync } from '../src/util/sha256.js';
import { PACKAGE_VERSION } from '../src/util/version.js';
import { Rng } from '../src/util/rng.js';
import { loadCaptioner as loadWebCaptioner } from '../src/web/index.js';
import { makeCaptionRun, type CaptionFixture } from './helpers/export-fixture.js';
import { bundledChild } from './helpers/child-bundle.js';

const run = promisify(execFile);
let dir: string;
let fx: CaptionFixture;
let bundle: string;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-export-'));
  fx = await makeCaptionRun(dir);
  bundle = path.join(dir, 'bundle');
  const { stdout } = await run(process.execPath, [
    bundledChild('src/cli.ts'),
    'export',
    '--model',
    fx.run,
    '--out',
    bundle,
    ...fx.encoderFlags,
  ]);
  assert.match(stdout, /total .* MB .*fp32/);
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

test('the exported graphs compute the native encode and step: both GRU modes, both initial states, every dtype', async () => {
  for (const gruState of ['carry', 'reset'] as const) {
    for (const initState of ['zeros', 'mean'] as const) {
      // fc2 [64, 300] is big enough to be quantised in int8 bundles
      const config = {
        locations: 5,
        channels: 6,
        embedDim: 32,
        units: 64,
        attentionUnits: 24,
        vocabSize: 300,
        dropout: 0,
        attentionLambda: 0,
        gruState,
        initState,
      };
      const native = createModel(config, { seed: 1 });
      const rng = new Rng(3);
      for (const [, t] of native.parameters())
        for (let i = 0; i < t.data.length; i++) t.data[i] += (rng.next() - 0.5) * 0.2;
      const params = parametersByName(native.parameters());
      const features = Float32Array.from({ length: 3 * 5 * 6 }, () => rng.next());
      const tokens = Int32Array.of(1, 40, 299);
      const s = native.encode(features, 3);
      const o1 = native.step(s, tokens);
      const o2 = native.step({ ...s, hidden: o1.hidden }, tokens);
      // every mode in fp32; the weight formats once (they change storage, not the graph's math)
      const formats = (
        gruState === 'carry' && initState === 'mean'
          ? [
              ['fp32', 1e-5],
              ['fp16', 2e-2],
              ['int8', 2e-2],
            ]
          : [['fp32', 1e-5]]
      ) as [BundleDtype, number][];
      for (const [dtype, tol] of formats) {
        const init = decoderInitGraph(config, params, dtype),
          step = decoderStepGraph(config, params, dtype);
        if (dtype === 'int8')
          assert.ok(Buffer.from(step).includes('DequantizeLinear'), 'int8 graphs dequantise their big matrices');
        const what = `${gruState}/${initState}/${dtype}`;
        // the loaders turn stored fp16/int8 weights into float32 initializers once (expandStoredWeights)
        const graphs =
          dtype === 'fp32' ? { init, step } : { init: expandStoredWeights(init), step: expandStoredWeights(step) };
        if (dtype !== 'fp32')
          assert.ok(
            !Buffer.from(graphs.step).includes('DequantizeLinear') && !Buffer.from(graphs.step).includes('Cast'),
            what,
          );
        const onnx = await OnnxDecoderModel.create(ortNode as unknown as OrtNamespace, config, graphs);
        const e = await onnx.encode(features, 3);
        const p1 = await onnx.step(e, tokens);
        const p2 = await onnx.step({ ...e, hidden: p1.hidden }, tokens);
        for (const [name, a, b] of [
          ['hidden0', s.hidden, e.hidden],
          ['encoded', s.encoded, e.encoded],
          ['projected', s.projected, e.projected],
          ['logits', o1.logits, p1.logits],
          ['attention', o1.attention, p1.attention],
          ['hidden1', o1.hidden, p1.hidden],
          ['hidden2', o2.hidden, p2.hidden],
          ['logits2', o2.logits, p2.logits],
        ] as const) {
          assert.ok(maxDiff(a, b) < tol, `${what} ${name}: max |difference| ${maxDiff(a, b)}`);
        }
        await onnx.release();
      }
      native.dispose();
    }
  }
});

/** Captions of the three fixture images, greedy and beam 3 (with alternatives). */
async function captionsOf(captioner: { captionBatch(images: string[], o?: object): Promise<CaptionResult[]> }) {
  const images = Object.values(fx.images);
  return {
    greedy: await captioner.captionBatch(images),
    beam: await captioner.captionBatch(images, { beam: 3, alternatives: true }),
  };
}

function assertSame(a: CaptionResult[], b: CaptionResult[], tolerance: number, what: string) {
  assert.deepEqual(
    a.map((c) => c.caption),
    b.map((c) => c.caption),
    what,
  );
  a.forEach((c, i) => {
    assert.ok(Math.abs(c.logProb - b[i].logProb) < tolerance, `${what}: logProb ${c.logProb} vs ${b[i].logProb}`);
    c.words.forEach((w, k) =>
      assert.ok(maxDiff(w.attention, b[i].words[k].attention) < tolerance * 10, `${what}: attention of "${w.word}"`),
    );
    assert.deepEqual(
      c.alternatives.map((x) => x.caption),
      b[i].alternatives.map((x) => x.caption),
      `${what}: alternatives`,
    );
  });
}

test('a bundle captions exactly as its checkpoint: same captions, log-probs within 1e-4, the same alternatives', async () => {
  const native = await loadCaptioner(fx.run, { backend: 'native', encoder: fx.encoder });
  const onnx = await loadCaptioner(bundle);
  try {
    assert.equal(native.info.backend, 'native');
    assert.equal(onnx.info.backend, 'onnx');
    assert.deepEqual(onnx.info.grid, [4, 4]);
    const a = await captionsOf(native),
      b = await captionsOf(onnx);
    assert.deepEqual(
      a.greedy.map((c) => c.caption),
      ['a red square', 'a blue circle on the left', 'two green dots'],
    );
    assertSame(a.greedy, b.greedy, 1e-4, 'greedy');
    assertSame(a.beam, b.beam, 1e-4, 'beam 3');
    assert.equal(b.beam[0].alternatives.length, 3);
    assert.equal(b.beam[0].alternatives[0].caption, b.beam[0].caption);
    // alternatives are opt-in; without them the best caption is the same. Its log-prob may differ in the last
    // bits: images that stop at other steps change the batch's row count, and a BLAS may round by row count.
    for (const captioner of [native, onnx]) {
      const plain = await captioner.captionBatch(Object.values(fx.images), { beam: 3 });
      const withAlternatives = captioner === native ? a.beam : b.beam;
      assert.ok(plain.every((c) => c.alternatives.length === 0));
      assert.deepEqual(
        plain.map((c) => [c.caption, c.ids]),
        withAlternatives.map((c) => [c.caption, c.ids]),
      );
      plain.forEach((c, i) =>
        assert.ok(
          Math.abs(c.logProb - withAlternatives[i].logProb) <= 1e-6 * Math.max(1, Math.abs(c.logProb)),
          `log-prob with and without alternatives: ${c.logProb} vs ${withAlternatives[i].logProb}`,
        ),
      );
      assert.equal((await captioner.caption(fx.images.red, { beam: 3, alternatives: 2 })).alternatives.length, 2);
    }
    assert.equal(native.info.modelId, onnx.info.modelId, 'a checkpoint and its bundle have one model id');
    // each input kind gives the same caption: path, bytes, decoded pixels
    const bytes = fs.readFileSync(fx.images.blue);
    const { data, info } = await sharp(fx.images.blue).raw().toBuffer({ resolveWithObject: true });
    for (const input of [bytes, new Uint8Array(bytes), { data, width: info.width, height: info.height }]) {
      assert.equal((await onnx.caption(input)).caption, 'a blue circle on the left');
    }
    await assert.rejects(onnx.caption(new Uint8Array([1, 2, 3])), /not an image|corrupt/);
    await assert.rejects(onnx.caption(fx.images.red, { beam: 2, sample: true }), /exclude each other/);
    // a checkpoint through onnxruntime (exported in memory) is the same model again
    const inMemory = await loadCaptioner(fx.run, { backend: 'onnx', encoder: fx.encoder });
    assertSame((await captionsOf(inMemory)).beam, a.beam, 1e-4, 'in-memory export');
    await inMemory.dispose();
  } finally {
    await native.dispose();
    await onnx.dispose();
  }
});

test('fp16 and int8 bundles are smaller and caption the fixture the same', async () => {
  const reference = await loadCaptioner(bundle);
  const want = (await captionsOf(reference)).beam.map((c) => c.caption);
  await reference.dispose();
  const size = (d: string) => fs.readdirSync(d).reduce((s, f) => s + fs.statSync(path.join(d, f)).size, 0);
  for (const dtype of ['fp16', 'int8'] as const) {
    const out = path.join(dir, `bundle-${dtype}`);
    writeBundle(out, await buildBundle(fx.run, { dtype, encoder: fx.encoder }));
    assert.ok(size(out) < size(bundle), `${dtype} bundle ${size(out)} bytes vs fp32 ${size(bundle)}`);
    const c = await loadCaptioner(out);
    assert.equal(c.info.dtype, dtype);
    assert.deepEqual(
      (await captionsOf(c)).beam.map((x) => x.caption),
      want,
      dtype,
    );
    await c.dispose();
  }
});

/**
 * Teacher-forced log-probs of `tokens` [N, T+1] (token t+1 given 0..t) per caption, through any decoder model:
 * the sum over steps of log softmax(logits)[next token].
 */
async function captionLogProbs(
  model: { encode(f: Float32Array, n: number): unknown; step(s: never, t: Int32Array): unknown },
  features: Float32Array,
  tokens: Int32Array,
  N: number,
  T: number,
  V: number,
): Promise<Float64Array> {
  type State = { hidden: Float32Array };
  let state = (await model.encode(features, N)) as State;
  const out = new Float64Array(N);
  for (let t = 0; t < T; t++) {
    const step = (await model.step(
      state as never,
      Int32Array.from({ length: N }, (_, b) => tokens[b * (T + 1) + t]),
    )) as { logits: Float32Array; hidden: Float32Array };
    for (let b = 0; b < N; b++) {
      const row = step.logits.subarray(b * V, (b + 1) * V);
      const max = row.reduce((m, x) => Math.max(m, x), -Infinity);
      const logSum = Math.log(row.reduce((sum, x) => sum + Math.exp(x - max), 0)) + max;
      out[b] += row[tokens[b * (T + 1) + t + 1]] - logSum;
    }
    state = { ...state, hidden: step.hidden };
  }
  return out;
}

test('fp16 and int8 decoders hold caption log-probs within a bound on realistic features and sizes', async () => {
  // MobileNetV2's grid (7x7 of 1280 channels after ReLU6: sparse, non-negative, up to 6) and a decoder of a
  // real vocabulary's size, with weights spread as after training (init + noise) so predictions are confident.
  const [N, T, L, C] = [8, 12, 49, 1280];
  const config = {
    locations: L,
    channels: C,
    embedDim: 128,
    units: 256,
    attentionUnits: 128,
    vocabSize: 3000,
    dropout: 0,
    attentionLambda: 0,
  };
  const V = config.vocabSize;
  const native = createModel(config, { seed: 2 });
  const rng = new Rng(8);
  for (const [, t] of native.parameters()) for (let i = 0; i < t.data.length; i++) t.data[i] += rng.normal() * 0.1;
  const features = Float32Array.from({ length: N * L * C }, () => Math.min(6, Math.max(0, rng.normal() * 1.5 - 0.4)));
  // The captions the fp32 model itself would write (greedy), so the log-probs compared are those of its choices.
  const tokens = new Int32Array(N * (T + 1));
  let state = native.encode(features, N);
  for (let t = 0; t < T; t++) {
    const step = native.step(
      state,
      Int32Array.from({ length: N }, (_, b) => (t === 0 ? 1 : tokens[b * (T + 1) + t])),
    );
    for (let b = 0; b < N; b++) {
      const row = step.logits.subarray(b * V, (b + 1) * V);
      tokens[b * (T + 1) + t + 1] = row.indexOf(row.reduce((m, x) => Math.max(m, x), -Infinity));
    }
    state = { ...state, hidden: step.hidden };
  }
  for (let b = 0; b < N; b++) tokens[b * (T + 1)] = 1;
  const want = await captionLogProbs(native as never, features, tokens, N, T, V);
  const params = parametersByName(native.parameters());
  const lines: string[] = [];
  // Bounds on the |log-prob difference| per token of each caption: fp16 keeps 11 bits of each weight, int8 about 7
  // per output channel (steps of 1/127 of the channel's largest weight), 16x coarser; measured at most 7.6e-4 (fp16)
  // and 2.2e-2 (int8) with the greedy captions' mean log-prob -2.7 per token: the bounds leave 2.5x.
  for (const [dtype, perToken] of [
    ['fp16', 2e-3],
    ['int8', 5e-2],
  ] as const) {
    const graphs = {
      init: expandStoredWeights(decoderInitGraph(config, params, dtype)),
      step: expandStoredWeights(decoderStepGraph(config, params, dtype)),
    };
    const onnx = await OnnxDecoderModel.create(ortNode as unknown as OrtNamespace, config, graphs);
    const got = await captionLogProbs(onnx as never, features, tokens, N, T, V);
    await onnx.release();
    const diffs = Array.from(want, (w, b) => Math.abs(got[b] - w) / T);
    lines.push(
      `${dtype}: per-token |difference| mean ${(diffs.reduce((a, b) => a + b) / N).toExponential(2)}, max ${Math.max(...diffs).toExponential(2)} (bound ${perToken})`,
    );
    diffs.forEach((d, b) =>
      assert.ok(d <= perToken, `${dtype}: caption ${b} log-prob ${got[b]} vs ${want[b]} (${d} per token)`),
    );
  }
  const mean = want.reduce((a, b) => a + b) / N / T;
  console.log(
    `teacher-forced log-probs (fp32 mean ${mean.toFixed(3)} per token, uniform ${(-Math.log(V)).toFixed(3)}):\n  ${lines.join('\n  ')}`,
  );
  assert.ok(
    mean > -Math.log(V) + 2,
    'the model is confident (far from uniform), so the comparison is not of flat distributions',
  );
  native.dispose();
});

/** Serves `root` on 127.0.0.1 (random port) until closed. */
async function serve(root: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const file = path.join(root, decodeURIComponent(new URL(req.url!, 'http://x').pathname));
    if (!file.startsWith(root) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404).end('not found');
      return;
    }
    res
      .writeHead(200, { 'content-type': file.endsWith('.json') ? 'application/json' : 'application/octet-stream' })
      .end(fs.readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(() => r())) };
}

test('onnxruntime-web (single-threaded wasm, in Node) captions a served bundle as onnxruntime-node does', async () => {
  const server = await serve(dir);
  const web = ortWeb as unknown as OrtNamespace & { env: { wasm: { numThreads: number } } };
  const captioner = await loadWebCaptioner(`${server.url}/bundle/`, { ort: web, numThreads: 1 });
  const node = await loadCaptioner(bundle);
  try {
    assert.equal(captioner.info.backend, 'onnx-web');
    assert.equal(web.env.wasm.numThreads, 1);
    // decoded pixels through the browser entry's own resize (src/features/resize.ts) vs files through sharp
    const pixels = await Promise.all(
      Object.values(fx.images).map(async (f) => {
        const { data, info } = await sharp(f).raw().toBuffer({ resolveWithObject: true });
        return { data: new Uint8Array(data), width: info.width, height: info.height, channels: 3 as const };
      }),
    );
    for (const options of [{}, { beam: 3 }, { sample: true, seed: 7 }]) {
      const a = await captioner.captionBatch(pixels, options);
      const b = await node.captionBatch(Object.values(fx.images), options);
      assertSame(a, b, 1e-4, `web vs node ${JSON.stringify(options)}`);
    }
    await assert.rejects(loadWebCaptioner(`${server.url}/nowhere/`, { ort: web }), /HTTP 404 .*bundle manifest/);
  } finally {
    await captioner.dispose();
    await node.dispose();
    await server.close();
  }
});

test('broken bundles are refused with the file named and the fix', async () => {
  const copy = (name: string) => {
    const d = path.join(dir, name);
    fs.cpSync(bundle, d, { recursive: true });
    return d;
  };
  const manifestOf = (d: string) => JSON.parse(fs.readFileSync(path.join(d, 'manifest.json'), 'utf8'));
  const writeManifest = (d: string, m: unknown) => fs.writeFileSync(path.join(d, 'manifest.json'), JSON.stringify(m));

  const missing = copy('missing');
  fs.rmSync(path.join(missing, 'decoder-step.onnx'));
  await assert.rejects(
    loadCaptioner(missing),
    /decoder-step\.onnx is missing from the bundle\. Copy the whole bundle folder/,
  );

  const damaged = copy('damaged');
  const enc = fs.readFileSync(path.join(damaged, 'encoder.onnx'));
  enc[enc.length - 10] ^= 0xff;
  fs.writeFileSync(path.join(damaged, 'encoder.onnx'), enc);
  await assert.rejects(loadCaptioner(damaged), /encoder\.onnx does not match its manifest \(SHA-256 .*export it again/);

  const newer = copy('newer');
  writeManifest(newer, {
    ...manifestOf(newer),
    formatVersion: BUNDLE_FORMAT_VERSION + 1,
    writtenBy: { package: 'show-attend-tell', version: '9.9.9' },
  });
  await assert.rejects(
    loadCaptioner(newer),
    new RegExp(
      `format version ${BUNDLE_FORMAT_VERSION + 1}, written by show-attend-tell 9\\.9\\.9; show-attend-tell ${PACKAGE_VERSION.replace(/\./g, '\\.')} reads format version ${BUNDLE_FORMAT_VERSION}.*Upgrade to show-attend-tell 9\\.9\\.9`,
    ),
  );

  const unknown = copy('unknown');
  writeManifest(unknown, { format: 'something-else' });
  await assert.rejects(loadCaptioner(unknown), /manifest\.json is not a show-attend-tell bundle manifest/);

  // a manifest that lacks a field or has one of another type names the file, the field and the fix
  const noVocab = copy('no-vocab');
  const { vocab: _vocab, ...withoutVocab } = manifestOf(noVocab);
  writeManifest(noVocab, withoutVocab);
  await assert.rejects(
    loadCaptioner(noVocab),
    /no-vocab\/manifest\.json is damaged: vocab \(missing\)\. Export it again with `sat export/,
  );
  const badWords = copy('bad-words');
  writeManifest(badWords, { ...manifestOf(badWords), vocab: { ...manifestOf(badWords).vocab, words: 'a b c' } });
  await assert.rejects(
    loadCaptioner(badWords),
    /bad-words\/manifest\.json is damaged: vocab\.words \(string, expected string\[\]\)/,
  );
  const notJson = copy('not-json');
  fs.writeFileSync(path.join(notJson, 'manifest.json'), '{"format": ');
  await assert.rejects(loadCaptioner(notJson), /not-json\/manifest\.json is not valid JSON .*Export it again/);

  const mismatched = copy('mismatched');
  const m = manifestOf(mismatched);
  writeManifest(mismatched, { ...m, vocab: { ...m.vocab, words: m.vocab.words.slice(1) } });
  await assert.rejects(loadCaptioner(mismatched), /the vocabulary has \d+ words but the model \d+/);

  await assert.rejects(
    loadCaptioner(bundle, { backend: 'native' }),
    /native backend needs the checkpoint it came from \(best\.safetensors\)/,
  );
  // a user .onnx encoder cannot be rebuilt from the checkpoint alone: the refusal says which flags to pass
  await assert.rejects(
    buildBundle(fx.run),
    /pass the same --encoder FILE\.onnx \(with --encoder-output, --encoder-size/,
  );
});

/** An onnxruntime stand-in whose sessions record whether they were released; session number `failAt` is refused. */
function fakeOrt(opts: { failAt?: number; namelessAt?: number; releaseFails?: boolean }) {
  const sessions: { released: boolean }[] = [];
  const inputNames = ['image', 'features', 'token', 'hidden', 'encoded', 'projected'];
  const outputNames = ['features', 'encoded', 'projected', 'hidden', 'logits', 'attention', 'hidden_out'];
  const ort = {
    InferenceSession: {
      create: async () => {
        const n = sessions.length + 1;
        if (n === opts.failAt) throw new Error('no such operator');
        const session = {
          released: false,
          inputNames: n === opts.namelessAt ? [] : inputNames,
          outputNames: n === opts.namelessAt ? [] : outputNames,
          run: async () => ({}),
          release: async () => {
            session.released = true;
            if (opts.releaseFails) throw new Error('release failed');
          },
        };
        sessions.push(session);
        return session;
      },
    },
    Tensor: class {},
  } as unknown as OrtNamespace;
  return { ort, sessions };
}

test('a load that fails releases every session it made; dispose releases all and reports a failure', async () => {
  const files = await readBundleFolder(bundle);
  const load = (ort: OrtNamespace) =>
    bundleBackend(ort, files, {
      source: bundle,
      backend: 'onnx',
      sessionOptions: {},
      preprocess: async () => new Uint8Array(),
    });
  for (const [what, opts, message] of [
    ['decoder-init refused', { failAt: 2 }, /could not load decoder-init\.onnx: no such operator/],
    ['decoder-step refused', { failAt: 3 }, /could not load decoder-step\.onnx/],
    ['decoder-step without its tensors', { namelessAt: 3 }, /decoder-step\.onnx has no tensor token/],
    ['encoder without its tensors', { namelessAt: 1 }, /graph of encoder .* has no tensor image/],
  ] as const) {
    const { ort, sessions } = fakeOrt(opts);
    await assert.rejects(load(ort), message, what);
    assert.ok(sessions.length > 0 && sessions.every((x) => x.released), `${what}: every session released`);
  }
  const { ort, sessions } = fakeOrt({ releaseFails: true });
  const backend = await load(ort);
  await assert.rejects(backend.dispose(), /release failed/);
  assert.equal(sessions.length, 3);
  assert.ok(
    sessions.every((x) => x.released),
    'a failed release does not stop the others',
  );
});

test("PACKAGE_VERSION (written into manifests, read by browsers) is package.json's version", () => {
  assert.equal(PACKAGE_VERSION, JSON.parse(fs.readFileSync('package.json', 'utf8')).version);
});

test('the TypeScript SHA-256 (pages without Web Crypto) agrees with node:crypto', () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 1000, 100_003]) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 255);
    assert.equal(sha256HexSync(bytes), createHash('sha256').update(bytes).digest('hex'), `${n} bytes`);
  }
});
