/**
 * Every dataset reader on small generated fixtures (no ../shared): Flickr8k's official layout with its
 * stray token line, COCO single-file 80/20 and train/val layouts with caption limiting, Karpathy splits,
 * and a user's folder with CSV (quoting) or JSONL. Splits must always be by image.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { readCoco } from '../src/dataset/coco.js';
import { parseCsv } from '../src/dataset/csv.js';
import { readFlickr8k } from '../src/dataset/flickr8k.js';
import { readFolder } from '../src/dataset/folder.js';
import { readKarpathy } from '../src/dataset/karpathy.js';
import { limitCaptions, splitByImage, splitCounts } from '../src/dataset/split.js';
import type { Dataset } from '../src/dataset/types.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-readers-'));
function write(rel: string, data: string | Buffer = 'img'): string {
  const p = path.join(tmp, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, data);
  return p;
}

/** No image id in two splits, no duplicate ids, every image has captions and an existing file. */
function assertByImage(ds: Dataset): void {
  const ids = ds.images.map((im) => im.id);
  assert.equal(new Set(ids).size, ids.length, 'image ids are unique');
  for (const im of ds.images) {
    assert.ok(im.captions.length > 0, `${im.id} has captions`);
    assert.ok(path.isAbsolute(im.path) && fs.existsSync(im.path), `${im.path} exists`);
  }
}

describe('Flickr8k reader', () => {
  const root = path.join(tmp, 'f8k');
  const names = Array.from({ length: 6 }, (_, i) => `${1000 + i}_abc.jpg`);
  // 1005 is captioned and listed in dev but its file is missing; 1004 is in no list.
  names.slice(0, 5).forEach((n) => write(`f8k/Flicker8k_Dataset/${n}`));
  const lines = names.flatMap((n) => [0, 1, 2].map((k) => `${n}#${k}\t${n} caption ${k} .`));
  lines.splice(4, 0, '1003_abc.jpg.1#0\tpeople waiting for the subway');
  write('f8k/Flickr8k_text/Flickr8k.token.txt', lines.join('\n') + '\n');
  write('f8k/Flickr8k_text/Flickr_8k.trainImages.txt', '1002_abc.jpg\n1000_abc.jpg\n1001_abc.jpg\n');
  write('f8k/Flickr8k_text/Flickr_8k.devImages.txt', '1003_abc.jpg\n1005_abc.jpg\n');

  it('reads the listed images in token-file order with all their captions', () => {
    const ds = readFlickr8k({ root });
    assertByImage(ds);
    assert.deepEqual(
      ds.images.map((im) => [im.id, im.split]),
      [
        ['1000_abc.jpg', 'train'],
        ['1001_abc.jpg', 'train'],
        ['1002_abc.jpg', 'train'],
        ['1003_abc.jpg', 'dev'],
      ],
    );
    assert.deepEqual(ds.images[0].captions, [
      '1000_abc.jpg caption 0 .',
      '1000_abc.jpg caption 1 .',
      '1000_abc.jpg caption 2 .',
    ]);
    assert.equal(ds.images[0].path, path.join(root, 'Flicker8k_Dataset', '1000_abc.jpg'));
  });

  it('reports the stray line and the missing file, ignores unlisted images, has no test split', () => {
    const ds = readFlickr8k({ root });
    assert.deepEqual(ds.skipped.map((s) => s.id).sort(), ['1003_abc.jpg.1', '1005_abc.jpg']);
    assert.match(ds.skipped.find((s) => s.id === '1005_abc.jpg')!.reason, /image file not found/);
    assert.match(ds.skipped.find((s) => s.id === '1003_abc.jpg.1')!.reason, /names no image file/);
    assert.deepEqual(splitCounts(ds), {
      train: { images: 3, captions: 9 },
      dev: { images: 1, captions: 3 },
      test: { images: 0, captions: 0 },
    });
  });

  it('explains what is missing', () => {
    assert.throws(() => readFlickr8k({ root: path.join(tmp, 'nowhere') }), /Flicker8k_Dataset.*--root/s);
  });
});

