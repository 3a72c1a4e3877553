/**
 * `sat prepare` end to end on generated data: the run directory round-trips through loadRun, the
 * vocabulary is counted on train captions only, tokens match the vocabulary, splits stay by image,
 * and the CLI prints the report (and a clean error for bad input).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { formatReport, imagesOf, loadRun, prepareRun } from '../src/dataset/prepare.js';
import { UserError } from '../src/util/errors.js';
import { sat } from './helpers/cli-run.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-prepare-'));

describe('prepareRun / loadRun', () => {
  it('prepares the shapes dataset and loads back the same run', async () => {
    const out = path.join(tmp, 'shapes-run');
    const prepared = await prepareRun({ dataset: 'shapes', out, images: 40, imageSize: 64, seed: 3, silent: true });
    const run = loadRun(out);
    assert.deepEqual(run.info, prepared.info);
    assert.deepEqual(run.images, prepared.images);
    assert.deepEqual(run.vocab.toJSON(), prepared.vocab.toJSON());
    assert.equal(run.info.dataset.root, path.join(out, 'shapes'));
    const c = run.info.counts;
    assert.equal(c.train.images + c.dev.images + c.test.images, 40);
    assert.equal(c.train.captions, 5 * c.train.images);
    assert.ok(run.vocab.size < 40);
    for (const im of run.images) {
      assert.equal(im.tokens.length, im.captions.length);
      im.tokens.forEach((t, k) => {
        assert.deepEqual(t, run.vocab.encode(im.captions[k]));
        assert.equal(t[0], run.vocab.startId);
        assert.equal(t[t.length - 1], run.vocab.endId);
        assert.ok(t.length <= run.vocab.maxLength);
      });
    }
    assert.equal(imagesOf(run, 'dev').length, c.dev.images);
    assert.match(formatReport(run.info), /train +\d+ images +\d+ captions/);
  });

  it('names the file and line of a bad images.jsonl line, and streams the rest', async () => {
    const out = path.join(tmp, 'bad-lines');
    await prepareRun({ dataset: 'shapes', out, images: 6, imageSize: 32, seed: 3, silent: true });
    const file = path.join(out, 'images.jsonl');
    const good = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
    fs.writeFileSync(file, good.join('\r\n')); // CRLF and no final newline still read
    assert.deepEqual(
      loadRun(out).images.map((im) => im.id),
      good.map((l) => JSON.parse(l).id),
    );
    for (const [bad, why] of [
      ['null', /line 3: not a prepared image/],
      ['{"id": "x"}', /line 3: not a prepared image/],
      ['{"id": ', /line 3: not JSON/],
    ] as const) {
      fs.writeFileSync(file, [good[0], good[1], bad, good[2]].join('\n') + '\n');
      assert.throws(
        () => loadRun(out),
        (e: unknown) => e instanceof UserError && why.test(e.message) && e.message.includes(file),
      );
    }
  });

  it('counts the vocabulary on train captions only and truncates to --max-length', async () => {
    const root = path.join(tmp, 'own');
    fs.mkdirSync(root, { recursive: true });
    for (const f of ['a.png', 'b.png', 'c.png']) fs.writeFileSync(path.join(root, f), 'x');
    fs.writeFileSync(
      path.join(root, 'captions.csv'),
      'image,caption,split\na.png,"a dog runs on the grass",train\nb.png,"a dog sleeps",train\nc.png,"a zebra runs",dev\n',
    );
    const out = path.join(tmp, 'own-run');
    const { info, vocab, images } = await prepareRun({ dataset: 'folder', root, out, maxLength: 5, silent: true });
    assert.ok(!vocab.words.includes('zebra'), 'dev-only words are not in the vocabulary');
    const dev = images.find((im) => im.split === 'dev')!;
    assert.deepEqual(dev.tokens[0], [vocab.startId, vocab.id('a'), vocab.unkId, vocab.id('runs'), vocab.endId]);
    assert.equal(info.truncatedCaptions, 1); // "a dog runs on the grass" has 8 tokens with <start>/<end>
    assert.deepEqual(info.captionLength, { min: 5, median: 8, p95: 8, max: 8 });
    assert.equal(info.vocab.size, 2 + 9); // <start> <end> a dog runs on the grass sleeps
  });

  it('refuses to overwrite a run that already has checkpoints, unless forced', async () => {
    const out = path.join(tmp, 'shapes-run');
    fs.mkdirSync(path.join(out, 'checkpoints'), { recursive: true });
    await assert.rejects(
      prepareRun({ dataset: 'shapes', out, images: 40, imageSize: 64, seed: 3, silent: true }),
      /--force/,
    );
    await prepareRun({ dataset: 'shapes', out, images: 40, imageSize: 64, seed: 3, silent: true, force: true });
  });

  it('loadRun names the command to run when the directory is not a run', () => {
    assert.throws(() => loadRun(path.join(tmp, 'nothing')), /sat prepare/);
  });
});

describe('sat prepare (CLI)', () => {
  it('prints counts, vocabulary size, length stats and the skipped report', async () => {
    const root = path.join(tmp, 'cli');
    fs.mkdirSync(root, { recursive: true });
    const rows = ['image,caption'];
    for (let i = 0; i < 10; i++) {
      fs.writeFileSync(path.join(root, `${i}.png`), 'x');
      rows.push(`${i}.png,"picture ${i}, of things"`);
    }
    rows.push('gone.png,not there');
    fs.writeFileSync(path.join(root, 'captions.csv'), rows.join('\n'));
    const stdout = await sat([
      'prepare',
      '--dataset',
      'folder',
      '--root',
      root,
      '--out',
      path.join(tmp, 'cli-run'),
      '--top-k',
      '8',
    ]);
    assert.match(stdout, /train +8 images +8 captions/);
    assert.match(stdout, /dev +1 images +1 captions/);
    assert.match(
      stdout,
      /vocabulary: V = 8 \(<pad>, <unk> \+ 6 of 13 distinct train tokens incl\. <start>\/<end>; top-k 8\)/,
    );
    assert.match(stdout, /min 6, median 6, p95 6, max 6/);
    assert.match(stdout, /1 x image file not found .*: gone\.png/);
  });

  it('refuses a bad option with a message naming it', async () => {
    await assert.rejects(
      sat(['prepare', '--dataset', 'nope', '--out', path.join(tmp, 'x')]),
      (e) =>
        e instanceof UserError && /--dataset must be one of flickr8k, coco, karpathy, folder, shapes/.test(e.message),
    );
  });
});
