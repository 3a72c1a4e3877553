/**
 * Captioning options: the one options type of every front end (the library's Captioner API, `sat caption`,
 * `sat eval`, `sat serve`, the browser entry), its limits table and its check. The search code reads the same
 * options with their defaults filled in (ResolvedCaptionOptions). Pure: no Node built-ins.
 *
 *   search      beam (width K, 1 = greedy), alpha (length normalisation), groups + diversity (diverse beam
 *               search, Vijayakumar et al. 2016: K beams in G groups of K / G, each group's scores lowered by
 *               diversity x the times a token was chosen at the same step by the groups before it)
 *   sampling    sample, with temperature, topK, topP (nucleus) and seed
 *   every mode  maxLength, suppressUnk, blockTrigrams (no trigram twice in a caption), alternatives (n-best)
 *   consensus   rerank the search's hypotheses and consensusSamples sampled captions by their agreement with the
 *               captions of the `consensus` nearest training images (consensus.ts; needs a caption memory)
 */

export interface CaptionOptions {
  /** Beam width; 1 (default) is greedy decoding. */
  beam?: number;
  /** Beam search length normalisation: hypotheses ranked by score / length^alpha (default 0: raw score). */
  alpha?: number;
  /** Diverse beam search: the beam splits into this many groups of beam / groups beams (default 1: plain beam search). */
  groups?: number;
  /** Diverse beam search: the Hamming diversity strength (default 0.5 with groups > 1). */
  diversity?: number;
  /** Most tokens per caption, <end> included (default: the vocabulary's longest caption minus <start>). */
  maxLength?: number;
  /** Sample each word from softmax(logits / temperature) instead of searching. */
  sample?: boolean;
  /** Sampling temperature (default 1). */
  temperature?: number;
  /** Sampling: draw only among the topK likeliest words (default: all). */
  topK?: number;
  /** Sampling: draw only among the likeliest words whose probabilities sum to at least topP (default 1: all). */
  topP?: number;
  /** Sampling seed (default 0): the same seed gives the same captions. */
  seed?: number;
  /** Never emit a word that would repeat a trigram (three consecutive words) already in the caption. */
  blockTrigrams?: boolean;
  /** Never emit <unk>. */
  suppressUnk?: boolean;
  /**
   * Beam search: list the best finished hypotheses with the caption (true: all `beam` of them; a number m: the
   * best m, 1 <= m <= beam). Off by default: waiting for them can lengthen the search.
   */
  alternatives?: boolean | number;
  /**
   * Consensus reranking (src/decode/consensus.ts): the number k of nearest training images whose captions vote.
   * The candidates are the beam's hypotheses and `consensusSamples` sampled captions; the caption chosen is the one
   * whose n-grams agree most with those images' captions (CIDEr-D). Needs a model with a caption memory. Off by
   * default.
   */
  consensus?: number;
  /** Consensus reranking: captions sampled per image (temperature 1, seeded by `seed`) next to the beam's (default 20). */
  consensusSamples?: number;
  /** Consensus reranking: weight of the model's log-probability / length^0.5 next to the agreement (default 0.05). */
  consensusWeight?: number;
}

export type CaptionOptionName = keyof CaptionOptions;

export interface OptionLimit {
  integer: boolean;
  min: number;
  max: number;
  /** The value must be greater than min (min itself is refused). */
  minExclusive?: boolean;
}

/** The ranges of the numeric CaptionOptions (the same for the library, the CLI, `sat serve` and the browser). */
export const CAPTION_OPTION_LIMITS = {
  beam: { integer: true, min: 1, max: 100 },
  alpha: { integer: false, min: 0, max: 5 },
  groups: { integer: true, min: 1, max: 100 },
  diversity: { integer: false, min: 0, max: 100 },
  maxLength: { integer: true, min: 1, max: 1000 },
  temperature: { integer: false, min: 1e-6, max: 1e6 },
  topK: { integer: true, min: 1, max: 1_000_000 },
  topP: { integer: false, min: 0, max: 1, minExclusive: true },
  seed: { integer: true, min: 0, max: 2 ** 32 - 1 },
  consensus: { integer: true, min: 1, max: 1000 },
  consensusSamples: { integer: true, min: 0, max: 1000 },
  consensusWeight: { integer: false, min: 0, max: 100 },
} as const satisfies Partial<Record<CaptionOptionName, OptionLimit>>;

