/**
 * DecoderState row selection on plain arrays (beam search reorders and duplicates rows), for models whose
 * state lives in JavaScript: the ONNX backends, and the native model (its state is plain arrays too). Pure: no
 * Node built-ins, so browsers can use it.
 */
import type { DecoderState, ModelConfig } from './types.js';
import { UserError } from '../util/errors.js';

/**
 * New row i = old row rows[i], sharing the encoder's output: the new state keeps `encoded` and `projected` and maps
 * each row to its image (DecoderState.imageOfRow), for backends that read rows through that map (native).
 * `hidden` [state.size, U] replaces state.hidden when given.
 */
export function selectSharedRows(
  config: ModelConfig,
  state: DecoderState,
  rows: Int32Array,
  hidden?: Float32Array,
): DecoderState & { imageOfRow: Int32Array } {
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

/**
 * New row i = old row rows[i], with its own copy of its image's encoder output (as the ONNX graphs take it);
 * `hidden` [state.size, U] replaces state.hidden when given.
 */
export function selectStateRows(
  config: ModelConfig,
  state: DecoderState,
  rows: Int32Array,
  hidden?: Float32Array,
): DecoderState {
  const { locations: L, embedDim: E, attentionUnits: A } = config;
  const shared = selectSharedRows(config, state, rows, hidden);
  const n = shared.size;
  const encoded = new Float32Array(n * L * E);
  const projected = new Float32Array(n * L * A);
  shared.imageOfRow.forEach((image, i) => {
    encoded.set(state.encoded.subarray(image * L * E, (image + 1) * L * E), i * L * E);
    projected.set(state.projected.subarray(image * L * A, (image + 1) * L * A), i * L * A);
  });
  return { size: n, hidden: shared.hidden, encoded, projected };
}
