/**
 * A synthetic captioning dataset that is cheap to make and easy to learn: 1-3 coloured shapes (circle,
 * square, triangle) at non-overlapping positions on a plain background, with template captions such as
 * "a red circle left of a blue square". It drives the tests and `sat demo`.
 *
 * Why it is useful beyond smoke tests: every shape's ground-truth box is kept (DIR/shapes.json), so an
 * attention map can be checked against where the object named by a word actually is.
 *
 * Layout and captions come from the seeded Rng only (`layoutShapes`), so one seed always gives
 * byte-identical captions and boxes; pixels are rendered from an SVG by sharp.
 *
 *   DIR/shapes.json        {format: "sat-shapes", seed, size, images: [{id, file, split, captions, objects}]}
 *   DIR/images/shape_00000.png ...
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { ProgressBar } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import { splitByImage } from './split.js';
import type { Dataset, Split } from './types.js';

export const SHAPE_KINDS = ['circle', 'square', 'triangle'] as const;
export const SHAPE_COLORS: Record<string, string> = {
  red: '#d62728',
  green: '#2ca02c',
  blue: '#1f77b4',
  yellow: '#e6c319',
  purple: '#9467bd',
};
const BACKGROUND = '#f4f4f4';

export type ShapeKind = (typeof SHAPE_KINDS)[number];
export interface ShapeObject {
  shape: ShapeKind;
  color: string;
  /** Pixel box [x0, y0, x1, y1] in the size x size image (x right, y down). */
  box: [number, number, number, number];
}
export interface ShapesImage {
  id: string;
  /** Relative to the dataset folder. */
  file: string;
  split: Split;
  captions: string[];
  objects: ShapeObject[];
}
export interface ShapesManifest {
  format: 'sat-shapes';
  version: 1;
  seed: number;
  size: number;
  imageFormat: 'png' | 'jpeg';
  images: ShapesImage[];
}

export interface ShapesOptions {
  dir: string;
  count: number;
  seed?: number;
  /** Image side in pixels (default 224, the encoders' input). */
  size?: number;
  imageFormat?: 'png' | 'jpeg';
  /** Captions per image (default 5, like Flickr8k and COCO). */
  captionsPerImage?: number;
  silent?: boolean;
}

