/**
 * The packed example table (src/train/examples.ts) holds exactly what was added, in order, and the line reader
 * (src/util/read-lines.ts) gives the same lines as splitting the whole file, whatever the piece size.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ExampleTable, ExampleTableBuilder } from '../src/train/examples.js';
import { forEachLine } from '../src/util/read-lines.js';
import { Rng } from '../src/util/rng.js';
import { tempDir } from './helpers/train-fixture.js';

test('ExampleTable: rows, images, token views and selections equal the examples added', () => {
  const rng = new Rng(3);
  // 3000 rows over 700 images, so every array of the builder grows several times
  const list = Array.from({ length: 3000 }, () => ({
    image: `im${rng.int(700)}`,
    tokens: Array.from({ length: 2 + rng.int(20) }, () => rng.int(5000)),
  }));
  const table = ExampleTable.from(list);
  assert.equal(table.length, list.length);
  assert.equal(table.imageCount, new Set(list.map((e) => e.image)).size);
  let total = 0;
  list.forEach((e, i) => {
    assert.equal(table.image(i), e.image);
    assert.deepEqual([...table.tokens(i)], e.tokens);
    assert.equal(table.tokenCount(i), e.tokens.length);
    assert.equal(table.targetTokens(i), e.tokens.length - 1);
    total += e.tokens.length - 1;
  });
  assert.equal(table.totalTargetTokens(), total);
  // one dense index per distinct image, shared by its rows
  const indexOf = new Map<string, number>();
  list.forEach((e, i) => {
    const k = table.imageIndex(i);
    assert.ok(k >= 0 && k < table.imageCount);
    assert.equal(indexOf.get(e.image) ?? k, k);
    indexOf.set(e.image, k);
  });
  assert.equal(new Set(indexOf.values()).size, indexOf.size);

  const rows = [2999, 0, 17, 17, 1500];
  const picked = table.select(rows);
  assert.equal(picked.length, rows.length);
  rows.forEach((r, i) => {
    assert.equal(picked.image(i), list[r].image);
    assert.deepEqual([...picked.tokens(i)], list[r].tokens);
  });
  assert.equal(new ExampleTableBuilder().build().length, 0);
  assert.throws(
    () => new ExampleTable(['a'], Int32Array.of(0), Uint32Array.of(0, 3), Int32Array.of(1, 2)),
    /1 rows need 2 offsets ending at 2/,
  );
});

test('forEachLine: the lines of the file, for any piece size, UTF-8 split across pieces', () => {
  const dir = tempDir('sat-lines-');
  const file = path.join(dir, 'lines.txt');
  const lines = ['', 'plain', 'caf\u00e9 \u00fcber \u{1F600} \u6f22\u5b57', '', 'x'.repeat(5000), 'last'];
  for (const [text, expected] of [
    [lines.join('\n'), lines],
    [lines.join('\n') + '\n', lines],
    [lines.join('\r\n'), lines],
    ['', []],
    ['\n', ['']],
  ] as const) {
    fs.writeFileSync(file, text);
    for (const piece of [1, 2, 3, 7, 64, 1 << 20]) {
      const got: string[] = [];
      const numbers: number[] = [];
      forEachLine(
        file,
        (line, n) => {
          got.push(line);
          numbers.push(n);
        },
        piece,
      );
      assert.deepEqual(got, expected, `piece ${piece}`);
      assert.deepEqual(
        numbers,
        got.map((_, i) => i + 1),
      );
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});
