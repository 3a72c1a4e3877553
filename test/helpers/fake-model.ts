/**
 * A tiny deterministic CaptionModel for decoding tests: the next-token distribution is a hand-written
 * table of (image key, words so far) -> probabilities, so beam search can be checked exactly.
 *
 * Layout: channels C = 1 and every location of image i holds its key; the hidden state [N, U] records
 * the tokens fed so far (slot 0: count, then the ids), which is all a table lookup needs. The attention
 * of a step is one-hot at (fed token % L), so a caption's attention rows reveal the path that made it.
 */
import type { DecodeVocab } from '../../src/decode/index.js';
import type { AsyncDecoderModel, CaptionModel, DecoderState, ModelConfig, StepOutput } from '../../src/model/types.js';

/** Probabilities over the vocabulary for the next token of image `key` after `words` (no <start>). */
export type NextTokenTable = (key: number, words: number[]) => number[];

export class TableModel implements CaptionModel {
  readonly config: ModelConfig;
  /** Rows fed to step() so far, summed: shows that finished captions leave the batch. */
  rowsStepped = 0;
  encodedRows = 0;
  steps = 0;
  private readonly U: number;

  constructor(
    vocabSize: number,
    locations: number,
    private readonly table: NextTokenTable,
    private readonly start = 1,
    maxSteps = 64,
  ) {
    this.U = maxSteps + 1;
    this.config = {
      locations,
      channels: 1,
      embedDim: 1,
      units: this.U,
      attentionUnits: 1,
      vocabSize,
      dropout: 0,
      attentionLambda: 0,
    };
  }

  encode(features: Float32Array, n: number): DecoderState {
    this.encodedRows += n;
    const L = this.config.locations;
    return {
      size: n,
      hidden: new Float32Array(n * this.U),
      encoded: Float32Array.from(features.subarray(0, n * L)),
      projected: new Float32Array(n * L),
    };
  }

  step(state: DecoderState, tokens: Int32Array): StepOutput {
    const { vocabSize: V, locations: L } = this.config;
    const U = this.U;
    const N = state.size;
    if (tokens.length !== N) throw new Error(`step got ${tokens.length} tokens for ${N} rows`);
    this.steps++;
    this.rowsStepped += N;
    const logits = new Float32Array(N * V);
    const attention = new Float32Array(N * L);
    const hidden = Float32Array.from(state.hidden);
    for (let r = 0; r < N; r++) {
      const count = state.hidden[r * U];
      const fed = Array.from(state.hidden.subarray(r * U + 1, r * U + 1 + count));
      fed.push(tokens[r]);
      hidden[r * U] = count + 1;
      hidden[r * U + 1 + count] = tokens[r];
      const words = fed[0] === this.start ? fed.slice(1) : fed;
      const probs = this.table(state.encoded[r * L], words);
      for (let v = 0; v < V; v++) logits[r * V + v] = Math.log(probs[v] ?? 0);
      attention[r * L + (tokens[r] % L)] = 1;
    }
    return { logits, attention, hidden };
  }

  selectRows(state: DecoderState, rows: Int32Array, hidden?: Float32Array): DecoderState {
    const L = this.config.locations;
    const U = this.U;
    const from = hidden ?? state.hidden;
    const out: DecoderState = {
      size: rows.length,
      hidden: new Float32Array(rows.length * U),
      encoded: new Float32Array(rows.length * L),
      projected: new Float32Array(rows.length * L),
    };
    rows.forEach((row, i) => {
      if (row < 0 || row >= state.size) throw new Error(`selectRows: row ${row} out of range [0, ${state.size})`);
      out.hidden.set(from.subarray(row * U, (row + 1) * U), i * U);
      out.encoded.set(state.encoded.subarray(row * L, (row + 1) * L), i * L);
    });
    return out;
  }

  parameters(): never {
    throw new Error('TableModel has no parameters');
  }
  optimizerState(): never {
    throw new Error('TableModel does not train');
  }
  setOptimizerStep(): never {
    throw new Error('TableModel does not train');
  }
  trainStep(): never {
    throw new Error('TableModel does not train');
  }
  evalLoss(): never {
    throw new Error('TableModel does not train');
  }
  dispose(): void {}
}

/** Features [n, L, 1] for images with the given keys. */
export function keyFeatures(keys: number[], locations: number): Float32Array {
  const f = new Float32Array(keys.length * locations);
  keys.forEach((k, i) => f.fill(k, i * locations, (i + 1) * locations));
  return f;
}

/** A TableModel behind promises, as the ONNX backends are. */
export class AsyncTableModel implements AsyncDecoderModel {
  constructor(readonly inner: TableModel) {}
  get config() {
    return this.inner.config;
  }
  async encode(features: Float32Array, n: number) {
    await Promise.resolve();
    return this.inner.encode(features, n);
  }
  async step(state: DecoderState, tokens: Int32Array) {
    await Promise.resolve();
    return this.inner.step(state, tokens);
  }
  selectRows(state: DecoderState, rows: Int32Array, hidden?: Float32Array) {
    return this.inner.selectRows(state, rows, hidden);
  }
  async release() {}
}

/** The words of the hand-written tables (ids 0..6). */
export const TABLE_WORDS = ['<pad>', '<start>', '<end>', '<unk>', 'a', 'b', 'c'];
export const TABLE_VOCAB: DecodeVocab = { pad: 0, start: 1, end: 2, unk: 3, word: (id) => TABLE_WORDS[id] };

/** A probability row from {word: p}; unnamed tokens get 0 (logit -Infinity). */
export function tableRow(named: Record<string, number>): number[] {
  return TABLE_WORDS.map((w) => named[w] ?? 0);
}

/** Words joined with spaces, e.g. "a c". */
export function tableText(sequence: number[]): string {
  return sequence.map((id) => TABLE_WORDS[id]).join(' ');
}

/**
 * Image 0: greedy and beam disagree, and length normalisation flips the beam's choice.
 *   []     -> a .5  b .3  <end> .2
 *   [a]    -> c .4  <end> .3  b .3        [a c] -> <end> 1
 *   [a b]  -> <end> .5  c .5              [a b c] -> <end> 1
 *   [b]    -> <end> .9  a .1              anything else -> <end> 1
 * Complete captions: "a c" .2, "b" .27, "a" .15, "a b" .075, "a b c" .075, "" .2, "b a" .03
 * greedy: a, c, <end> = .2. Beam 2, alpha 0: "b" (.27). Beam 2, alpha 1: "a c" (ln .2 / 3 > ln .27 / 2).
 */
export const STORY_TABLE: NextTokenTable = (_key, words) => {
  switch (tableText(words)) {
    case '':
      return tableRow({ a: 0.5, b: 0.3, '<end>': 0.2 });
    case 'a':
      return tableRow({ c: 0.4, '<end>': 0.3, b: 0.3 });
    case 'a b':
      return tableRow({ '<end>': 0.5, c: 0.5 });
    case 'b':
      return tableRow({ '<end>': 0.9, a: 0.1 });
    default:
      return tableRow({ '<end>': 1 });
  }
};