const MANIFEST = 'shapes.json';
const centre = (o: ShapeObject) => [(o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2];
const name = (o: ShapeObject) => `a ${o.color} ${o.shape}`;

/**
 * Place 1-3 shapes: distinct (colour, shape) pairs so every caption names each object unambiguously,
 * boxes at least 4% of the side apart, and relations that are clear: two shapes are separated mostly
 * along one axis (so "left of"/"above" is obviously true), three shapes have well separated x centres
 * (so "from left to right" is obviously true).
 */
function placeObjects(rng: Rng, size: number): ShapeObject[] {
  const n = 1 + rng.int(3);
  const colors = Object.keys(SHAPE_COLORS);
  for (;;) {
    const objects: ShapeObject[] = [];
    const used = new Set<string>();
    for (let tries = 0; objects.length < n && tries < 200; tries++) {
      const shape = SHAPE_KINDS[rng.int(SHAPE_KINDS.length)];
      const color = colors[rng.int(colors.length)];
      if (used.has(color + shape)) continue;
      const side = Math.round(size * (n === 3 ? 0.18 + 0.08 * rng.next() : 0.22 + 0.12 * rng.next()));
      const margin = Math.round(size * 0.04);
      const x0 = margin + rng.int(size - side - 2 * margin + 1);
      const y0 = margin + rng.int(size - side - 2 * margin + 1);
      const box: ShapeObject['box'] = [x0, y0, x0 + side, y0 + side];
      const clash = objects.some(
        (o) =>
          box[0] < o.box[2] + margin &&
          o.box[0] < box[2] + margin &&
          box[1] < o.box[3] + margin &&
          o.box[1] < box[3] + margin,
      );
      if (clash) continue;
      used.add(color + shape);
      objects.push({ shape, color, box });
    }
    if (objects.length < n) continue;
    if (n === 2) {
      const [[ax, ay], [bx, by]] = objects.map(centre);
      const dx = Math.abs(ax - bx),
        dy = Math.abs(ay - by);
      if (Math.max(dx, dy) < 1.5 * Math.min(dx, dy)) continue;
    }
    if (n === 3) {
      const xs = objects.map((o) => centre(o)[0]).sort((a, b) => a - b);
      if (xs[1] - xs[0] < size * 0.12 || xs[2] - xs[1] < size * 0.12) continue;
    }
    return objects;
  }
}

/** Caption variants of one layout; `captionsFor` picks from them with the Rng. */
function captionVariants(objects: ShapeObject[]): string[] {
  if (objects.length === 1) {
    const a = name(objects[0]);
    return [
      a,
      `${a} on a plain background`,
      `there is ${a}`,
      `a picture of ${a}`,
      `one ${objects[0].color} ${objects[0].shape}`,
    ];
  }
  if (objects.length === 2) {
    const [a, b] = objects;
    const [[ax, ay], [bx, by]] = [centre(a), centre(b)];
    const horizontal = Math.abs(ax - bx) >= Math.abs(ay - by);
    const rel = horizontal ? (ax < bx ? 'left of' : 'right of') : ay < by ? 'above' : 'below';
    const inv = { 'left of': 'right of', 'right of': 'left of', above: 'below', below: 'above' }[rel]!;
    return [
      `${name(a)} ${rel} ${name(b)}`,
      `${name(b)} ${inv} ${name(a)}`,
      `${name(a)} and ${name(b)}`,
      `there is ${name(a)} ${rel} ${name(b)}`,
      `two shapes ${name(b)} ${inv} ${name(a)}`,
    ];
  }
  const [l, m, r] = [...objects].sort((p, q) => centre(p)[0] - centre(q)[0]).map(name);
  return [
    `${l} , ${m} and ${r}`,
    `${l} left of ${m} and ${r}`,
    `${r} right of ${m} and ${l}`,
    `three shapes ${l} , ${m} and ${r} from left to right`,
    `there is ${l} , ${m} and ${r}`,
  ];
}

/** The whole dataset minus pixels: deterministic from (count, seed, size). */
export function layoutShapes(
  count: number,
  seed = 42,
  size = 224,
  captionsPerImage = 5,
  imageFormat: 'png' | 'jpeg' = 'png',
): ShapesManifest {
  if (!Number.isInteger(count) || count < 1) throw new UserError(`--images must be a positive integer, got ${count}.`);
  if (!Number.isInteger(size) || size < 32)
    throw new UserError(`shapes image size must be an integer >= 32, got ${size}.`);
  const rng = new Rng(seed);
  const images: ShapesImage[] = [];
  for (let i = 0; i < count; i++) {
    const objects = placeObjects(rng, size);
    const variants = rng.shuffle(captionVariants(objects));
    const captions = Array.from({ length: captionsPerImage }, (_, k) => variants[k % variants.length]);
    const id = `shape_${String(i).padStart(5, '0')}`;
    images.push({
      id,
      file: `images/${id}.${imageFormat === 'png' ? 'png' : 'jpg'}`,
      split: 'train',
      captions,
      objects,
    });
  }
  splitByImage(images, { train: 0.8, dev: 0.1, test: 0.1 }, seed + 1);
  return { format: 'sat-shapes', version: 1, seed, size, imageFormat, images };
}

/** The SVG of one image. */
export function shapesSvg(objects: ShapeObject[], size: number): string {
  const parts = objects.map(({ shape, color, box: [x0, y0, x1, y1] }) => {
    const fill = SHAPE_COLORS[color];
    if (shape === 'circle')
      return `<circle cx="${(x0 + x1) / 2}" cy="${(y0 + y1) / 2}" r="${(x1 - x0) / 2}" fill="${fill}"/>`;
    if (shape === 'square') return `<rect x="${x0}" y="${y0}" width="${x1 - x0}" height="${y1 - y0}" fill="${fill}"/>`;
    return `<polygon points="${(x0 + x1) / 2},${y0} ${x1},${y1} ${x0},${y1}" fill="${fill}"/>`;
  });
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 ${size} ${size}">` +
    `<rect width="${size}" height="${size}" fill="${BACKGROUND}"/>${parts.join('')}</svg>`
  );
}