describe('COCO reader', () => {
  const coco = (split: string, n: number, idBase: number) => ({
    images: Array.from({ length: n }, (_, i) => ({ id: idBase + i, file_name: `COCO_${split}_${idBase + i}.jpg` })),
    annotations: Array.from({ length: n * 5 }, (_, k) => ({
      image_id: idBase + (k % n),
      id: k,
      caption: `caption ${k} of ${idBase + (k % n)}`,
    })),
  });
  const root = path.join(tmp, 'coco');
  const train = coco('train2014', 20, 100);
  train.annotations.push({ image_id: 999, id: 9999, caption: 'orphan' }); // names no image
  write('coco/annotations/captions_train2014.json', JSON.stringify(train));
  write('coco/annotations/captions_val2014.json', JSON.stringify(coco('val2014', 5, 500)));
  train.images.slice(1).forEach((im) => write(`coco/train2014/${im.file_name}`)); // the first image file is missing

  it('with one usable caption file: splits by image 80/20 (seeded), reports the val file without images', () => {
    const ds = readCoco({ root, seed: 7 });
    assertByImage(ds);
    assert.deepEqual(splitCounts(ds), {
      train: { images: 15, captions: 75 },
      dev: { images: 4, captions: 20 },
      test: { images: 0, captions: 0 },
    });
    assert.ok(ds.skipped.some((s) => s.id === 'captions_val2014.json' && /image folder/.test(s.reason)));
    assert.ok(ds.skipped.some((s) => s.id === '100' && /image file not found/.test(s.reason)));
    assert.ok(ds.skipped.some((s) => s.id === '999' && /not in captions_train2014.json/.test(s.reason)));
    const again = readCoco({ root, seed: 7 });
    assert.deepEqual(
      again.images.map((im) => im.split),
      ds.images.map((im) => im.split),
      'same seed, same split',
    );
    const other = readCoco({ root, seed: 8 });
    assert.notDeepEqual(
      other.images.map((im) => im.split),
      ds.images.map((im) => im.split),
      'another seed, another split',
    );
  });

  it('keeps the first N captions of a seeded shuffle before splitting', () => {
    const ds = readCoco({ root, seed: 7, limitCaptions: 30 });
    assertByImage(ds);
    const total = ds.images.reduce((n, im) => n + im.captions.length, 0);
    assert.equal(total, 30);
    assert.ok(ds.images.length > 6 && ds.images.length <= 19);
  });

  it('with train and val images: train -> train, val -> dev', () => {
    const root2 = path.join(tmp, 'coco2');
    fs.cpSync(root, root2, { recursive: true });
    for (let i = 0; i < 5; i++) write(`coco2/val2014/COCO_val2014_${500 + i}.jpg`);
    const ds = readCoco({ root: root2, seed: 1 });
    assertByImage(ds);
    assert.deepEqual(splitCounts(ds).dev, { images: 5, captions: 25 });
    assert.deepEqual(splitCounts(ds).train, { images: 19, captions: 95 });
    assert.ok(ds.images.filter((im) => im.split === 'dev').every((im) => Number(im.id) >= 500));
  });
});

describe('Karpathy reader', () => {
  it('maps restval to train and val to dev, resolving filepath/filename under the image root', () => {
    const root = path.join(tmp, 'karpathy');
    const images = [
      {
        filepath: 'train2014',
        filename: 'a.jpg',
        split: 'train',
        cocoid: 1,
        sentences: [{ raw: 'A cat.', tokens: ['a', 'cat'] }],
      },
      {
        filepath: 'val2014',
        filename: 'b.jpg',
        split: 'restval',
        cocoid: 2,
        sentences: [{ raw: 'A dog.' }, { raw: 'Two dogs.' }],
      },
      { filepath: 'val2014', filename: 'c.jpg', split: 'val', cocoid: 3, sentences: [{ tokens: ['a', 'bird'] }] },
      { filepath: 'val2014', filename: 'd.jpg', split: 'test', cocoid: 4, sentences: [{ raw: 'A fish.' }] },
      { filepath: 'val2014', filename: 'missing.jpg', split: 'test', cocoid: 5, sentences: [{ raw: 'Nothing.' }] },
    ];
    for (const im of images.slice(0, 4)) write(`karpathy/${im.filepath}/${im.filename}`);
    write('karpathy/dataset_coco.json', JSON.stringify({ images, dataset: 'coco' }));
    const ds = readKarpathy({ root });
    assertByImage(ds);
    assert.deepEqual(
      ds.images.map((im) => [im.id, im.split, im.captions]),
      [
        ['1', 'train', ['A cat.']],
        ['2', 'train', ['A dog.', 'Two dogs.']],
        ['3', 'dev', ['a bird']],
        ['4', 'test', ['A fish.']],
      ],
    );
    assert.equal(ds.images[1].path, path.join(root, 'val2014', 'b.jpg'));
    assert.deepEqual(
      ds.skipped.map((s) => s.id),
      ['5'],
    );
  });
});

