/**
 * The synthetic shapes dataset: deterministic from its seed, boxes inside the image and apart, captions
 * that are true of the layout, a small vocabulary, pixels of the named colour inside each box, and a
 * by-image train/dev/test split.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import {
  generateShapesDataset,
  layoutShapes,
  loadShapesAnnotations,
  readShapes,
  SHAPE_COLORS,
} from '../src/dataset/shapes.js';
import { tokenize } from '../src/vocab/vocabulary.js';

const centre = (b: number[]) => [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2];

describe('layoutShapes', () => {
  it('is deterministic: the same seed gives byte-identical captions and boxes, another seed differs', () => {
    const a = JSON.stringify(layoutShapes(200, 11));
    assert.equal(JSON.stringify(layoutShapes(200, 11)), a);
    assert.notEqual(JSON.stringify(layoutShapes(200, 12)), a);
  });

  it('places 1-3 distinct objects inside the image, at least 4% of the side apart', () => {
    const size = 224;
    const m = layoutShapes(300, 3, size);
    const counts = [0, 0, 0, 0];
    for (const im of m.images) {
      counts[im.objects.length]++;
      const keys = im.objects.map((o) => o.color + o.shape);
      assert.equal(new Set(keys).size, keys.length);
      for (const [i, o] of im.objects.entries()) {
        assert.ok(o.box[0] >= 0 && o.box[1] >= 0 && o.box[2] <= size && o.box[3] <= size);
        for (const p of im.objects.slice(i + 1)) {
          const gap = Math.max(p.box[0] - o.box[2], o.box[0] - p.box[2], p.box[1] - o.box[3], o.box[1] - p.box[3]);
          assert.ok(gap >= Math.round(size * 0.04), `${im.id}: boxes ${o.box} and ${p.box} too close`);
        }
      }
    }
    assert.ok(counts[1] > 50 && counts[2] > 50 && counts[3] > 50, `counts ${counts}`);
  });

  it('writes captions that are true: every object is named, relations match the boxes', () => {
    const m = layoutShapes(300, 5);
    const checked: Record<string, number> = { 'left of': 0, 'right of': 0, above: 0, below: 0 };
    for (const im of m.images) {
      assert.equal(im.captions.length, 5);
      for (const c of im.captions) {
        for (const o of im.objects)
          assert.ok(c.includes(`${o.color} ${o.shape}`), `"${c}" names ${o.color} ${o.shape}`);
        // "X left of Y": X's centre is left of Y's (and similarly for the other relations).
        const rel = /a (\w+ \w+) (left of|right of|above|below) a (\w+ \w+)/.exec(c);
        if (!rel) continue;
        const find = (name: string) => im.objects.find((o) => `${o.color} ${o.shape}` === name)!;
        const [ax, ay] = centre(find(rel[1]).box),
          [bx, by] = centre(find(rel[3]).box);
        const ok = { 'left of': ax < bx, 'right of': ax > bx, above: ay < by, below: ay > by }[rel[2]];
        assert.ok(ok, `${im.id}: "${c}" contradicts boxes ${JSON.stringify(im.objects)}`);
        checked[rel[2]]++;
      }
    }
    // Every relation was checked, many times (measured 196, 196, 106, 106; captions of single objects have none).
    assert.ok(
      Object.values(checked).every((n) => n >= 50),
      `relations checked: ${JSON.stringify(checked)}`,
    );
  });

  it('keeps the vocabulary small and splits by image roughly 80/10/10', () => {
    const m = layoutShapes(500, 9);
    const words = new Set(m.images.flatMap((im) => im.captions.flatMap(tokenize)));
    assert.ok(words.size <= 30, `${words.size} words: ${[...words].join(' ')}`);
    const n = (s: string) => m.images.filter((im) => im.split === s).length;
    assert.deepEqual([n('train'), n('dev'), n('test')], [400, 50, 50]);
  });
});

describe('generateShapesDataset', () => {
  it('renders images whose box centres have the named colour, and reads back as a Dataset', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-shapes-'));
    const m = await generateShapesDataset({ dir, count: 12, seed: 4, size: 96, silent: true });
    for (const im of m.images) {
      const { data, info } = await sharp(path.join(dir, im.file))
        .removeAlpha()
        .raw()
        .toBuffer({ resolveWithObject: true });
      assert.equal(info.width, 96);
      for (const o of im.objects) {
        // The centre of a triangle's box is inside the triangle too (apex up, base at the bottom).
        const [cx, cy] = centre(o.box).map(Math.floor);
        const px = [0, 1, 2].map((c) => data[(cy * info.width + cx) * info.channels + c]);
        const want = SHAPE_COLORS[o.color].match(/\w\w/g)!.map((h) => parseInt(h, 16));
        assert.deepEqual(px, want, `${im.id} ${o.color} ${o.shape} at ${cx},${cy}`);
      }
    }
    const ds = readShapes({ root: dir });
    assert.equal(ds.images.length, 12);
    assert.deepEqual(
      ds.images.map((im) => im.captions),
      m.images.map((im) => im.captions),
    );
    assert.deepEqual(loadShapesAnnotations(dir).get(m.images[3].id), m.images[3].objects);

    // A second call with the same parameters reuses the files; the manifest is byte-identical.
    const before = fs.readFileSync(path.join(dir, 'shapes.json'));
    const mtime = fs.statSync(path.join(dir, m.images[0].file)).mtimeMs;
    await generateShapesDataset({ dir, count: 12, seed: 4, size: 96, silent: true });
    assert.deepEqual(fs.readFileSync(path.join(dir, 'shapes.json')), before);
    assert.equal(fs.statSync(path.join(dir, m.images[0].file)).mtimeMs, mtime);

    // A smaller generation in the same folder removes the images it no longer lists.
    await generateShapesDataset({ dir, count: 5, seed: 4, size: 96, silent: true });
    assert.equal(fs.readdirSync(path.join(dir, 'images')).length, 5);
    assert.equal(readShapes({ root: dir }).images.length, 5);
  });
});
