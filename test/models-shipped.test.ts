/**
 * The model shipped in the package (models/flickr8k-mobilenet-v2/, docs/models.md): every file matches the
 * manifest's size and SHA-256, the package's files include it, it stays within the size budget, it is what
 * loadCaptioner() and `sat caption` use when no model is named, and its caption memory reranks by consensus.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { DEFAULT_MODEL_NAME } from '../src/models/default-model.js';
import { loadCaptioner } from '../src/models/load-captioner.js';
import { resolveModelSource } from '../src/models/source.js';
import { packageRoot } from '../src/util/package-files.js';
import { sat } from './helpers/cli-run.js';

const dir = path.join(packageRoot(), 'models', DEFAULT_MODEL_NAME);
/** The most the shipped bundle may add to the package: its size budget (11.2 MB of model, 11.7 MB of caption memory). */
const MAX_BUNDLE_BYTES = 23.5e6;

function shippedManifest(): { modelId: string; files: Record<string, { sha256: string; bytes: number }> } {
  const file = path.join(dir, 'manifest.json');
  assert.ok(
    fs.existsSync(file),
    `the shipped model is missing: ${file} does not exist. Export the trained model there ` +
      '(`sat export --model RUN --dtype int8 --card CARD.json --out models/flickr8k-mobilenet-v2`, see docs/models.md) before release.',
  );
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

test('the shipped bundle: every file has the SHA-256 and size its manifest lists, within the size budget', () => {
  const manifest = shippedManifest();
  let total = fs.statSync(path.join(dir, 'manifest.json')).size;
  for (const [name, want] of Object.entries(manifest.files)) {
    const bytes = fs.readFileSync(path.join(dir, name));
    assert.equal(bytes.length, want.bytes, `${name}: size`);
    assert.equal(crypto.createHash('sha256').update(bytes).digest('hex'), want.sha256, `${name}: SHA-256`);
    total += bytes.length;
  }
  assert.ok(total <= MAX_BUNDLE_BYTES, `the shipped bundle has ${total} bytes, more than ${MAX_BUNDLE_BYTES}`);
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { files: string[] };
  assert.ok(pkg.files.includes('models'), 'package.json "files" ships models/');
});

test('no model named: loadCaptioner() and sat caption use the shipped model and say so', async () => {
  const { modelId } = shippedManifest();
  const resolved = await resolveModelSource();
  assert.deepEqual(resolved, { kind: 'bundle', path: dir, name: DEFAULT_MODEL_NAME, origin: 'shipped', id: modelId });
  const image = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#406080' } })
    .png()
    .toBuffer();
  const captioner = await loadCaptioner();
  try {
    assert.equal(captioner.info.modelId, modelId);
    assert.equal(captioner.info.modelName, DEFAULT_MODEL_NAME);
    const { caption } = await captioner.caption(image);
    assert.ok(caption.length > 0);
    // its caption memory reranks by consensus out of the box
    assert.equal(captioner.info.consensus, true);
    const reranked = await captioner.caption(image, { beam: 3, consensus: 60, alternatives: true });
    assert.equal(reranked.caption, reranked.alternatives[0].caption);
    assert.ok(reranked.alternatives.length > 3, 'the beam and the samples were ranked');
  } finally {
    await captioner.dispose();
  }
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sat-shipped-')), 'one.png');
  try {
    fs.writeFileSync(file, image);
    const json = JSON.parse(await sat(['caption', '--json', file]));
    assert.deepEqual(json.model, { id: modelId, name: DEFAULT_MODEL_NAME, origin: 'shipped', path: dir });
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
});
