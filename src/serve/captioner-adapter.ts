/**
 * CaptionEngine over today's Captioner (src/decode/captioner.ts): a checkpoint (run folder, checkpoints
 * folder or .safetensors file) + its encoder, run by onnxruntime, + the native decoder.
 *
 *   images RGB [N, S, S, 3] -> Captioner.features, one encoder batch -> [N, L, C]
 *   -> one beam search over all N images (N x k rows per model step) -> captions with alternatives
 *
 * Beam alternatives: decodeBeam (src/decode/beam.ts) returns only each image's best caption. Until the
 * Captioner API returns alternatives itself, `beamWithAlternatives` below runs the same search (same
 * ranking through topExtensions, same stop rule, so the same best caption) and also keeps every finished
 * hypothesis. This file is the one place that changes when the server moves to that API.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Captioner } from '../decode/captioner.js';
import { topExtensions } from '../decode/beam.js';
import { decodeVocab } from '../decode/index.js';
import { forbiddenTokens, logSumExpRows, suppressTokens } from '../decode/logits.js';
import type { DecodedCaption, DecodeVocab } from '../decode/types.js';
import type { EncoderOptions } from '../encoders/registry.js';
import { loadBinding } from '../model/binding.js';
import type { CaptionModel, DecoderState } from '../model/types.js';
import { UserError } from '../util/errors.js';
import type { BatchResult, CaptionAlternative, CaptionEngine, DecodeSettings, EngineCaption, EngineInfo } from './engine.js';

export interface AdapterOptions {
  /** Fills in what the checkpoint cannot say about its encoder (weights folder, user .onnx flags). */
  encoder?: EncoderOptions;
  /** onnxruntime intra-op threads for the encoder. */
  encoderThreads?: number;
  /** OpenBLAS threads for the native decoder. */
  blasThreads?: number;
}

export async function loadCaptionerEngine(source: string, opts: AdapterOptions = {}): Promise<CaptionEngine> {
  if (fs.existsSync(path.join(source, 'manifest.json')) && !fs.existsSync(path.join(source, 'checkpoints'))) {
    throw new UserError(`--model ${source} looks like an export bundle, which this build cannot load yet: pass the run folder or checkpoint it was exported from.`);
  }
  if (opts.blasThreads !== undefined) loadBinding().setThreads(opts.blasThreads, opts.blasThreads);
  const captioner = await Captioner.load(source, { encoder: opts.encoder, threads: opts.encoderThreads });
  return new CaptionerEngine(captioner, describe(captioner));
}

function describe(c: Captioner): EngineInfo {
  const { spec, meta, vocab, checkpointFile } = c;
  const digest = crypto.createHash('sha256').update(fs.readFileSync(checkpointFile)).digest('hex').slice(0, 12);
  const folder = path.dirname(checkpointFile);
  const name = path.basename(folder) === 'checkpoints' ? path.basename(path.dirname(folder)) : path.basename(folder);
  const side = Math.round(Math.sqrt(spec.locations));
  return {
    id: `${name}/${path.basename(checkpointFile, '.safetensors')}@${digest}`,
    backend: 'native',
    encoder: { id: spec.id, inputSize: spec.inputSize, locations: spec.locations, channels: spec.channels },
    attentionGrid: side * side === spec.locations ? side : null,
    vocabSize: vocab.size,
    maxLength: c.defaultMaxLength,
    details: {
      format: meta.format, createdAt: meta.createdAt, decoder: meta.model,
      epochs: meta.progress?.epoch ?? null, best: meta.progress?.best ?? null,
    },
  };
}

class CaptionerEngine implements CaptionEngine {
  private readonly vocab: DecodeVocab;
  private readonly forbidden: number[];

  constructor(private readonly captioner: Captioner, readonly info: EngineInfo) {
    this.vocab = decodeVocab(captioner.vocab);
    this.forbidden = forbiddenTokens(this.vocab);
  }

  async captionBatch(images: Uint8Array[], settings: DecodeSettings): Promise<BatchResult> {
    const t0 = performance.now();
    const features = await this.captioner.features(images);
    const t1 = performance.now();
    const decoded = beamWithAlternatives(this.captioner.model, features, images.length, this.vocab, { ...settings, forbidden: this.forbidden });
    const t2 = performance.now();
    const captions = decoded.map(({ best, alternatives }): EngineCaption => ({
      caption: best.words.join(' '),
      words: best.words.map((word, i) => ({ word, attention: best.attention[i] })),
      logProb: best.logProb,
      finished: best.finished,
      alternatives,
    }));
    return { captions, encodeMs: t1 - t0, decodeMs: t2 - t1 };
  }

  private disposed = false;

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.captioner.dispose();
  }
}

interface Hypothesis { logProb: number; normalised: number; step: number; row: number }
interface StepRecord { attention: Float32Array; tokens: Int32Array; parents: Int32Array }

/**
 * decodeBeam's search (see its header for the rules) that also returns, per image, up to k hypotheses
 * that reached <end> within the top k of their step, best first. Once no live beam can beat an image's
 * best hypothesis (where decodeBeam stops), the best is fixed, and the search goes on until k hypotheses
 * have finished (or maxLength): later hypotheses can only score lower, so the best stays decodeBeam's.
 * Width 1 is greedy decoding.
 */
