/**
 * Search strategies are written once, as generators that ask for model work and receive its result:
 *
 *   const state = yield { kind: 'encode', features, n };     // -> DecoderState
 *   const out = yield { kind: 'step', state, tokens };       // -> StepOutput
 *
 * A driver answers the requests: `runSearch` calls a synchronous DecoderModel (the native addon: validation,
 * self-critical training and `sat eval` stay synchronous), `runSearchAsync` awaits an AsyncDecoderModel
 * (onnxruntime-node / onnxruntime-web). selectRows works on plain arrays and is called directly. So greedy,
 * beam and sampling are the same code on every backend, and the native path gives the same results as a
 * direct loop over model.step.
 */
import type { AsyncDecoderModel, DecoderModel, DecoderState, StepOutput } from '../model/types.js';

export type ModelRequest =
  { kind: 'encode'; features: Float32Array; n: number } | { kind: 'step'; state: DecoderState; tokens: Int32Array };

/** The reply to a request: a DecoderState for 'encode', a StepOutput for 'step'. */
export type ModelReply = DecoderState | StepOutput;

/** A search that yields model requests and returns T. */
export type Search<T> = Generator<ModelRequest, T, ModelReply>;

/** Asks for the encoded state of features [n, L, C]. */
export function* encodeRequest(features: Float32Array, n: number): Generator<ModelRequest, DecoderState, ModelReply> {
  return (yield { kind: 'encode', features, n }) as DecoderState;
}

/** Asks for one decoder step of every row of `state`. */
export function* stepRequest(state: DecoderState, tokens: Int32Array): Generator<ModelRequest, StepOutput, ModelReply> {
  return (yield { kind: 'step', state, tokens }) as StepOutput;
}

/** Runs a search on a synchronous model. */
export function runSearch<T>(model: DecoderModel, search: Search<T>): T {
  let r = search.next();
  while (!r.done) {
    const q = r.value;
    r = search.next(q.kind === 'encode' ? model.encode(q.features, q.n) : model.step(q.state, q.tokens));
  }
  return r.value;
}

/** Runs a search on an asynchronous model (each request awaited in turn). */
export async function runSearchAsync<T>(model: AsyncDecoderModel, search: Search<T>): Promise<T> {
  let r = search.next();
  while (!r.done) {
    const q = r.value;
    r = search.next(q.kind === 'encode' ? await model.encode(q.features, q.n) : await model.step(q.state, q.tokens));
  }
  return r.value;
}
