import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fetchVerified } from '../src/encoders/download.js';
import { OnnxGraph } from '../src/encoders/onnx/graph.js';
import { encoderOptionsFromArgs } from '../src/cli/encoder-options.js';
import { resolveEncoder } from '../src/encoders/registry.js';
import { setEnv } from './helpers/scoped-env.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-enc-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('unknown encoders and misplaced flags are refused with the list of choices', async () => {
  await assert.rejects(
    resolveEncoder({ encoder: 'resnet50' }),
    /Unknown --encoder "resnet50"[^]*inception_v3_nsfwjs[^]*inception_v3_imagenet[^]*mobilenet_v2[^]*\.onnx/,
  );
  await assert.rejects(
    resolveEncoder({ encoder: 'inception_v3_nsfwjs', output: 'x' }),
    /--encoder-output applies to a user \.onnx encoder only/,
  );
  await assert.rejects(
    resolveEncoder({ encoder: 'mobilenet_v2', weights: path.join(tmp, 'nothing-here') }),
    /--encoder-weights .*nothing-here does not exist/,
  );
  await assert.rejects(resolveEncoder({ encoder: 'mobilenet_v2', weights: tmp }), /MobileNetV2 tensors are missing/);
  await assert.rejects(
    resolveEncoder({ encoder: 'mobilenet_v2', layer: 'mixed10', weights: tmp }),
    /mobilenet_v2's feature layers are Conv_1 \(7x7x1280 at 224\), Conv_1_os16 .* and Conv_1_tap12/,
  );
  await assert.rejects(
    resolveEncoder({ encoder: 'mobilenet_v2', size: 300, weights: tmp }),
    /--encoder-size 300: mobilenet_v2 takes a multiple of 32/,
  );
  await assert.rejects(
    resolveEncoder({ encoder: 'inception_v3_nsfwjs', weights: tmp }),
    /--encoder-weights applies to inception_v3_imagenet and mobilenet_v2 only/,
  );
  assert.throws(() => encoderOptionsFromArgs({ 'encoder-size': 'big' }), /--encoder-size must be an integer/);
  assert.deepEqual(encoderOptionsFromArgs({ encoder: 'x.onnx', 'encoder-size': '96', 'encoder-layout': 'nhwc' }), {
    encoder: 'x.onnx',
    layer: undefined,
    weights: undefined,
    output: undefined,
    size: 96,
    scaling: undefined,
    layout: 'nhwc',
  });
});

test('a user ONNX file: output shape learned by running it, layout and scaling from the flags', async () => {
  // NCHW [n, 3, 16, 16] -> 4x4 average pool -> "pooled" [n, 3, 4, 4]; a second output "flat" [n, 48]
  const g = new OnnxGraph('user');
  g.addInput('pixels', ['n', 3, 16, 16]);
  g.addNode('AveragePool', ['pixels'], ['pooled'], { kernel_shape: [4, 4], strides: [4, 4] });
  g.addNode('Flatten', ['pooled'], ['flat'], { axis: 1 });
  g.addOutput('pooled', ['n', 3, 4, 4]);
  g.addOutput('flat', ['n', 48]);
  const file = path.join(tmp, 'tiny-cnn.onnx');
  fs.writeFileSync(file, g.toModel());

  const m = await resolveEncoder({ encoder: file, output: 'pooled', size: 16, scaling: 'zero_one', layout: 'nchw' });
  const { id, ...rest } = m.spec;
  assert.match(id, /^tiny-cnn-pooled-[0-9a-f]{8}$/);
  assert.deepEqual(rest, {
    inputSize: 16,
    scaling: 'zero_one',
    inputLayout: 'nchw',
    outputLayout: 'nchw',
    inputName: 'pixels',
    outputName: 'pooled',
    locations: 16,
    channels: 3,
  });
  const imagenet = await resolveEncoder({ encoder: file, output: 'pooled', size: 16 });
  assert.deepEqual(imagenet.spec.scaling, { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });

  await assert.rejects(
    resolveEncoder({ encoder: file, size: 16 }),
    /--encoder-output \(missing\): choose one of the outputs of .*tiny-cnn\.onnx: pooled, flat/,
  );
  await assert.rejects(
    resolveEncoder({ encoder: file, output: 'flat', size: 16 }),
    /--encoder-output flat has shape \[1, 48\]/,
  );
  await assert.rejects(
    resolveEncoder({ encoder: file, output: 'pooled', size: 20 }),
    /failed on a \[1, 3, 20, 20\] float32 input \(check --encoder-size and --encoder-layout\)/,
  );
  await assert.rejects(
    resolveEncoder({ encoder: file, output: 'pooled', scaling: 'caffe' }),
    /--encoder-scaling caffe is not known; use one of zero_one, minus_one_one, imagenet/,
  );
  await assert.rejects(resolveEncoder({ encoder: path.join(tmp, 'nope.onnx') }), /nope\.onnx: no such ONNX file/);
});

