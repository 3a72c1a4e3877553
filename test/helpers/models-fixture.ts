/**
 * Bundles for the model-source tests: the three-colour checkpoint of test/helpers/export-fixture.ts exported with
 * `sat export`'s code into DIR/bundle, with a model card naming it.
 */
import path from 'node:path';
import { buildBundle, writeBundle } from '../../src/export/bundle.js';
import type { ModelCard } from '../../src/export/manifest.js';
import { makeCaptionRun, type CaptionFixture } from './export-fixture.js';

export interface BundleFixture extends CaptionFixture {
  /** The exported bundle folder. */
  bundle: string;
  /** Its manifest's modelId. */
  id: string;
}

export async function makeBundleFixture(
  dir: string,
  card: ModelCard = { evaluatedOn: 'the three colours', scores: { 'BLEU-4': 1 } },
): Promise<BundleFixture> {
  const fx = await makeCaptionRun(dir);
  const built = await buildBundle(fx.run, { encoder: fx.encoder });
  built.manifest.card = card;
  const bundle = path.join(dir, 'bundle');
  writeBundle(bundle, built);
  return { ...fx, bundle, id: built.manifest.modelId };
}
