/**
 * Child process of the kill -9 test in features-extract.test.ts: extracts one image per batch, pausing
 * after each so the parent can SIGKILL it mid-way. Not a test file itself.
 */
import fs from 'node:fs';
import { extractFeatures, type ImageRef } from '../../src/features/extract.js';
import { scaleEncoder } from './features-fixture.js';

const [list, store] = process.argv.slice(2);
const images = JSON.parse(fs.readFileSync(list, 'utf8')) as ImageRef[];
await extractFeatures({
  images,
  model: scaleEncoder(),
  dir: store,
  batchSize: 1,
  progress: false,
  log: () => {},
  afterBatch: () => new Promise((resolve) => setTimeout(resolve, 50)),
});
