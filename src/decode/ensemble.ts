/**
 * Ensembles: K decoders of one vocabulary over one encoder's features, searched as one model. Each step runs
 * every member on the same tokens and gives the search
 *
 *   logits[r, v]    = (1/K) sum_k log_softmax(logits_k)[r, v]   the averaged log-probabilities (the search
 *                     normalises them again, so captions are ranked by the members' geometric mean)
 *   attention[r, l] = (1/K) sum_k attention_k[r, l]             the members' maps averaged (still sums to 1)
 *   hidden[r]       = [hidden_1[r], ..., hidden_K[r]]           every member's state side by side, [N, sum U_k]
 *
 * so greedy, beam (plain or diverse) and sampling run on an ensemble unchanged (config.units is sum U_k, which
 * is all the search needs to move hidden rows). An ensemble of one is that model itself. Members may differ in
 * size (E, U, A), GRU state and initial state; they must share the vocabulary and the encoder
 * (checkEnsembleMembers says what differs).
 *
 * Shapes: N rows, V vocabulary, L locations, U_k units of member k.
 */
import type {
  AsyncDecoderModel,
  DecoderModel,
  DecoderModelBase,
  DecoderState,
  ModelConfig,
  StepOutput,
} from '../model/types.js';
import { logSumExpRows } from './logits.js';

/** What must agree between the members of an ensemble. */
export interface EnsembleMemberFacts {
  /** How the member is named in refusals (its checkpoint file or bundle). */
  name: string;
  /** The vocabulary's words by id. */
  words: readonly string[];
  encoderId: string;
  locations: number;
  channels: number;
}

/** Refuses members whose vocabulary or encoder differs from the first member's, naming both and what differs. */
export function checkEnsembleMembers(
  members: readonly EnsembleMemberFacts[],
  fail: (message: string) => Error = (m) => new Error(m),
): void {
  if (members.length === 0) throw fail('an ensemble needs at least one model.');
  const [first] = members;
  members.slice(1).forEach((m, i) => {
    const which = `model ${i + 2} (${m.name}) and model 1 (${first.name})`;
    if (m.encoderId !== first.encoderId || m.locations !== first.locations || m.channels !== first.channels) {
      throw fail(
        `${which} cannot form an ensemble: they use different encoders, "${m.encoderId}" [${m.locations} x ${m.channels}] vs ` +
          `"${first.encoderId}" [${first.locations} x ${first.channels}]. An ensemble shares one encoder: use models trained on the same features.`,
      );
    }
    const diff = firstDifference(m.words, first.words);
    if (diff !== null) {
      const at =
        diff < Math.min(m.words.length, first.words.length)
          ? `first difference at id ${diff}: ${JSON.stringify(m.words[diff])} vs ${JSON.stringify(first.words[diff])}`
          : `the first ${diff} words agree`;
      throw fail(
        `${which} cannot form an ensemble: they have different vocabularies (${m.words.length} vs ${first.words.length} words; ${at}). ` +
          'An ensemble averages word probabilities: use models trained on the same prepared run (one vocab.json).',
      );
    }
  });
}

/** The first index where the lists differ, or null when they are equal. */
function firstDifference(a: readonly string[], b: readonly string[]): number | null {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? null : n;
}

/** An ensemble's state: the members' own states (their `hidden` is stale: `hidden` here holds every member's). */
interface EnsembleState extends DecoderState {
  members: DecoderState[];
}

/** Row-major [N, sum U] <-> one [N, U_k] block per member. */
class HiddenLayout {
  readonly total: number;
  constructor(readonly units: readonly number[]) {
    this.total = units.reduce((s, u) => s + u, 0);
  }

  split(hidden: Float32Array, rows: number): Float32Array[] {
    let offset = 0;
    return this.units.map((u) => {
      const out = new Float32Array(rows * u);
      for (let r = 0; r < rows; r++)
        out.set(hidden.subarray(r * this.total + offset, r * this.total + offset + u), r * u);
      offset += u;
      return out;
    });
  }

  join(parts: readonly Float32Array[], rows: number): Float32Array {
    const out = new Float32Array(rows * this.total);
    let offset = 0;
    parts.forEach((part, k) => {
      const u = this.units[k];
      for (let r = 0; r < rows; r++) out.set(part.subarray(r * u, (r + 1) * u), r * this.total + offset);
      offset += u;
    });
    return out;
  }
}

