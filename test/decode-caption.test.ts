/**
 * `sat caption` end to end on the tiny model of test/helpers/tiny-model.ts (16x16 image -> 4x4 average pool, so L = 16
 * locations x C = 3 channels), trained to tell a red image ("a red square") from a blue one ("a blue circle").
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { encoderOptionsFor } from '../src/checkpoint/source.js';
import { SERVE_BENCH_OPTIONS } from '../src/cli/bench-serve.js';
import captionCommand from '../src/cli/caption.js';
import { SERVE_OPTIONS } from '../src/cli/serve.js';
import { DEFAULT_CAPTIONER_BACKEND, loadCaptioner } from '../src/models/load-captioner.js';
import { loadCaptionerEngine } from '../src/serve/captioner-adapter.js';
import { UserError } from '../src/util/errors.js';
import { sat } from './helpers/cli-run.js';
import { makeTinyRun, RED_BLUE, SIZE, type TinyRun } from './helpers/tiny-model.js';

let dir: string;
let tiny: TinyRun;
let encoderFlags: string[];
let red: string, blue: string;

async function solid(file: string, colour: string): Promise<string> {
  await sharp({ create: { width: 20, height: 12, channels: 3, background: colour } })
    .png()
    .toFile(file);
  return file;
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-caption-'));
  tiny = await makeTinyRun(dir, RED_BLUE, { steps: 300 });
  encoderFlags = tiny.encoderFlags;
  red = await solid(path.join(dir, 'red.png'), '#e01010');
  blue = await solid(path.join(dir, 'blue.jpg'), '#1030e0');
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('the library: a trained checkpoint captions its two images, batched and alone alike', async () => {
  const captioner = await loadCaptioner(tiny.run, { backend: 'native', encoder: tiny.encoder });
  try {
    assert.equal(captioner.info.backend, 'native');
    assert.match(captioner.info.modelId, /^checkpoints-best-[0-9a-f]{12}$/);
    for (const options of [{}, { beam: 3 }]) {
      const both = await captioner.captionBatch([red, blue], options);
      assert.deepEqual(
        both.map((c) => c.caption),
        ['a red square', 'a blue circle'],
        JSON.stringify(options),
      );
      assert.ok(
        both.every((c) => c.finished && c.words.length === 3 && c.words.every((w) => w.attention.length === 16)),
      );
      const sum = both[0].words[0].attention.reduce((s, a) => s + a, 0);
      assert.ok(Math.abs(sum - 1) < 1e-4, `attention sums to ${sum}`);
      const alone = await captioner.caption(blue, options);
      assert.deepEqual(alone.ids, both[1].ids);
    }
  } finally {
    await captioner.dispose();
  }
});

test('one default backend: onnx for a checkpoint and a bundle, in loadCaptioner, the engine and every command', async () => {
  assert.equal(DEFAULT_CAPTIONER_BACKEND, 'onnx');
  for (const options of [captionCommand.options, SERVE_OPTIONS, SERVE_BENCH_OPTIONS])
    assert.equal(options.backend.default, DEFAULT_CAPTIONER_BACKEND);
  const bundle = path.join(dir, 'default-bundle');
  await sat(['export', '--model', tiny.run, '--out', bundle, ...encoderFlags]);
  for (const source of [tiny.run, bundle]) {
    const encoder = source === bundle ? undefined : tiny.encoder;
    const captioner = await loadCaptioner(source, { encoder });
    const engine = await loadCaptionerEngine(source, { encoder });
    try {
      assert.equal(captioner.info.backend, DEFAULT_CAPTIONER_BACKEND, source);
      assert.equal(engine.info.backend, DEFAULT_CAPTIONER_BACKEND, source);
    } finally {
      await captioner.dispose();
      await engine.dispose();
    }
  }
  // the other backend is one word away on a checkpoint, and refused with the way out on a bundle
  const native = await loadCaptioner(tiny.run, { backend: 'native', encoder: tiny.encoder });
  assert.equal(native.info.backend, 'native');
  await native.dispose();
  await assert.rejects(loadCaptioner(bundle, { backend: 'native' }), /native backend needs the checkpoint/);
});

const cli = (args: string[]) => sat(['caption', ...args]);

test('the CLI: plain captions, --json with per-word attention, --attention figures', async () => {
  const plain = await cli(['--model', path.join(dir, 'run'), ...encoderFlags, '--beam', '2', red, blue]);
  assert.deepEqual(plain.trim().split('\n'), [`${red}\ta red square`, `${blue}\ta blue circle`]);

  const figures = path.join(dir, 'figures');
  const json = await cli([
    '--model',
    path.join(dir, 'run', 'checkpoints'),
    ...encoderFlags,
    '--json',
    '--attention',
    figures,
    red,
    blue,
  ]);
  const out = JSON.parse(json);
  assert.equal(out.locations, 16);
  assert.deepEqual(out.decoding, { kind: 'greedy', maxLength: 4 });
  assert.deepEqual(
    out.captions.map((c: { caption: string }) => c.caption),
    ['a red square', 'a blue circle'],
  );
  assert.deepEqual(out.captions[0].grid, [4, 4]);
  assert.equal(out.captions[0].attention.length, 3);
  assert.equal(out.captions[0].attention[0].length, 16);
  // --json lists the beam's alternatives (plain output does not ask for them)
  const beam = JSON.parse(await cli(['--model', path.join(dir, 'run'), ...encoderFlags, '--json', '--beam', '2', red]));
  assert.deepEqual(beam.decoding, { kind: 'beam', beam: 2, maxLength: 4 });
  assert.equal(beam.captions[0].alternatives[0].caption, 'a red square');
  for (const name of ['red.attention.png', 'blue.attention.png']) {
    const meta = await sharp(path.join(figures, name)).metadata();
    assert.equal(meta.format, 'png');
    assert.equal(meta.width, 3 * (SIZE + 8) + 8); // three word panels in one row
  }
});

test('the CLI: clear errors for a missing image, a folder without a checkpoint, conflicting flags', async () => {
  const fails = async (args: string[], message: RegExp) => {
    await assert.rejects(cli(args), (e) => e instanceof UserError && message.test(e.message));
  };
  await fails(['--model', path.join(dir, 'run'), path.join(dir, 'nope.jpg')], /image .*nope\.jpg does not exist/);
  await fails(['--model', dir, red], /no best\.safetensors or latest\.safetensors/);
  await fails(
    ['--model', path.join(dir, 'run'), '--beam', '3', '--sample', red],
    /--beam and --sample exclude each other/,
  );
  await fails(['--model', path.join(dir, 'run'), '--attention', path.join(dir, 'x.png'), red, blue], /need a folder/);
  // a user .onnx encoder cannot be rebuilt from its id alone: the error says which flags to pass
  await fails(['--model', path.join(dir, 'run'), red], /pass the same --encoder FILE\.onnx/);
});

test('caption options: one set of rules for the library and the CLI, the CLI naming its flags', async () => {
  const captioner = await loadCaptioner(tiny.run, { encoder: tiny.encoder });
  try {
    for (const [options, flags, api, cliMessage] of [
      [
        { alpha: 0.5 },
        ['--alpha', '0.5'],
        /^alpha \(length normalisation\) applies to beam search: give beam K with K > 1/,
        /^--alpha \(length normalisation\) applies to beam search: give --beam K/,
      ],
      [
        { beam: 0 },
        ['--beam', '0'],
        /^beam must be an integer from 1 to 100, got 0\.$/,
        /^--beam must be an integer from 1 to 100, got 0\.$/,
      ],
      [
        { maxLength: 1.5 },
        ['--max-length', '1.5'],
        /^maxLength must be an integer/,
        /^--max-length must be an integer/,
      ],
      [{ seed: 3 }, ['--seed', '3'], /^seed applies to sample only/, /^--seed applies to --sample only/],
      [
        { beam: 2, sample: true },
        ['--beam', '2', '--sample'],
        /^beam and sample exclude each other/,
        /^--beam and --sample exclude each other/,
      ],
      [
        { beam: 2, groups: 3 },
        ['--beam', '2', '--groups', '3'],
        /^groups 3 is larger than the beam \(beam 2\)/,
        /^--groups 3 is larger than the beam \(--beam 2\)/,
      ],
      [
        { sample: true, topP: 0 },
        ['--sample', '--top-p', '0'],
        /^topP must be a number greater than 0 and at most 1, got 0\.$/,
        /^--top-p must be a number greater than 0/,
      ],
      [{ topK: 3 }, ['--top-k', '3'], /^topK applies to sample only/, /^--top-k applies to --sample only/],
    ] as const) {
      await assert.rejects(
        captioner.caption(red, options),
        (e) => e instanceof UserError && api.test(e.message),
        JSON.stringify(options),
      );
      await assert.rejects(
        cli(['--model', tiny.run, ...flags, red]),
        (e) => e instanceof UserError && cliMessage.test(e.message),
        flags.join(' '),
      );
    }
    await assert.rejects(
      cli(['--model', tiny.run, '--beam', 'wide', red]),
      /--beam must be an integer from 1 to 100, got "wide"/,
    );
    // the new options reach the model through the same path: diverse beam, trigram blocking, nucleus sampling
    const flags = ['--beam', '4', '--groups', '2', '--diversity', '1', '--block-trigrams'];
    assert.equal((await cli(['--model', tiny.run, ...encoderFlags, ...flags, red])).trim(), 'a red square');
    const nucleus = await captioner.caption(blue, { sample: true, topP: 1e-6, seed: 9 });
    assert.equal(nucleus.caption, 'a blue circle');
    await assert.rejects(
      captioner.caption(red, { beam: 2, alternatives: 3 }),
      /alternatives must be true, false or a count from 0 to beam \(2\), got 3/,
    );
  } finally {
    await captioner.dispose();
  }
});

test("encoder options come from the checkpoint's encoder id, flags fill the gaps", () => {
  const meta = (id: string) => ({ encoder: { id, locations: 64, channels: 2048 } });
  assert.deepEqual(encoderOptionsFor(meta('inception_v3_nsfwjs-mixed10')), {
    encoder: 'inception_v3_nsfwjs',
    layer: 'mixed10',
  });
  assert.deepEqual(encoderOptionsFor(meta('inception_v3_imagenet-mixed7'), { weights: 'w.h5' }), {
    encoder: 'inception_v3_imagenet',
    layer: 'mixed7',
    weights: 'w.h5',
  });
  assert.deepEqual(encoderOptionsFor(meta('inception_v3_nsfwjs-mixed2-96')), {
    encoder: 'inception_v3_nsfwjs',
    layer: 'mixed2',
    size: 96,
  });
  assert.deepEqual(encoderOptionsFor(meta('mobilenet_v2_imagenet'), { weights: 'dir' }), {
    encoder: 'mobilenet_v2',
    weights: 'dir',
  });
  assert.throws(() => encoderOptionsFor(meta('resnet-out-1234abcd')), /pass the same --encoder FILE\.onnx/);
});
