/**
 * Does the model look where the object is when it names it? On the synthetic shapes dataset every
 * object's box is known (src/dataset/shapes.ts), so for each emitted word that names a colour or a shape
 * present in the image we compare the word's attention map with the box of the object it names:
 *
 *  - peak hit: the attention's argmax location, as its cell of the g x g grid over the image
 *    (g = sqrt(L); the encoder sees the whole square image, so cell (r, c) covers
 *    [c, c+1) x [r, r+1) * size/g pixels), overlaps the box. Chance: the fraction of cells that overlap
 *    the box (a peak placed uniformly at random hits that often).
 *  - mass in box: sum over cells of weight x (fraction of the cell's area inside the box). Chance: the
 *    box's area fraction of the image, which is exactly what uniform attention gives.
 *
 * Which object a word names: "red" in "a red circle" is the red circle when the image has one (likewise
 * "circle" after "red"); a word without such a pair names every object of that colour (shape) in the
 * image, and their boxes count together. Words naming a colour or shape that is not in the image are
 * counted as `absent` and not scored.
 */
import { SHAPE_COLORS, SHAPE_KINDS, type ShapeObject } from '../dataset/shapes.js';
import { gridSide } from '../figures/heat.js';

export interface CaptionAttention {
  id: string;
  words: string[];
  /** One row [L] per word (the decoder's attention when it emitted that word). */
  attention: Float32Array[];
}

/** Sums for one kind of word; rates are derived in `summary`. */
export interface AttentionTally {
  words: number; // scored words
  peakHits: number; // words whose peak cell overlaps the box
  peakChance: number; // sum over words of the fraction of cells overlapping the box
  mass: number; // sum over words of the attention mass inside the box
  massChance: number; // sum over words of the box's area fraction
}

export interface AttentionCheck {
  images: number;
  grid: number;
  colour: AttentionTally;
  shape: AttentionTally;
  all: AttentionTally;
  /** Colour/shape words naming something the image does not contain (not scored). */
  absent: number;
}

export interface AttentionRates {
  words: number;
  peakHitRate: number;
  peakChance: number;
  massInBox: number;
  massChance: number;
}

const COLOURS = new Set(Object.keys(SHAPE_COLORS));
const SHAPES = new Set<string>(SHAPE_KINDS);
const emptyTally = (): AttentionTally => ({ words: 0, peakHits: 0, peakChance: 0, mass: 0, massChance: 0 });

/** The objects word i names (see the file comment); empty when it names no colour/shape in the image. */
export function namedTargets(words: readonly string[], i: number, objects: readonly ShapeObject[]): ShapeObject[] {
  const w = words[i];
  if (COLOURS.has(w)) {
    const same = objects.filter((o) => o.color === w);
    const paired = same.filter((o) => o.shape === words[i + 1]);
    return paired.length > 0 ? paired : same;
  }
  if (SHAPES.has(w)) {
    const same = objects.filter((o) => o.shape === w);
    const paired = same.filter((o) => o.color === words[i - 1]);
    return paired.length > 0 ? paired : same;
  }
  return [];
}

/**
 * Per cell of the g x g grid over a size x size image: the fraction of the cell's area inside the
 * boxes (which do not overlap each other in the shapes data, so fractions add). [g*g], row-major.
 */
export function cellCoverage(boxes: readonly ShapeObject['box'][], g: number, size: number): Float64Array {
  const cover = new Float64Array(g * g);
  const cell = size / g;
  for (let r = 0; r < g; r++) {
    for (let c = 0; c < g; c++) {
      let inside = 0;
      for (const [x0, y0, x1, y1] of boxes) {
        const w = Math.min(x1, (c + 1) * cell) - Math.max(x0, c * cell);
        const h = Math.min(y1, (r + 1) * cell) - Math.max(y0, r * cell);
        if (w > 0 && h > 0) inside += w * h;
      }
      cover[r * g + c] = Math.min(1, inside / (cell * cell));
    }
  }
  return cover;
}

