/**
 * The InceptionV3 reference fixture shared by scripts/inception-tfjs-fixture.ts (which writes it from TF.js)
 * and test/encoders-inception.test.ts (which checks our ONNX graph against it): the input image, the layers,
 * the sampled positions and the summary statistics, defined once.
 */
import { Rng } from '../../src/util/rng.js';

export const FIXTURE_FILE = new URL('../fixtures/inception-tfjs.json', import.meta.url);

/**
 * Cut points: the first conv block (VALID stride-2 conv + folded BN + ReLU), mixed2 (SAME average pooling),
 * mixed7 (1x7/7x1 convs) and mixed10 (the tutorial's layer), with their NHWC output shapes.
 */
export const LAYERS: [name: string, dims: number[]][] = [
  ['activation_1', [1, 149, 149, 32]],
  ['mixed2', [1, 35, 35, 288]],
  ['mixed7', [1, 17, 17, 768]],
  ['mixed10', [1, 8, 8, 2048]],
];

/** The input: a 299x299 RGB image of uniform noise in [0, 1) (the nsfwjs model takes x/255), NHWC. */
export function fixtureImage(): Float32Array {
  const rng = new Rng(7);
  return Float32Array.from({ length: 299 * 299 * 3 }, () => rng.next());
}

/**
 * Positions (flat NHWC indices) kept per layer: `count` seeded picks over the whole tensor, and the `count`
 * largest activations of the reference (after a ReLU most picks are 0 on both sides; the largest never are).
 */
export function samplePositions(reference: ArrayLike<number>, count = 100): number[] {
  const rng = new Rng(11);
  const seeded = Array.from({ length: count }, () => rng.int(reference.length));
  const order = Array.from({ length: reference.length }, (_, i) => i).sort(
    (a, b) => Math.abs(reference[b]) - Math.abs(reference[a]),
  );
  return [...seeded, ...order.slice(0, count)];
}

export interface LayerStats {
  mean: number;
  meanAbs: number;
  rms: number;
  maxAbs: number;
  positive: number;
}

/** Summary statistics of a whole activation tensor (float64 sums). */
export function layerStats(x: ArrayLike<number>): LayerStats {
  let sum = 0,
    sumAbs = 0,
    sumSq = 0,
    maxAbs = 0,
    positive = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    sum += v;
    sumAbs += Math.abs(v);
    sumSq += v * v;
    maxAbs = Math.max(maxAbs, Math.abs(v));
    if (v > 0) positive++;
  }
  return {
    mean: sum / x.length,
    meanAbs: sumAbs / x.length,
    rms: Math.sqrt(sumSq / x.length),
    maxAbs,
    positive: positive / x.length,
  };
}

export interface InceptionFixture {
  source: string;
  layers: { name: string; dims: number[]; stats: LayerStats; positions: number[]; values: number[] }[];
}
