/**
 * Malformed caption files: every bad line or entry is a UserError that names the file and the line (or the
 * entry's index), never a TypeError from reading a field of null.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { readCoco } from '../src/dataset/coco.js';
import { readFolder } from '../src/dataset/folder.js';
import { readKarpathy } from '../src/dataset/karpathy.js';
import { UserError } from '../src/util/errors.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-malformed-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  const f = path.join(root, name);
  fs.writeFileSync(f, text);
  return f;
};
const userError = (pattern: RegExp) => (e: unknown) => e instanceof UserError && pattern.test(e.message);
const good = '{"image": "a.jpg", "caption": "a dog"}';

test('captions.jsonl: null, lists, numbers, bad JSON and mistyped fields name the file and line', () => {
  const cases: [string, RegExp][] = [
    [`${good}\nnull`, /c\.jsonl line 2: expected an object like \{"image": "a\.jpg", "caption": "\.\.\."\}, got null/],
    [`${good}\n\n[1, 2]`, /c\.jsonl line 3: expected an object .* got a list/],
    ['42', /c\.jsonl line 1: expected an object .* got number/],
    ['"a.jpg"', /c\.jsonl line 1: expected an object .* got string/],
    [`${good}\n{"image": "a.jpg", "caption": "x"`, /c\.jsonl line 2: not valid JSON/],
    ['{"image": 3, "caption": "x"}', /c\.jsonl line 1: needs a string "image" field/],
    ['{"image": "a.jpg", "captions": ["x", null]}', /c\.jsonl line 1: needs "caption": "\.\.\." or "captions"/],
    ['{"image": "a.jpg", "caption": "x", "split": {"name": "train"}}', /c\.jsonl line 1: "split" must be a string/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(() => readFolder({ root, captionsFile: write('c.jsonl', text) }), userError(pattern), text);
  }
  fs.writeFileSync(path.join(root, 'a.jpg'), 'x');
  assert.equal(
    readFolder({ root, captionsFile: write('bom.jsonl', `\uFEFF${good}\n`) }).images.length,
    1,
    'a byte order mark is not an error',
  );
});

test('captions.csv: extra or missing fields name the file and the line the row starts on', () => {
  assert.throws(
    () => readFolder({ root, captionsFile: write('c.csv', 'image,caption\n\na.jpg,a dog, running\n') }),
    userError(/c\.csv line 3: 3 fields but the header has 2; put a caption that contains commas in double quotes/),
  );
  assert.throws(
    () => readFolder({ root, captionsFile: write('c.csv', 'image,caption\n"a\nb.jpg",x\nc.jpg\n') }),
    userError(/c\.csv line 4: 1 field, no "caption" column/),
  );
  assert.throws(
    () => readFolder({ root, captionsFile: write('c.csv', 'caption,image\nx\n') }),
    userError(/c\.csv line 2: 1 field, no "image" column/),
  );
  assert.equal(
    readFolder({ root, captionsFile: write('ok.csv', 'image,caption\na.jpg,"a dog, running"\n') }).images[0]
      .captions[0],
    'a dog, running',
  );
});

test('COCO and Karpathy files: a null or mistyped entry is named by its index', () => {
  const coco = (images: unknown[], annotations: unknown[]) =>
    write('captions_x.json', JSON.stringify({ images, annotations }));
  assert.throws(
    () => readCoco({ root, captionsFile: coco([{ id: 1, file_name: 'a.jpg' }, null], []) }),
    userError(/captions_x\.json: images\[1\] is null; each image needs/),
  );
  assert.throws(() => readCoco({ root, captionsFile: coco([{ id: 1 }], []) }), userError(/images\[0\] is \{"id":1\}/));
  assert.throws(
    () =>
      readCoco({
        root,
        captionsFile: coco([{ id: 1, file_name: 'a.jpg' }], [{ image_id: 1, caption: 'x' }, { image_id: 1 }]),
      }),
    userError(
      /captions_x\.json: annotations\[1\] is \{"image_id":1\}; each image needs .* each annotation \{"image_id", "caption"\}/,
    ),
  );
  assert.equal(
    readCoco({ root, captionsFile: coco([{ id: 1, file_name: 'a.jpg' }], [{ image_id: 1, caption: ' a dog ' }]) })
      .images[0].captions[0],
    'a dog',
  );

  const karpathy = (images: unknown[]) => write('dataset_x.json', JSON.stringify({ images }));
  assert.throws(
    () => readKarpathy({ root, captionsFile: karpathy([null]) }),
    userError(/dataset_x\.json: images\[0\] is null; each image needs/),
  );
  assert.throws(
    () => readKarpathy({ root, captionsFile: karpathy([{ filename: 'a.jpg', split: 'train', sentences: [null] }]) }),
    userError(/images\[0\] has sentences \[null\]/),
  );
  assert.throws(
    () => readKarpathy({ root, captionsFile: karpathy([{ filename: 7, split: 'train', sentences: [] }]) }),
    userError(/images\[0\] is \{"filename":7/),
  );
});