function add(t: AttentionTally, hit: boolean, peakChance: number, mass: number, massChance: number): void {
  t.words++;
  if (hit) t.peakHits++;
  t.peakChance += peakChance;
  t.mass += mass;
  t.massChance += massChance;
}

/**
 * Score every colour/shape word of every caption against its image's objects. `imageSize` is the side
 * of the (square) shapes images the boxes are given in.
 */
export function checkAttention(
  captions: readonly CaptionAttention[],
  objects: ReadonlyMap<string, readonly ShapeObject[]>,
  imageSize: number,
): AttentionCheck {
  const result: AttentionCheck = {
    images: 0,
    grid: 0,
    colour: emptyTally(),
    shape: emptyTally(),
    all: emptyTally(),
    absent: 0,
  };
  for (const cap of captions) {
    const objs = objects.get(cap.id);
    if (!objs) throw new Error(`attention check: no shapes annotation for image "${cap.id}"`);
    result.images++;
    cap.words.forEach((word, i) => {
      const isColour = COLOURS.has(word);
      if (!isColour && !SHAPES.has(word)) return;
      const targets = namedTargets(cap.words, i, objs);
      if (targets.length === 0) {
        result.absent++;
        return;
      }
      const weights = cap.attention[i];
      const g = gridSide(weights.length);
      result.grid = g;
      const cover = cellCoverage(
        targets.map((o) => o.box),
        g,
        imageSize,
      );
      let peak = 0,
        mass = 0,
        overlapping = 0;
      for (let l = 0; l < weights.length; l++) {
        if (weights[l] > weights[peak]) peak = l;
        mass += weights[l] * cover[l];
        if (cover[l] > 0) overlapping++;
      }
      const area =
        targets.reduce((s, o) => s + (o.box[2] - o.box[0]) * (o.box[3] - o.box[1]), 0) / (imageSize * imageSize);
      const args = [cover[peak] > 0, overlapping / weights.length, mass, area] as const;
      add(isColour ? result.colour : result.shape, ...args);
      add(result.all, ...args);
    });
  }
  return result;
}

export function rates(t: AttentionTally): AttentionRates {
  const n = Math.max(1, t.words);
  return {
    words: t.words,
    peakHitRate: t.peakHits / n,
    peakChance: t.peakChance / n,
    massInBox: t.mass / n,
    massChance: t.massChance / n,
  };
}

/** A small text table: rows colour / shape / all, the measured rate next to its chance level. */
export function formatAttentionCheck(r: AttentionCheck): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`.padStart(7);
  const lines = [
    `Attention check on ${r.images} images (${r.grid}x${r.grid} grid): for each word naming a colour or shape in the image,`,
    "does its attention peak fall on that object's box, and how much attention mass lies inside the box?",
    `  ${'words'.padEnd(8)} ${'scored'.padStart(6)}  ${'peak on box'.padStart(11)} ${'chance'.padStart(7)}  ${'mass in box'.padStart(11)} ${'chance'.padStart(7)}`,
  ];
  for (const [name, t] of [
    ['colour', r.colour],
    ['shape', r.shape],
    ['all', r.all],
  ] as const) {
    const x = rates(t);
    lines.push(
      `  ${name.padEnd(8)} ${String(x.words).padStart(6)}  ${pct(x.peakHitRate).padStart(11)} ${pct(x.peakChance)}  ` +
        `${pct(x.massInBox).padStart(11)} ${pct(x.massChance)}`,
    );
  }
  if (r.absent > 0) lines.push(`  (${r.absent} colour/shape words named something not in the image: not scored)`);
  return lines.join('\n');
}

/** One summary line, e.g. for `sat demo`: "attention peak on the named object 48.0% (chance 11.1%), ...". */
export function formatAttentionLine(r: AttentionCheck): string {
  const x = rates(r.all);
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  return (
    `attention peak on the named object for ${pct(x.peakHitRate)} of ${x.words} colour/shape words (chance ${pct(x.peakChance)}); ` +
    `attention mass inside its box ${pct(x.massInBox)} (chance ${pct(x.massChance)})`
  );
}