/**
 * Render the dataset into opts.dir (images/ + shapes.json). If shapes.json already describes the same
 * (count, seed, size, format), nothing is re-rendered.
 */
export async function generateShapesDataset(opts: ShapesOptions): Promise<ShapesManifest> {
  const dir = path.resolve(opts.dir);
  const manifest = layoutShapes(
    opts.count,
    opts.seed ?? 42,
    opts.size ?? 224,
    opts.captionsPerImage ?? 5,
    opts.imageFormat ?? 'png',
  );
  const manifestPath = path.join(dir, MANIFEST);
  const text = JSON.stringify(manifest, null, 1) + '\n';
  if (
    fs.existsSync(manifestPath) &&
    fs.readFileSync(manifestPath, 'utf8') === text &&
    manifest.images.every((im) => fs.existsSync(path.join(dir, im.file)))
  ) {
    return manifest;
  }
  fs.mkdirSync(path.join(dir, 'images'), { recursive: true });
  const bar = new ProgressBar({ total: manifest.images.length, label: 'shapes', unit: 'img', silent: opts.silent });
  let next = 0;
  const worker = async () => {
    while (next < manifest.images.length) {
      const im = manifest.images[next++];
      const img = sharp(Buffer.from(shapesSvg(im.objects, manifest.size)));
      await (manifest.imageFormat === 'png' ? img.png() : img.jpeg({ quality: 92 })).toFile(path.join(dir, im.file));
      bar.tick();
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  bar.finish();
  // Images of an earlier, larger generation in the same folder would be confusing leftovers.
  const current = new Set(manifest.images.map((im) => path.basename(im.file)));
  for (const f of fs.readdirSync(path.join(dir, 'images'))) {
    if (/^shape_\d{5}\.(png|jpg)$/.test(f) && !current.has(f)) fs.rmSync(path.join(dir, 'images', f));
  }
  // Written last, so an interrupted generation is redone rather than trusted.
  fs.writeFileSync(manifestPath, text);
  return manifest;
}

export function loadShapesManifest(root: string): ShapesManifest {
  const file = path.join(path.resolve(root), MANIFEST);
  if (!fs.existsSync(file))
    throw new UserError(
      `${file} not found: generate the shapes dataset first (\`sat prepare --dataset shapes --root ${root} --images N\`).`,
    );
  const m = JSON.parse(fs.readFileSync(file, 'utf8')) as ShapesManifest;
  if (m.format !== 'sat-shapes')
    throw new UserError(`${file} is not a shapes manifest (format "${String(m.format)}").`);
  return m;
}

/** Ground-truth objects per image id, for checking attention maps against object positions. */
export function loadShapesAnnotations(root: string): Map<string, ShapeObject[]> {
  return new Map(loadShapesManifest(root).images.map((im) => [im.id, im.objects]));
}

export function readShapes(opts: { root: string }): Dataset {
  const root = path.resolve(opts.root);
  const m = loadShapesManifest(root);
  const skipped: Dataset['skipped'] = [];
  const images = m.images
    .filter((im) => {
      const ok = fs.existsSync(path.join(root, im.file));
      if (!ok) skipped.push({ id: im.id, reason: `image file ${im.file} not found` });
      return ok;
    })
    .map((im) => ({ id: im.id, path: path.join(root, im.file), captions: [...im.captions], split: im.split }));
  return { kind: 'shapes', images, skipped };
}
