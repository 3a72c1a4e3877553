/**
 * The parameter table is declared once, in native/model.h (param_shape), and the addon reports it
 * (parameterTable). Its two other readings must not drift from it: src/model/params.ts (parameterShapes,
 * PARAMETER_ORDER, for code that runs without the addon) and the PyTorch twin peers/torch_model.py
 * (parameter_shapes, read here as text: no Python runs in npm test).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { loadBinding } from '../src/model/binding.js';
import { createModel } from '../src/model/index.js';
import {
  checkAddonParameterTable,
  PARAMETER_ORDER,
  parameterShapes,
  parameterTableDifferences,
  RENAMED_PARAMETERS,
} from '../src/model/params.js';
import { UserError } from '../src/util/errors.js';
import type { ModelConfig } from '../src/model/types.js';

// Distinct sizes, none a multiple of another's factor: a shape that names the wrong size cannot match by chance.
const SIZES = { B: 2, T: 3, L: 5, C: 7, E: 11, U: 13, A: 17, V: 19 };
const config: ModelConfig = {
  locations: SIZES.L,
  channels: SIZES.C,
  embedDim: SIZES.E,
  units: SIZES.U,
  attentionUnits: SIZES.A,
  vocabSize: SIZES.V,
  dropout: 0,
  attentionLambda: 0,
};
const dims = Int32Array.of(SIZES.B, SIZES.T, SIZES.L, SIZES.C, SIZES.E, SIZES.U, SIZES.A, SIZES.V);
const addonTable = () => loadBinding().parameterTable(dims);

test('the addon reports its parameter table: names and shapes in its order', () => {
  const table = addonTable();
  assert.equal(table.length, 18);
  assert.deepEqual(table[0], { name: 'projection.kernel', shape: [SIZES.C, SIZES.E] });
  assert.deepEqual(table[9], { name: 'gru.kernel', shape: [2 * SIZES.E, 3 * SIZES.U] });
  assert.deepEqual(table[7], { name: 'attention.V.bias', shape: [1] });
  assert.equal(new Set(table.map((r) => r.name)).size, table.length, 'names are unique');
});

test('src/model/params.ts agrees with the addon: same names, order and shapes', () => {
  const table = addonTable();
  assert.deepEqual(
    table.map((r) => r.name),
    [...PARAMETER_ORDER],
  );
  const shapes: Record<string, number[]> = parameterShapes(config);
  for (const row of table) assert.deepEqual(shapes[row.name], row.shape, row.name);
  assert.deepEqual(parameterTableDifferences(table, config), []);
  for (const current of Object.values(RENAMED_PARAMETERS)) assert.ok(PARAMETER_ORDER.includes(current), current);
});

test('a drifted table is named, difference by difference, and refused with the fix', () => {
  const table = addonTable();
  const swapped = [table[1], table[0], ...table.slice(2)];
  assert.deepEqual(parameterTableDifferences(swapped, config), [
    '#0 is projection.bias, TypeScript has projection.kernel',
    '#1 is projection.kernel, TypeScript has projection.bias',
  ]);
  const reshaped = table.map((r) => (r.name === 'gru.bias' ? { name: r.name, shape: [3 * SIZES.U] } : r));
  assert.deepEqual(parameterTableDifferences(reshaped, config), [
    `gru.bias is [${3 * SIZES.U}], TypeScript has [2,${3 * SIZES.U}]`,
  ]);
  assert.deepEqual(parameterTableDifferences(table.slice(0, 17), config), ['17 parameters, TypeScript has 18']);
  assert.throws(
    () => checkAddonParameterTable(reshaped, config),
    (e: unknown) =>
      e instanceof UserError && /parameter table differs/.test(e.message) && /node-gyp rebuild/.test(e.message),
  );
  assert.doesNotThrow(() => checkAddonParameterTable(table, config));
  assert.doesNotThrow(() => createModel(config), 'the model checks its addon on creation');
});

test('parameterTable checks its argument as trainStep checks dims', () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const native = loadBinding() as any;
  assert.throws(() => native.parameterTable(), /parameterTable\(dims\): expected at least 1 arguments/);
  assert.throws(() => native.parameterTable([2, 3, 5, 7, 11, 13, 17, 19]), /dims must be a Int32Array/);
  assert.throws(() => native.parameterTable(Int32Array.of(2, 3, 5)), /dims has 3 elements, needs 8/);
  assert.throws(
    () => native.parameterTable(Int32Array.of(2, 3, 5, 7, -1, 13, 17, 19)),
    /dims: E = -1 must be positive/,
  );
  assert.throws(
    () => native.parameterTable(Int32Array.of(1, 0, 1, 1, 2 ** 30, 2 ** 30, 1, 1)),
    /would hold more than 2\^31-1 elements/,
  );
});

/**
 * The table of peers/torch_model.py's parameter_shapes as [name, shape] for the given sizes: each entry
 * `"name": [axis, ...]` where an axis is a product of integers and size letters.
 */
function pythonTable(source: string, sizes: Record<string, number>): [string, number[]][] {
  const body = /def parameter_shapes\(([^)]*)\):[\s\S]*?return \{([\s\S]*?)\n {4}\}/.exec(source);
  assert.ok(body, 'peers/torch_model.py defines parameter_shapes(...) returning a literal dict');
  const axis = (text: string) =>
    text
      .split('*')
      .map((f) => f.trim())
      .reduce((n, f) => {
        if (/^\d+$/.test(f)) return n * Number(f);
        assert.ok(f in sizes, `unknown size "${f}" in peers/torch_model.py's parameter table`);
        return n * sizes[f];
      }, 1);
  const rows = [...body[2].matchAll(/"([\w.]+)":\s*\[([^\]]*)\]/g)].map(
    ([, name, shape]) => [name, shape.split(',').map(axis)] as [string, number[]],
  );
  const entries = body[2].split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
  assert.equal(rows.length, entries.length, 'every line of the table is one "name": [shape] entry');
  return rows;
}

test('the PyTorch twin (peers/torch_model.py) agrees with the addon: same names, order and shapes', () => {
  const source = fs.readFileSync(new URL('../peers/torch_model.py', import.meta.url), 'utf8');
  const twin = pythonTable(source, SIZES);
  assert.deepEqual(
    twin,
    addonTable().map((r) => [r.name, r.shape]),
  );
  assert.match(source, /^PARAMETER_ORDER = list\(parameter_shapes\(/m, 'the twin derives its order from the table');
  const renamed = /^RENAMED_PARAMETERS = (\{.*\})$/m.exec(source);
  assert.ok(renamed, 'peers/torch_model.py defines RENAMED_PARAMETERS on one line');
  assert.deepEqual(JSON.parse(renamed[1]), RENAMED_PARAMETERS);
});