describe('CSV parser', () => {
  it('handles quoted commas, doubled quotes, newlines in quotes, CRLF, a BOM and blank lines', () => {
    const text =
      '\ufeffimage,caption\r\na.jpg,"A man, a plan"\r\n\r\nb.jpg,"She said ""hi"""\nc.jpg,"two\nlines"\nd.jpg,plain text\n"e.jpg",';
    assert.deepEqual(parseCsv(text), [
      ['image', 'caption'],
      ['a.jpg', 'A man, a plan'],
      ['b.jpg', 'She said "hi"'],
      ['c.jpg', 'two\nlines'],
      ['d.jpg', 'plain text'],
      ['e.jpg', ''],
    ]);
  });
  it('rejects an unterminated quote and a stray quote, naming the line', () => {
    assert.throws(() => parseCsv('image,caption\na.jpg,"open', 'x.csv'), /x\.csv: unterminated/);
    assert.throws(() => parseCsv('image,caption\na.jpg,ab"c"', 'x.csv'), /x\.csv line 2: a quote inside/);
  });
});

describe('folder reader', () => {
  const root = path.join(tmp, 'folder');
  const n = 40;
  for (let i = 0; i < n; i++) write(`folder/img/${i}.png`);

  it('reads CSV rows, groups captions by image and splits 80/10/10 by image (seeded)', () => {
    const rows = ['image,caption'];
    for (let i = 0; i < n; i++) rows.push(`img/${i}.png,"a photo, number ${i}"`, `img/${i}.png,"the ""${i}"" one"`);
    rows.push('img/missing.png,nothing here');
    write('folder/captions.csv', rows.join('\n'));
    const ds = readFolder({ root, seed: 3 });
    assertByImage(ds);
    assert.deepEqual(splitCounts(ds), {
      train: { images: 32, captions: 64 },
      dev: { images: 4, captions: 8 },
      test: { images: 4, captions: 8 },
    });
    assert.deepEqual(ds.images.find((im) => im.id === 'img/7.png')!.captions, ['a photo, number 7', 'the "7" one']);
    assert.deepEqual(
      ds.skipped.map((s) => s.id),
      ['img/missing.png'],
    );
  });

  it('reads JSONL with caption or captions and honours a given split', () => {
    const lines = [
      JSON.stringify({ image: 'img/0.png', caption: 'zero', split: 'train' }),
      JSON.stringify({ image: 'img/1.png', captions: ['one', 'uno'], split: 'val' }),
      JSON.stringify({ image: 'img/2.png', caption: 'two', split: 'test' }),
      JSON.stringify({ image: 'img/0.png', caption: 'zero again', split: 'train' }),
    ];
    const file = write('folder/own.jsonl', lines.join('\n') + '\n');
    const ds = readFolder({ root, captionsFile: file });
    assert.deepEqual(
      ds.images.map((im) => [im.id, im.split, im.captions]),
      [
        ['img/0.png', 'train', ['zero', 'zero again']],
        ['img/1.png', 'dev', ['one', 'uno']],
        ['img/2.png', 'test', ['two']],
      ],
    );
  });

  it('rejects one image in two splits, and a split on only some rows', () => {
    const both = write(
      'folder/both.jsonl',
      [
        JSON.stringify({ image: 'img/0.png', caption: 'a', split: 'train' }),
        JSON.stringify({ image: 'img/0.png', caption: 'b', split: 'test' }),
      ].join('\n'),
    );
    assert.throws(() => readFolder({ root, captionsFile: both }), /two different splits/);
    const some = write('folder/some.csv', 'image,caption,split\nimg/0.png,a,train\nimg/1.png,b,\n');
    assert.throws(() => readFolder({ root, captionsFile: some }), /some\.csv line 3: no split/);
  });
});

describe('split helpers', () => {
  it('splitByImage assigns exact rounded counts and is a permutation of the seed', () => {
    const items = Array.from({ length: 101 }, () => ({ split: 'train' as const as 'train' | 'dev' | 'test' }));
    splitByImage(items, { train: 0.8, dev: 0.1, test: 0.1 }, 5);
    const count = (s: string) => items.filter((x) => x.split === s).length;
    assert.deepEqual([count('train'), count('dev'), count('test')], [81, 10, 10]);
    const one = [{ split: 'dev' as 'train' | 'dev' | 'test' }];
    assert.equal(splitByImage(one, { train: 0.8, dev: 0.2 }, 1)[0].split, 'train');
  });

  it("limitCaptions keeps exactly N captions, preserving each image's split and caption order", () => {
    const images = Array.from({ length: 10 }, (_, i) => ({
      id: String(i),
      path: `/x/${i}`,
      split: (i < 5 ? 'train' : 'dev') as 'train' | 'dev',
      captions: ['c0', 'c1', 'c2', 'c3'],
    }));
    const kept = limitCaptions(images, 13, 42);
    assert.equal(
      kept.reduce((n, im) => n + im.captions.length, 0),
      13,
    );
    for (const im of kept) {
      assert.equal(im.split, Number(im.id) < 5 ? 'train' : 'dev');
      assert.deepEqual(im.captions, [...im.captions].sort());
    }
    assert.deepEqual(limitCaptions(images, 13, 42), kept);
    assert.equal(limitCaptions(images, 100, 42), images);
  });
});
