/**
 * Flickr8k in its official layout (the one the jbrownlee/Datasets release zips extract to):
 *
 *   ROOT/Flicker8k_Dataset/*.jpg              (sic: "Flicker"; "Flickr8k_Dataset" and "Images" also accepted)
 *   ROOT/Flickr8k_text/Flickr8k.token.txt     lines "name.jpg#k<TAB>caption", k = 0..4
 *   ROOT/Flickr8k_text/Flickr_8k.{train,dev,test}Images.txt   one image file name per line
 *
 * The split lists decide everything: an image in no list is not used, and a missing list means that
 * split is absent. The token file may also sit directly in ROOT (the text zip has no top folder).
 * The real token file has a stray entry "2258277193_586949ec62.jpg.1" naming no image; it is reported
 * in `skipped`, as is every listed image whose file or captions are missing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import type { Dataset, DatasetImage, Split } from './types.js';

const IMAGE_DIRS = ['Flicker8k_Dataset', 'Flickr8k_Dataset', 'Images'];
const TEXT_DIRS = ['Flickr8k_text', '.'];
const LIST_FILES: Record<Split, string> = {
  train: 'Flickr_8k.trainImages.txt',
  dev: 'Flickr_8k.devImages.txt',
  test: 'Flickr_8k.testImages.txt',
};
const IMAGE_NAME = /\.(jpe?g|png)$/i;

export interface Flickr8kOptions {
  root: string;
  /** Override the token file (default: ROOT/Flickr8k_text/Flickr8k.token.txt). */
  captionsFile?: string;
}

export function readFlickr8k(opts: Flickr8kOptions): Dataset {
  const root = path.resolve(opts.root);
  const imageDir = IMAGE_DIRS.map((d) => path.join(root, d)).find((d) => fs.existsSync(d));
  if (!imageDir) {
    throw new UserError(
      `Flickr8k images not found: expected one of ${IMAGE_DIRS.map((d) => path.join(root, d)).join(', ')}. ` +
        'Pass the folder holding Flicker8k_Dataset/ and Flickr8k_text/ as --root, or add --download.',
    );
  }
  const tokenFile = opts.captionsFile
    ? path.resolve(opts.captionsFile)
    : TEXT_DIRS.map((d) => path.join(root, d, 'Flickr8k.token.txt')).find((f) => fs.existsSync(f));
  if (!tokenFile || !fs.existsSync(tokenFile)) {
    throw new UserError(
      `Flickr8k captions not found: expected ${path.join(root, 'Flickr8k_text', 'Flickr8k.token.txt')} (or pass --captions FILE).`,
    );
  }
  const textDir = path.dirname(tokenFile);

  const skipped: Dataset['skipped'] = [];
  const captions = new Map<string, string[]>();
  fs.readFileSync(tokenFile, 'utf8')
    .split(/\r?\n/)
    .forEach((line, i) => {
      if (line.trim() === '') return;
      const tab = line.indexOf('\t');
      const hash = line.lastIndexOf('#', tab);
      if (tab < 0 || hash < 0) {
        skipped.push({
          id: `${path.basename(tokenFile)}:${i + 1}`,
          reason: 'malformed line (expected "name.jpg#k<TAB>caption")',
        });
        return;
      }
      const name = line.slice(0, hash);
      const list = captions.get(name) ?? [];
      list.push(line.slice(tab + 1).trim());
      captions.set(name, list);
    });

  const images: DatasetImage[] = [];
  const listed = new Set<string>();
  for (const split of ['train', 'dev', 'test'] as const) {
    const listFile = path.join(textDir, LIST_FILES[split]);
    if (!fs.existsSync(listFile)) continue; // that split is absent
    const names = fs
      .readFileSync(listFile, 'utf8')
      .split(/\r?\n/)
      .map((s) => s.trim())
      .filter(Boolean);
    for (const name of names) {
      if (listed.has(name)) {
        skipped.push({ id: name, reason: `listed twice (again in ${LIST_FILES[split]}); kept in its first split` });
        continue;
      }
      listed.add(name);
      const file = path.join(imageDir, name);
      const caps = captions.get(name);
      if (!caps)
        skipped.push({ id: name, reason: `in ${LIST_FILES[split]} but has no caption in ${path.basename(tokenFile)}` });
      else if (!fs.existsSync(file))
        skipped.push({ id: name, reason: `in ${LIST_FILES[split]} but image file not found` });
      else images.push({ id: name, path: file, captions: caps, split });
    }
  }
  // Token-file order, not list order: the vocabulary breaks count ties by first occurrence, and the
  // tutorial feeds captions in token-file order, so this reproduces its word ids exactly.
  const fileOrder = new Map([...captions.keys()].map((name, i) => [name, i]));
  images.sort((a, b) => fileOrder.get(a.id)! - fileOrder.get(b.id)!);
  if (listed.size === 0) {
    throw new UserError(
      `no Flickr8k split list found in ${textDir} (expected ${Object.values(LIST_FILES).join(', ')}).`,
    );
  }
  for (const [name, caps] of captions) {
    if (listed.has(name)) continue;
    // Captioned images outside every split list are unused by design; only names that are not an
    // image file name at all (the stray "...jpg.1" line) are data errors worth reporting.
    if (!IMAGE_NAME.test(name) && !fs.existsSync(path.join(imageDir, name))) {
      skipped.push({
        id: name,
        reason: `names no image file (${caps.length} captions in ${path.basename(tokenFile)})`,
      });
    }
  }
  return { kind: 'flickr8k', images, skipped };
}
