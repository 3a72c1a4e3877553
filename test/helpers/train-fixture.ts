/**
 * Small stand-ins for the training-loop tests: an in-memory feature store, a toy "colour shape" caption
 * task, and a pure-TypeScript CaptionModel (softmax regression on [mean image feature, one-hot previous
 * word], trained with Keras-style Adam) so the loop's logic is tested without the native addon.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type {
  CaptionModel,
  DecoderState,
  ModelConfig,
  NamedTensor,
  OptimizerOptions,
  StepOutput,
  StepStats,
  TrainBatch,
} from '../../src/model/types.js';
import type { FeatureStoreReader } from '../../src/features/types.js';
import { ExampleTable, type Example } from '../../src/train/examples.js';
import { Rng } from '../../src/util/rng.js';

export class MemoryStore implements FeatureStoreReader {
  readonly encoderId = 'memory-test';
  constructor(
    readonly locations: number,
    readonly channels: number,
    private readonly data: Map<string, Float32Array>,
  ) {}
  ids() {
    return [...this.data.keys()];
  }
  has(id: string) {
    return this.data.has(id);
  }
  read(id: string, out?: Float32Array, offset = 0): Float32Array {
    const f = this.data.get(id);
    if (!f) throw new Error(`no features for ${id}`);
    const dst = out ?? new Float32Array(f.length);
    dst.set(f, offset);
    return dst;
  }
  close() {}
}

// Vocabulary of the toy task: <pad>=0 <start>=1 <end>=2 then words.
export const WORDS = [
  '<pad>',
  '<start>',
  '<end>',
  'a',
  'red',
  'green',
  'blue',
  'circle',
  'square',
  'on',
  'the',
  'left',
  'right',
];
const COLORS = [4, 5, 6],
  SHAPES = [7, 8],
  SIDES = [11, 12];

/**
 * `n` images whose features (L=2, C=8) encode a colour, a shape and a side, with noise, and captions
 * "a <colour> <shape>" or "a <colour> <shape> on the <side>" (two lengths, so bucketing has work to do).
 */
