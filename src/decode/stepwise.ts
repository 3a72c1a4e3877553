/**
 * Greedy and sampled decoding: one token per image per step, as the TF tutorial's evaluate() loop, for N images
 * at once: logits processors edit each step's logits, then the chooser (argmax, or a draw) picks each row's token.
 * Rows whose caption reached <end> are dropped from the batch (model.selectRows), so a batch costs as many steps
 * as its longest caption and no compute goes to finished rows.
 */
import type { DecoderModelBase, DecoderState } from '../model/types.js';
import { logSumExpRows, type LogitsProcessor, type TokenChooser } from './logits.js';
import { encodeRequest, stepRequest, type Search } from './search.js';
import type { DecodedCaption, DecodeVocab } from './types.js';

export interface StepwiseOptions {
  maxLength: number;
  /** Edits each step's logits [rows, V] before normalisation (e.g. suppressTokens). */
  processor: LogitsProcessor;
  /** Whether `processor` reads each row's tokens so far (trigram blocking). */
  processorNeedsPrefixes?: boolean;
  /** Builds the chooser; `imageOf(row)` maps a batch row to its image index in this call. */
  chooser: (imageOf: (row: number) => number) => TokenChooser;
  /** Captions per image (default 1): rows i * repeat + k all decode image i, which is encoded once. */
  repeat?: number;
}

/** Decodes features [images, L, C] one token per step: images * repeat captions (a search, see search.ts). */
export function* decodeStepwise(
  model: DecoderModelBase,
  features: Float32Array,
  images: number,
  vocab: DecodeVocab,
  opts: StepwiseOptions,
): Search<DecodedCaption[]> {
  const V = model.config.vocabSize;
  const L = model.config.locations;
  const repeat = opts.repeat ?? 1;
  const n = images * repeat;
  const results: DecodedCaption[] = Array.from({ length: n }, () => ({
    ids: [],
    words: [],
    attention: [],
    logProb: 0,
    finished: false,
  }));
  if (n === 0) return results;

  let state: DecoderState = yield* encodeRequest(features, images);
  if (repeat > 1)
    state = model.selectRows(
      state,
      Int32Array.from({ length: n }, (_, i) => Math.floor(i / repeat)),
    );
  let active = Array.from({ length: n }, (_, i) => i); // batch row -> caption index (image * repeat + k)
  const choose = opts.chooser((row) => active[row]);
  let tokens = new Int32Array(n).fill(vocab.start);

  for (let t = 0; t < opts.maxLength && active.length > 0; t++) {
    const out = yield* stepRequest(state, tokens);
    const rows = active.length;
    opts.processor(out.logits, rows, V, opts.processorNeedsPrefixes ? active.map((i) => results[i].ids) : undefined);
    const lse = logSumExpRows(out.logits, rows, V);

    const keep: number[] = [];
    const next: number[] = [];
    for (let r = 0; r < rows; r++) {
      const id = choose(out.logits, lse, r, V);
      const res = results[active[r]];
      res.logProb += out.logits[r * V + id] - lse[r];
      if (id === vocab.end) {
        res.finished = true;
        continue;
      }
      res.ids.push(id);
      res.words.push(vocab.word(id));
      res.attention.push(out.attention.slice(r * L, (r + 1) * L));
      keep.push(r);
      next.push(id);
    }
    if (keep.length === 0 || t === opts.maxLength - 1) break;
    state =
      keep.length === rows ? withHidden(state, out.hidden) : model.selectRows(state, Int32Array.from(keep), out.hidden);
    active = keep.map((r) => active[r]);
    tokens = Int32Array.from(next);
  }
  return results;
}

/** The same rows with the step's new hidden state [N, U] (DecoderState is plain data, see model/types.ts). */
export function withHidden(state: DecoderState, hidden: Float32Array): DecoderState {
  return { ...state, hidden };
}