/** A fake HTTP server in a fetch function: honours Range, can cut the body after `failAfter` bytes. */
function fakeFetch(body: Uint8Array, opts: { failAfter?: number; log?: string[] } = {}): typeof fetch {
  return (async (_url: string | URL | Request, init?: RequestInit) => {
    const range = (init?.headers as Record<string, string> | undefined)?.Range;
    opts.log?.push(range ?? 'full');
    const start = range ? Number(/bytes=(\d+)-/.exec(range)![1]) : 0;
    if (start >= body.length) return new Response(null, { status: 416 });
    const rest = body.subarray(start);
    const cut = opts.failAfter;
    let sent = false;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (!sent) {
          sent = true;
          controller.enqueue(cut === undefined ? rest : rest.subarray(0, cut));
        } else if (cut === undefined) controller.close();
        else controller.error(new Error('connection reset'));
      },
    });
    return new Response(stream, { status: range ? 206 : 200, headers: { 'content-length': String(rest.length) } });
  }) as typeof fetch;
}

test('downloads are resumed with Range, verified by MD5, cached, and fail with the manual fix', async () => {
  const restoreCache = setEnv('SAT_CACHE', path.join(tmp, 'cache'));
  try {
    const body = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7) % 251);
    const remote = {
      url: 'https://example.invalid/weights.h5',
      fileName: 'weights.h5',
      md5: createHash('md5').update(body).digest('hex'),
      manualFlag: '--encoder-weights FILE',
    };
    const log: string[] = [];
    await assert.rejects(
      fetchVerified(remote, { fetchImpl: fakeFetch(body, { failAfter: 1200, log }), silent: true }),
      /Could not download https:\/\/example\.invalid\/weights\.h5: connection reset[^]*curl -L -o weights\.h5 https:\/\/example\.invalid\/weights\.h5\) and pass --encoder-weights weights\.h5/,
    );
    assert.equal(fs.statSync(path.join(tmp, 'cache', 'weights.h5.part')).size, 1200);

    const file = await fetchVerified(remote, { fetchImpl: fakeFetch(body, { log }), silent: true });
    assert.deepEqual(log, ['full', 'bytes=1200-']);
    assert.deepEqual(new Uint8Array(fs.readFileSync(file)), body);
    assert.equal(await fetchVerified(remote, { fetchImpl: fakeFetch(body, { log }), silent: true }), file);
    assert.equal(log.length, 2, 'a verified cached file is not downloaded again');

    const corrupt = { ...remote, fileName: 'corrupt.h5', md5: '0'.repeat(32) };
    await assert.rejects(
      fetchVerified(corrupt, { fetchImpl: fakeFetch(body), silent: true }),
      /downloaded with MD5 [0-9a-f]{32}, expected 0{32}; the partial file was deleted/,
    );
    assert.ok(!fs.existsSync(path.join(tmp, 'cache', 'corrupt.h5.part')));

    const offline = (async () => {
      throw new TypeError('fetch failed');
    }) as typeof fetch;
    await assert.rejects(
      fetchVerified({ ...remote, fileName: 'offline.h5' }, { fetchImpl: offline, silent: true }),
      /Could not download https:\/\/example\.invalid\/weights\.h5: fetch failed\.[^]*--encoder-weights offline\.h5/,
    );
  } finally {
    restoreCache();
  }
});