/** The options that are true or false. */
const BOOLEAN_OPTIONS = ['sample', 'blockTrigrams', 'suppressUnk'] as const satisfies readonly CaptionOptionName[];

/** Every option name, in the order --help and messages list them. */
export const CAPTION_OPTION_NAMES: readonly CaptionOptionName[] = [
  'beam',
  'alpha',
  'groups',
  'diversity',
  'maxLength',
  'sample',
  'temperature',
  'topK',
  'topP',
  'seed',
  'blockTrigrams',
  'suppressUnk',
  'alternatives',
  'consensus',
  'consensusSamples',
  'consensusWeight',
];

/** Consensus reranking's defaults (measured on Flickr8k dev, RESULTS.md). */
export const DEFAULT_CONSENSUS_SAMPLES = 20;
export const DEFAULT_CONSENSUS_WEIGHT = 0.05;

/** The diversity strength diverse beam search uses when groups > 1 and none is given (ImageCaptioning.pytorch's default). */
export const DEFAULT_DIVERSITY = 0.5;

export interface OptionCheck {
  /** Builds the error (default: Error; Node callers pass UserError). */
  fail?: (message: string) => Error;
  /** How an option is named in messages (default its key; the CLI passes its flag, e.g. maxLength -> --max-length). */
  name?: (option: CaptionOptionName) => string;
}

function describeLimit(l: OptionLimit): string {
  const kind = l.integer ? 'an integer' : 'a number';
  return l.minExclusive ? `${kind} greater than ${l.min} and at most ${l.max}` : `${kind} from ${l.min} to ${l.max}`;
}

