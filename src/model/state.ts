/**
 * DecoderState row selection on plain arrays (beam search reorders and duplicates rows), for models whose
 * state lives in JavaScript: the ONNX backends, and the native model (its state is plain arrays too). Pure: no
 * Node built-ins, so browsers can use it.
 */
import type { DecoderState, ModelConfig } from './types.js';
import { UserError } from '../util/errors.js';

/**
 * selectStateRows without copying the encoder's output: the new state shares `encoded` and `projected` and maps
 * each row to its image (DecoderState.imageOfRow), for backends that read rows through that map (native).
 */
export function selectSharedRows(
  config: ModelConfig,
  state: DecoderState,
  rows: Int32Array,
  hidden?: Float32Array,
): DecoderState {
  const { units: U } = config;
  const source = hidden ?? state.hidden;
  if (source.length !== state.size * U)
    throw new UserError(`selectRows: hidden has ${source.length} values, expected [N=${state.size}, U=${U}]`);
  const n = rows.length;
  const hiddenRows = new Float32Array(n * U);
  const imageOfRow = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rows[i];
    if (!Number.isInteger(r) || r < 0 || r >= state.size)
      throw new UserError(`selectRows: rows[${i}] = ${r} is outside the state's ${state.size} rows`);
    hiddenRows.set(source.subarray(r * U, (r + 1) * U), i * U);
    imageOfRow[i] = state.imageOfRow ? state.imageOfRow[r] : r;
  }
  return { size: n, hidden: hiddenRows, encoded: state.encoded, projected: state.projected, imageOfRow };
}

/** New row i = old row rows[i]; `hidden` [state.size, U] replaces state.hidden when given. */
export function selectStateRows(
  config: ModelConfig,
  state: DecoderState,
  rows: Int32Array,
  hidden?: Float32Array,
): DecoderState {
  const { locations: L, embedDim: E, attentionUnits: A, units: U } = config;
  const source = hidden ?? state.hidden;
  if (source.length !== state.size * U)
    throw new UserError(`selectRows: hidden has ${source.length} values, expected [N=${state.size}, U=${U}]`);
  const n = rows.length;
  const next: DecoderState = {
    size: n,
    hidden: new Float32Array(n * U),
    encoded: new Float32Array(n * L * E),
    projected: new Float32Array(n * L * A),
  };
  for (let i = 0; i < n; i++) {
    const r = rows[i];
    if (!Number.isInteger(r) || r < 0 || r >= state.size)
      throw new UserError(`selectRows: rows[${i}] = ${r} is outside the state's ${state.size} rows`);
    next.hidden.set(source.subarray(r * U, (r + 1) * U), i * U);
    const image = state.imageOfRow ? state.imageOfRow[r] : r;
    next.encoded.set(state.encoded.subarray(image * L * E, (image + 1) * L * E), i * L * E);
    next.projected.set(state.projected.subarray(image * L * A, (image + 1) * L * A), i * L * A);
  }
  return next;
}