/** The search-facing parts shared by the synchronous and asynchronous ensembles. */
class EnsembleCore {
  readonly config: ModelConfig;
  readonly layout: HiddenLayout;

  constructor(members: readonly DecoderModelBase[]) {
    const [first] = members;
    for (const [k, m] of members.entries()) {
      const c = m.config;
      if (
        c.vocabSize !== first.config.vocabSize ||
        c.locations !== first.config.locations ||
        c.channels !== first.config.channels
      ) {
        throw new Error(
          `ensemble member ${k + 1} takes [${c.locations} x ${c.channels}] features to ${c.vocabSize} words, ` +
            `member 1 [${first.config.locations} x ${first.config.channels}] to ${first.config.vocabSize}`,
        );
      }
    }
    this.layout = new HiddenLayout(members.map((m) => m.config.units));
    this.config = { ...first.config, units: this.layout.total };
  }

  state(members: DecoderState[]): EnsembleState {
    const rows = members[0].size;
    return {
      size: rows,
      hidden: this.layout.join(
        members.map((s) => s.hidden),
        rows,
      ),
      encoded: members[0].encoded,
      projected: members[0].projected,
      members,
    };
  }

  /** The members' states with their hidden rows taken from `hidden` (default the ensemble's). */
  memberStates(state: DecoderState, hidden = state.hidden): DecoderState[] {
    const members = (state as EnsembleState).members;
    if (!members) throw new Error('not an ensemble state: encode with the ensemble first');
    const parts = this.layout.split(hidden, state.size);
    return members.map((s, k) => ({ ...s, hidden: parts[k] }));
  }

  combine(outs: readonly StepOutput[], rows: number): StepOutput {
    const { vocabSize: V, locations: L } = this.config;
    const K = outs.length;
    const sum = new Float64Array(rows * V);
    const attention = new Float32Array(rows * L);
    for (const out of outs) {
      const lse = logSumExpRows(out.logits, rows, V);
      for (let r = 0; r < rows; r++) for (let v = 0; v < V; v++) sum[r * V + v] += out.logits[r * V + v] - lse[r];
      for (let i = 0; i < rows * L; i++) attention[i] += out.attention[i] / K;
    }
    const logits = Float32Array.from(sum, (x) => x / K);
    return {
      logits,
      attention,
      hidden: this.layout.join(
        outs.map((o) => o.hidden),
        rows,
      ),
    };
  }
}

/** K synchronous models (the native addon) as one DecoderModel; one model is returned as it is. dispose() frees every member. */
export function ensembleModel(models: readonly DecoderModel[]): DecoderModel {
  if (models.length === 1) return models[0];
  const core = new EnsembleCore(models);
  return {
    config: core.config,
    encode: (features, n) => core.state(models.map((m) => m.encode(features, n))),
    step: (state, tokens) => {
      const members = core.memberStates(state);
      return core.combine(
        models.map((m, k) => m.step(members[k], tokens)),
        state.size,
      );
    },
    selectRows: (state, rows, hidden) => {
      const members = core.memberStates(state, hidden ?? state.hidden);
      return core.state(models.map((m, k) => m.selectRows(members[k], rows)));
    },
    dispose: () => models.forEach((m) => m.dispose()),
  };
}

/** K asynchronous models (onnxruntime) as one AsyncDecoderModel, the members run side by side; one model is returned as it is. */
export function asyncEnsembleModel(models: readonly AsyncDecoderModel[]): AsyncDecoderModel {
  if (models.length === 1) return models[0];
  const core = new EnsembleCore(models);
  return {
    config: core.config,
    encode: async (features, n) => core.state(await Promise.all(models.map((m) => m.encode(features, n)))),
    step: async (state, tokens) => {
      const members = core.memberStates(state);
      return core.combine(await Promise.all(models.map((m, k) => m.step(members[k], tokens))), state.size);
    },
    selectRows: (state, rows, hidden) => {
      const members = core.memberStates(state, hidden ?? state.hidden);
      return core.state(models.map((m, k) => m.selectRows(members[k], rows)));
    },
    release: async () => {
      const results = await Promise.allSettled(models.map((m) => m.release()));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
  };
}