/** Names joined for a message: "a", "a and b", "a, b and c". */
function listNames(names: string[]): string {
  return names.length <= 1 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

/**
 * Refuses CaptionOptions that are unknown, of the wrong type, out of CAPTION_OPTION_LIMITS or contradictory: beam
 * with sample; alpha, groups or diversity without beam search; groups that do not divide the beam; diversity
 * without groups; temperature, topK, topP or seed without sample (seed also seeds consensus samples); more
 * alternatives than candidates; consensusSamples or consensusWeight without consensus; consensus with sample.
 */
export function checkCaptionOptions(o: CaptionOptions, check: OptionCheck = {}): void {
  const fail = check.fail ?? ((m: string) => new Error(m));
  const name = check.name ?? ((k: CaptionOptionName) => k);
  if (o === null || typeof o !== 'object' || Array.isArray(o))
    throw fail(`caption options must be an object, got ${JSON.stringify(o)}.`);
  const unknown = Object.keys(o).filter((k) => !CAPTION_OPTION_NAMES.includes(k as CaptionOptionName));
  if (unknown.length > 0)
    throw fail(`unknown caption option(s) ${unknown.join(', ')}; known: ${CAPTION_OPTION_NAMES.join(', ')}.`);
  for (const [key, limit] of Object.entries(CAPTION_OPTION_LIMITS) as [
    keyof typeof CAPTION_OPTION_LIMITS,
    OptionLimit,
  ][]) {
    const v = o[key];
    if (v === undefined) continue;
    if (
      typeof v !== 'number' ||
      !Number.isFinite(v) ||
      (limit.integer && !Number.isInteger(v)) ||
      v < limit.min ||
      (limit.minExclusive && v === limit.min) ||
      v > limit.max
    ) {
      throw fail(`${name(key)} must be ${describeLimit(limit)}, got ${JSON.stringify(v)}.`);
    }
  }
  for (const key of BOOLEAN_OPTIONS) {
    if (o[key] !== undefined && typeof o[key] !== 'boolean')
      throw fail(`${name(key)} must be true or false, got ${JSON.stringify(o[key])}.`);
  }
  const beam = o.beam ?? 1;
  if (o.sample && beam > 1)
    throw fail(`${name('beam')} and ${name('sample')} exclude each other: choose beam search or sampling.`);
  checkConsensusOptions(o, beam, fail, name);
  const consensusSamples = o.consensus !== undefined ? (o.consensusSamples ?? DEFAULT_CONSENSUS_SAMPLES) : 0;
  const samplingOnly = (['temperature', 'topK', 'topP', 'seed'] as const).filter(
    (k) => o[k] !== undefined && !(k === 'seed' && consensusSamples > 0),
  );
  if (!o.sample && samplingOnly.length > 0) {
    const names = samplingOnly.map(name);
    throw fail(
      `${listNames(names)} appl${names.length === 1 ? 'ies' : 'y'} to ${name('sample')} only: add ${name('sample')}, or leave ${names.length === 1 ? 'it' : 'them'} out.`,
    );
  }
  if (o.alpha !== undefined && o.alpha > 0 && (beam <= 1 || o.sample)) {
    throw fail(
      `${name('alpha')} (length normalisation) applies to beam search: give ${name('beam')} K with K > 1, or leave ${name('alpha')} out.`,
    );
  }
  const groups = o.groups ?? 1;
  if (groups > beam) {
    throw fail(
      `${name('groups')} ${groups} is larger than the beam (${name('beam')} ${beam}): diverse beam search splits the beam into groups; ` +
        `give ${name('beam')} a multiple of ${groups}, or fewer groups.`,
    );
  }
  if (beam % groups !== 0) {
    throw fail(
      `${name('groups')} ${groups} does not divide the beam (${name('beam')} ${beam}) into equal groups: ` +
        `give ${name('beam')} a multiple of ${groups} (e.g. ${groups * Math.max(1, Math.round(beam / groups))}), or ${name('groups')} a divisor of ${beam}.`,
    );
  }
  if (o.diversity !== undefined && o.diversity > 0 && groups <= 1) {
    throw fail(
      `${name('diversity')} applies to diverse beam search: give ${name('groups')} G with G > 1 (and ${name('beam')} a multiple of G), or leave ${name('diversity')} out.`,
    );
  }
  const alt = o.alternatives;
  const candidates = beam + consensusSamples;
  if (
    alt !== undefined &&
    typeof alt !== 'boolean' &&
    !(typeof alt === 'number' && Number.isInteger(alt) && alt >= 0 && alt <= candidates)
  ) {
    const most = consensusSamples > 0 ? `${name('beam')} + ${name('consensusSamples')}` : name('beam');
    throw fail(
      `${name('alternatives')} must be true, false or a count from 0 to ${most} (${candidates}), got ${JSON.stringify(alt)}.`,
    );
  }
}

/** Consensus reranking's options: its two settings only with it, not with sampling, and at least two candidates. */
function checkConsensusOptions(
  o: CaptionOptions,
  beam: number,
  fail: (message: string) => Error,
  name: (option: CaptionOptionName) => string,
): void {
  const settings = (['consensusSamples', 'consensusWeight'] as const).filter((k) => o[k] !== undefined);
  if (o.consensus === undefined) {
    if (settings.length > 0) {
      const names = settings.map(name);
      throw fail(
        `${listNames(names)} appl${names.length === 1 ? 'ies' : 'y'} to consensus reranking only: add ${name('consensus')} K, or leave ${names.length === 1 ? 'it' : 'them'} out.`,
      );
    }
    return;
  }
  if (o.sample)
    throw fail(
      `${name('consensus')} reranks beam search's hypotheses and its own samples (${name('consensusSamples')}): leave ${name('sample')} out.`,
    );
  if (beam + (o.consensusSamples ?? DEFAULT_CONSENSUS_SAMPLES) < 2)
    throw fail(
      `${name('consensus')} needs candidates to choose from: give ${name('beam')} K > 1 or ${name('consensusSamples')} N > 0.`,
    );
}

/** How captions are made: 'greedy' (beam 1), 'beam' (beam > 1, diverse with groups > 1) or 'sample'. */
export type SearchKind = 'greedy' | 'beam' | 'sample';

/**
 * Checked CaptionOptions with every default filled in: what the search code reads. topK Infinity and topP 1
 * keep every word; alternatives is a count (0 unless a beam search or consensus reranking asked for them);
 * consensus 0 is off.
 */
export type ResolvedCaptionOptions = Required<Omit<CaptionOptions, 'alternatives'>> & {
  kind: SearchKind;
  alternatives: number;
};

/** Checks `o` (checkCaptionOptions) and fills in the defaults; `defaultMaxLength` is the model's. */
export function resolveCaptionOptions(
  o: CaptionOptions,
  defaultMaxLength: number,
  check: OptionCheck = {},
): ResolvedCaptionOptions {
  checkCaptionOptions(o, check);
  const beam = o.beam ?? 1;
  const groups = o.groups ?? 1;
  const kind: SearchKind = o.sample ? 'sample' : beam > 1 ? 'beam' : 'greedy';
  const consensus = o.consensus ?? 0;
  const consensusSamples = consensus > 0 ? (o.consensusSamples ?? DEFAULT_CONSENSUS_SAMPLES) : 0;
  // Alternatives are a beam search's hypotheses, or with consensus the ranked candidates (true: all of them).
  const candidates = consensus > 0 ? beam + consensusSamples : kind === 'beam' ? beam : 0;
  const alternatives = !o.alternatives
    ? 0
    : o.alternatives === true
      ? candidates
      : Math.min(o.alternatives, candidates);
  return {
    kind,
    beam,
    alpha: o.alpha ?? 0,
    groups,
    diversity: o.diversity ?? (groups > 1 ? DEFAULT_DIVERSITY : 0),
    maxLength: o.maxLength ?? defaultMaxLength,
    sample: o.sample ?? false,
    temperature: o.temperature ?? 1,
    topK: o.topK ?? Infinity,
    topP: o.topP ?? 1,
    seed: o.seed ?? 0,
    blockTrigrams: o.blockTrigrams ?? false,
    suppressUnk: o.suppressUnk ?? false,
    alternatives,
    consensus,
    consensusSamples,
    consensusWeight: consensus > 0 ? (o.consensusWeight ?? DEFAULT_CONSENSUS_WEIGHT) : 0,
  };
}

/** What a caption was made with, for reports (`sat caption --json`, metrics.json): the mode and its options that apply. */
export type DecodingSummary = { kind: SearchKind; maxLength: number } & Partial<
  Omit<ResolvedCaptionOptions, 'kind' | 'maxLength'>
>;

/** The decoding of `o` as reports show it: the kind, then only the options of that kind that are set or not at their defaults. */
export function decodingSummary(o: CaptionOptions, defaultMaxLength: number): DecodingSummary {
  const r = resolveCaptionOptions(o, defaultMaxLength);
  const out: DecodingSummary = { kind: r.kind, maxLength: r.maxLength };
  if (r.kind === 'beam') {
    out.beam = r.beam;
    if (r.alpha > 0) out.alpha = r.alpha;
    if (r.groups > 1) Object.assign(out, { groups: r.groups, diversity: r.diversity });
  }
  if (r.kind === 'sample') {
    Object.assign(out, { temperature: r.temperature, seed: r.seed });
    if (r.topK !== Infinity) out.topK = r.topK;
    if (r.topP < 1) out.topP = r.topP;
  }
  if (r.consensus > 0)
    Object.assign(out, {
      consensus: r.consensus,
      consensusSamples: r.consensusSamples,
      consensusWeight: r.consensusWeight,
      ...(r.consensusSamples > 0 ? { seed: r.seed } : {}),
    });
  if (r.blockTrigrams) out.blockTrigrams = true;
  if (r.suppressUnk) out.suppressUnk = true;
  return out;
}
