/**
 * What this package uses of an onnxruntime, given as its namespace: `onnxruntime-node` in Node,
 * `onnxruntime-web` in browsers (or in Node, single-threaded wasm). No Node built-ins here.
 */
import { UserError } from '../../util/errors.js';

/** What we use of an onnxruntime tensor. */
export interface OrtTensorLike {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: unknown;
}

/** An input's declared shape (onnxruntime >= 1.21); a number per fixed dimension. */
export interface OrtValueMetadataLike {
  readonly name: string;
  readonly isTensor: boolean;
  readonly shape?: readonly (number | string)[];
}

export interface OrtSessionLike {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata?: readonly OrtValueMetadataLike[];
  run(feeds: Record<string, OrtTensorLike>, fetches?: readonly string[]): Promise<Record<string, OrtTensorLike>>;
  release(): Promise<void>;
}

/** What we use of `import * as ort from 'onnxruntime-node' | 'onnxruntime-web'`. */
export interface OrtNamespace {
  InferenceSession: { create(model: Uint8Array, options?: object): Promise<OrtSessionLike> };
  Tensor: new (type: 'float32' | 'int32', data: Float32Array | Int32Array, dims: readonly number[]) => OrtTensorLike;
}

/**
 * A graph onnxruntime cannot use as this package needs it (a damaged bundle, a user .onnx with other tensor
 * names or layout); the message names the graph and the fix. A UserError: the CLI prints it without a stack.
 */
export class OnnxGraphError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxGraphError';
  }
}

/** Creates a session, naming the graph when onnxruntime refuses it. */
export async function createSession(
  ort: OrtNamespace,
  bytes: Uint8Array,
  what: string,
  options: object,
): Promise<OrtSessionLike> {
  try {
    return await ort.InferenceSession.create(bytes, options);
  } catch (e) {
    throw new OnnxGraphError(`onnxruntime could not load ${what}: ${String((e as Error).message ?? e).split('\n')[0]}`);
  }
}

/**
 * Runs `build`, which passes each session it creates through `keep`; if `build` fails, every kept session is
 * released before its error is passed on, so a failed load leaks no session.
 */
export async function guardSessions<T>(
  build: (keep: (session: OrtSessionLike) => OrtSessionLike) => Promise<T>,
): Promise<T> {
  const made: OrtSessionLike[] = [];
  try {
    return await build((session) => {
      made.push(session);
      return session;
    });
  } catch (e) {
    await releaseAll(made).catch(() => undefined); // the load's own error is the one to report
    throw e;
  }
}

/** Releases every session; waits for all, then throws the first failure (if any). */
export async function releaseAll(sessions: readonly OrtSessionLike[]): Promise<void> {
  const results = await Promise.allSettled(sessions.map((s) => s.release()));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Refuses a session without the named inputs and outputs. */
export function expectNames(
  session: OrtSessionLike,
  what: string,
  inputs: readonly string[],
  outputs: readonly string[],
  fix: string,
): void {
  const missing = [
    ...inputs.filter((n) => !session.inputNames.includes(n)),
    ...outputs.filter((n) => !session.outputNames.includes(n)),
  ];
  if (missing.length > 0) {
    throw new OnnxGraphError(
      `${what} has no tensor ${missing.join(', ')} (inputs ${session.inputNames.join(', ')}; outputs ${session.outputNames.join(', ')}): ${fix}`,
    );
  }
}

/** Output `name` of a run as float32 values, refused unless it holds exactly `length` of them. */
export function floatOutput(
  out: Record<string, OrtTensorLike>,
  name: string,
  length: number,
  what: string,
): Float32Array {
  const t = out[name];
  const data = t?.data;
  if (!(data instanceof Float32Array) || data.length !== length) {
    throw new OnnxGraphError(
      `${what}: output "${name}" has ${t ? `type ${t.type} and shape [${t.dims.join(', ')}]` : 'no value'}, expected ${length} float32 values.`,
    );
  }
  return data;
}