export function toyTask(n: number, seed = 1) {
  const rng = new Rng(seed);
  const L = 2,
    C = 8;
  const data = new Map<string, Float32Array>();
  const examples: Example[] = [];
  for (let i = 0; i < n; i++) {
    const id = `img${i}`;
    const c = rng.int(3),
      s = rng.int(2),
      side = rng.int(2);
    const f = new Float32Array(L * C);
    for (let k = 0; k < f.length; k++) f[k] = 0.1 * rng.normal();
    f[c] += 1;
    f[3 + s] += 1;
    f[C + 5 + side] += 1;
    data.set(id, f);
    examples.push({ image: id, tokens: Int32Array.from([1, 3, COLORS[c], SHAPES[s], 2]) });
    examples.push({ image: id, tokens: Int32Array.from([1, 3, COLORS[c], SHAPES[s], 9, 10, SIDES[side], 2]) });
  }
  return {
    store: new MemoryStore(L, C, data),
    examples: ExampleTable.from(examples),
    exampleList: examples,
    vocabSize: WORDS.length,
  };
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function writeToyVocab(dir: string): string {
  const file = path.join(dir, 'vocab.json');
  fs.writeFileSync(file, JSON.stringify({ words: WORDS }));
  return file;
}

/**
 * Softmax regression: logits[V] = W [V, C + V] · [mean_l features[l], onehot(previous word)] + b.
 * `failAtStep` makes trainStep return NaN from that optimizer step on (to test divergence handling).
 */
export class ToyModel implements CaptionModel {
  readonly config: ModelConfig;
  private readonly W: Float32Array;
  private readonly b: Float32Array;
  private readonly m = new Map<string, NamedTensor>();
  private readonly v = new Map<string, NamedTensor>();
  private step_ = 0;
  failAtStep = Infinity;

  constructor(locations: number, channels: number, vocabSize: number, seed: number) {
    this.config = {
      locations,
      channels,
      vocabSize,
      embedDim: 1,
      units: channels,
      attentionUnits: 1,
      dropout: 0,
      attentionLambda: 0,
    };
    const rng = new Rng(seed);
    this.W = Float32Array.from({ length: vocabSize * (channels + vocabSize) }, () => 0.01 * rng.normal());
    this.b = new Float32Array(vocabSize);
    for (const [name, t] of this.parameters()) {
      this.m.set(name, { shape: t.shape, data: new Float32Array(t.data.length) });
      this.v.set(name, { shape: t.shape, data: new Float32Array(t.data.length) });
    }
  }

  parameters() {
    const { channels: C, vocabSize: V } = this.config;
    return new Map<string, NamedTensor>([
      ['W', { shape: [V, C + V], data: this.W }],
      ['b', { shape: [V], data: this.b }],
    ]);
  }
  optimizerState() {
    return { step: this.step_, m: this.m, v: this.v };
  }
  setOptimizerStep(step: number) {
    this.step_ = step;
  }

  private meanFeature(features: Float32Array, row: number): Float64Array {
    const { locations: L, channels: C } = this.config;
    const f = new Float64Array(C);
    for (let l = 0; l < L; l++) for (let c = 0; c < C; c++) f[c] += features[(row * L + l) * C + c] / L;
    return f;
  }

  private logits(f: ArrayLike<number>, prev: number): Float64Array {
    const { channels: C, vocabSize: V } = this.config;
    const out = new Float64Array(V);
    for (let k = 0; k < V; k++) {
      let s = this.b[k] + this.W[k * (C + V) + C + prev];
      for (let c = 0; c < C; c++) s += this.W[k * (C + V) + c] * f[c];
      out[k] = s;
    }
    return out;
  }

  /** Loss and (if `grad`) accumulated gradients over all real target tokens. */
  private forward(batch: TrainBatch, grad: { W: Float64Array; b: Float64Array } | null): StepStats {
    const { channels: C, vocabSize: V } = this.config;
    const T1 = batch.steps + 1;
    let loss = 0,
      tokens = 0;
    for (let r = 0; r < batch.size; r++) {
      const f = this.meanFeature(batch.features, batch.imageOfRow ? batch.imageOfRow[r] : r);
      for (let t = 0; t < batch.steps; t++) {
        const target = batch.tokens[r * T1 + t + 1];
        if (target === 0) continue;
        const prev = batch.tokens[r * T1 + t];
        const z = this.logits(f, prev);
        const max = Math.max(...z);
        let sum = 0;
        for (let k = 0; k < V; k++) sum += Math.exp(z[k] - max);
        loss += Math.log(sum) + max - z[target];
        tokens++;
        if (!grad) continue;
        for (let k = 0; k < V; k++) {
          const d = Math.exp(z[k] - max) / sum - (k === target ? 1 : 0);
          grad.b[k] += d;
          for (let c = 0; c < C; c++) grad.W[k * (C + V) + c] += d * f[c];
          grad.W[k * (C + V) + C + prev] += d;
        }
      }
    }
    return { loss: tokens > 0 ? loss / tokens : 0, tokens };
  }

  trainStep(batch: TrainBatch, opt: OptimizerOptions, _dropoutSeed?: number): StepStats {
    const grad = { W: new Float64Array(this.W.length), b: new Float64Array(this.b.length) };
    const stats = this.forward(batch, grad);
    if (this.step_ + 1 >= this.failAtStep) return { loss: NaN, tokens: stats.tokens };
    let norm = 0;
    for (const g of [grad.W, grad.b])
      for (let i = 0; i < g.length; i++) {
        g[i] /= stats.tokens;
        norm += g[i] * g[i];
      }
    const scale = opt.clipNorm && Math.sqrt(norm) > opt.clipNorm ? opt.clipNorm / Math.sqrt(norm) : 1;
    this.step_++;
    const b1 = 0.9,
      b2 = 0.999,
      eps = 1e-7;
    const lr = (opt.learningRate * Math.sqrt(1 - b2 ** this.step_)) / (1 - b1 ** this.step_);
    for (const [name, p] of this.parameters()) {
      const g = name === 'W' ? grad.W : grad.b;
      const m = this.m.get(name)!.data,
        v = this.v.get(name)!.data;
      for (let i = 0; i < g.length; i++) {
        const gi = g[i] * scale;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p.data[i] -= (lr * m[i]) / (Math.sqrt(v[i]) + eps);
      }
    }
    return stats;
  }

  evalLoss(batch: TrainBatch): StepStats {
    return this.forward(batch, null);
  }

  encode(features: Float32Array, n: number): DecoderState {
    const { locations: L, channels: C } = this.config;
    const hidden = new Float32Array(n * C);
    for (let r = 0; r < n; r++) hidden.set(this.meanFeature(features, r), r * C);
    return { size: n, hidden, encoded: features.slice(0, n * L * C), projected: new Float32Array(0) };
  }

  step(state: DecoderState, tokens: Int32Array): StepOutput {
    const { locations: L, channels: C, vocabSize: V } = this.config;
    const logits = new Float32Array(state.size * V);
    for (let r = 0; r < state.size; r++)
      logits.set(this.logits(state.hidden.subarray(r * C, (r + 1) * C), tokens[r]), r * V);
    return { logits, attention: new Float32Array(state.size * L).fill(1 / L), hidden: state.hidden };
  }

  selectRows(state: DecoderState, rows: Int32Array): DecoderState {
    const C = this.config.channels;
    const hidden = new Float32Array(rows.length * C);
    rows.forEach((r, i) => hidden.set(state.hidden.subarray(r * C, (r + 1) * C), i * C));
    return { size: rows.length, hidden, encoded: state.encoded, projected: state.projected };
  }

  dispose() {}
}