export function beamWithAlternatives(model: CaptionModel, features: Float32Array, n: number, vocab: DecodeVocab,
                                     opts: DecodeSettings & { forbidden: number[] }): { best: DecodedCaption; alternatives: CaptionAlternative[] }[] {
  const k = opts.beam;
  const { vocabSize: V, locations: L, units: U } = model.config;
  const norm = (logProb: number, length: number) => (opts.alpha === 0 ? logProb : logProb / Math.pow(length, opts.alpha));
  const mask = suppressTokens(opts.forbidden);
  const history: StepRecord[] = [];
  const finished: Hypothesis[][] = Array.from({ length: n }, () => []);
  /** The best caption, fixed once no live beam can beat it (decodeBeam stops there; this search goes on for alternatives). */
  const settled: (Hypothesis | null)[] = new Array(n).fill(null);
  const results: { best: DecodedCaption; alternatives: CaptionAlternative[] }[] = new Array(n);

  const readBack = (step: number, row: number) => {
    const ids: number[] = [];
    const attention: Float32Array[] = [];
    for (let s = step - 1; s >= 0; s--) {
      const h = history[s];
      ids.push(h.tokens[row]);
      attention.push(h.attention.slice(h.parents[row] * L, (h.parents[row] + 1) * L));
      row = h.parents[row];
    }
    return { ids: ids.reverse(), attention: attention.reverse() };
  };
  const caption = (h: Hypothesis, isFinished: boolean, extra?: { token: number; attention: Float32Array }): DecodedCaption => {
    const { ids, attention } = readBack(h.step, h.row);
    if (extra) { ids.push(extra.token); attention.push(extra.attention); }
    return { ids, words: ids.map((id) => vocab.word(id)), attention, logProb: h.logProb, finished: isFinished };
  };
  const conclude = (image: number, best: DecodedCaption, bestScore: number) => {
    const alternatives = finished[image]
      .sort((a, b) => b.normalised - a.normalised)
      .slice(0, k)
      .map((h) => ({ caption: caption(h, true).words.join(' '), logProb: h.logProb, score: h.normalised, finished: true }));
    if (!best.finished) alternatives.unshift({ caption: best.words.join(' '), logProb: best.logProb, score: bestScore, finished: false });
    results[image] = { best, alternatives: alternatives.slice(0, k) };
  };
  if (n === 0) return results;

  let state: DecoderState = model.encode(features, n);
  let images = Array.from({ length: n }, (_, i) => i);
  let perImage = 1;
  let scores = new Float64Array(n);
  let tokens = new Int32Array(n).fill(vocab.start);
  for (let t = 0; t < opts.maxLength && images.length > 0; t++) {
    const out = model.step(state, tokens);
    const rows = images.length * perImage;
    mask(out.logits, rows, V);
    const lse = logSumExpRows(out.logits, rows, V);
    const attention = out.attention.slice(0, rows * L);
    const last = t === opts.maxLength - 1;
    const next = { parents: [] as number[], tokens: [] as number[], scores: [] as number[], images: [] as number[] };
    for (let g = 0; g < images.length; g++) {
      const image = images[g];
      const ranked = topExtensions(out.logits, lse, scores, g * perImage, perImage, V, 2 * k);
      const live = ranked.filter((c) => c.token !== vocab.end).slice(0, k);
      ranked.forEach((c, rank) => {
        if (c.token === vocab.end && rank < k) finished[image].push({ logProb: c.score, normalised: norm(c.score, t + 1), step: t, row: c.row });
      });
      // decodeBeam keeps the first of equal scores: the earliest hypothesis wins ties.
      const best = settled[image] ?? finished[image].reduce<Hypothesis | null>((b, h) => (!b || h.normalised > b.normalised ? h : b), null);
      const liveBound = live.length > 0 ? norm(live[0].score, opts.maxLength) : -Infinity;
      if (best && best.normalised >= liveBound) settled[image] = best;
      if (best && settled[image] && (finished[image].length >= k || last || live.length === 0)) {
        conclude(image, caption(best, true), best.normalised);
      } else if (last || live.length === 0) {
        if (best) conclude(image, caption(best, true), best.normalised);
        else if (live.length > 0) {
          const c = live[0];
          conclude(image, caption({ logProb: c.score, normalised: 0, step: t, row: c.row }, false,
            { token: c.token, attention: attention.slice(c.row * L, (c.row + 1) * L) }), norm(c.score, t + 1));
        } else conclude(image, { ids: [], words: [], attention: [], logProb: -Infinity, finished: false }, -Infinity);
      } else {
        next.images.push(image);
        for (let j = 0; j < k; j++) {
          const c = live[j] ?? { ...live[0], score: -Infinity };
          next.parents.push(c.row);
          next.tokens.push(c.token);
          next.scores.push(c.score);
        }
      }
    }
    history.push({ attention, tokens: Int32Array.from(next.tokens), parents: Int32Array.from(next.parents) });
    if (next.images.length === 0) break;
    const parents = Int32Array.from(next.parents);
    state = next.images.length === images.length && perImage === k
      ? { ...state, hidden: gatherRows(out.hidden, parents, U) }
      : model.selectRows(state, parents, out.hidden);
    tokens = Int32Array.from(next.tokens);
    scores = Float64Array.from(next.scores);
    images = next.images;
    perImage = k;
  }
  return results;
}

function gatherRows(rows: Float32Array, index: Int32Array, width: number): Float32Array {
  const out = new Float32Array(index.length * width);
  index.forEach((r, i) => out.set(rows.subarray(r * width, (r + 1) * width), i * width));
  return out;
}
