/**
 * The decoding flags of `sat caption` and `sat eval`: one flag per CaptionOptions field (src/decode/options.ts),
 * parsed the same way and checked by the Captioner API's own function (checkCaptionOptions), with the refusals
 * naming the flags. `sat eval` already uses --sample and --seed for its report, so there sampling is --sampling
 * and its seed --sampling-seed. listFlag reads the repeated or comma-separated --model / --checkpoint of an ensemble.
 */
import {
  CAPTION_OPTION_LIMITS,
  checkCaptionOptions,
  type CaptionOptionName,
  type CaptionOptions,
} from '../decode/options.js';
import { UserError } from '../util/errors.js';
import type { OptionSpec } from './command.js';

/** The flag (without --) of each caption option; `null`: the command has no flag for it. */
export type CaptionFlagNames = Record<CaptionOptionName, string | null>;

export const CAPTION_FLAGS: CaptionFlagNames = {
  beam: 'beam',
  alpha: 'alpha',
  groups: 'groups',
  diversity: 'diversity',
  maxLength: 'max-length',
  sample: 'sample',
  temperature: 'temperature',
  topK: 'top-k',
  topP: 'top-p',
  seed: 'seed',
  blockTrigrams: 'block-trigrams',
  suppressUnk: 'suppress-unk',
  alternatives: null,
  consensus: 'consensus',
  consensusSamples: 'consensus-samples',
  consensusWeight: 'consensus-weight',
};

export const EVAL_CAPTION_FLAGS: CaptionFlagNames = { ...CAPTION_FLAGS, sample: 'sampling', seed: 'sampling-seed' };

const range = (o: keyof typeof CAPTION_OPTION_LIMITS) => {
  const l = CAPTION_OPTION_LIMITS[o];
  return 'minExclusive' in l ? `> ${l.min} and <= ${l.max}` : `${l.min}..${l.max}`;
};

const HELP: Record<Exclude<CaptionOptionName, 'alternatives'>, string> = {
  beam: `beam search width (${range('beam')}; default 1: greedy, the most likely word at each step)`,
  alpha: `beam search length normalisation: rank by score / length^alpha (${range('alpha')}; 0 = off)`,
  groups: `diverse beam search: split the beam into this many groups (must divide the beam; default 1 = plain beam search)`,
  diversity: `diverse beam search: strength of the penalty on words earlier groups chose at the same step (${range('diversity')}; default 0.5)`,
  maxLength: "most words per caption, <end> included (default: the vocabulary's max length - 1)",
  sample: 'sample each word from softmax(logits / temperature) instead of searching',
  temperature: 'sampling temperature (default 1)',
  topK: 'sampling: draw only among the K likeliest words (default: all)',
  topP: `sampling: draw only among the likeliest words whose probabilities sum to P (${range('topP')}; default 1 = all)`,
  seed: 'sampling seed (default 0)',
  blockTrigrams: 'never repeat a trigram (three consecutive words) within a caption',
  suppressUnk: 'never emit <unk>',
  consensus: `consensus reranking: choose among the beam's hypotheses and sampled captions the one that agrees most (CIDEr-D) with the captions of the K nearest training images (${range('consensus')}; needs a caption memory; e.g. 60)`,
  consensusSamples: `consensus reranking: captions sampled per image next to the beam's (${range('consensusSamples')}; default 20; seeded by the sampling seed)`,
  consensusWeight: `consensus reranking: weight of the model's log-probability / length^0.5 next to the agreement (${range('consensusWeight')}; default 0.05)`,
};

/** The commands' option specs of the decoding flags in `flags`. */
export function captionOptionFlags(flags: CaptionFlagNames): Record<string, OptionSpec> {
  const specs: Record<string, OptionSpec> = {};
  for (const [option, description] of Object.entries(HELP) as [Exclude<CaptionOptionName, 'alternatives'>, string][]) {
    const flag = flags[option];
    if (flag === null) continue;
    const boolean = option === 'sample' || option === 'blockTrigrams' || option === 'suppressUnk';
    specs[flag] = { type: boolean ? 'boolean' : 'string', description };
  }
  return specs;
}

/**
 * CaptionOptions straight from the parsed flags, checked by checkCaptionOptions with the flags named (`extra`
 * adds options that have no flag of their own, e.g. alternatives from --json). A value that is not a number
 * stays a string, so the refusal quotes it as given.
 */
export function captionOptionsFromFlags(
  values: Record<string, unknown>,
  flags: CaptionFlagNames,
  extra: CaptionOptions = {},
): CaptionOptions {
  const options: Record<string, unknown> = {};
  for (const [option, flag] of Object.entries(flags) as [CaptionOptionName, string | null][]) {
    if (flag === null) continue;
    const v = values[flag];
    if (v === undefined || v === false) continue;
    options[option] = typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
  }
  Object.assign(options, Object.fromEntries(Object.entries(extra).filter(([, v]) => v !== undefined)));
  checkCaptionOptions(options as CaptionOptions, {
    fail: (m) => new UserError(m),
    name: (k) => (flags[k] === null ? k : `--${flags[k]}`),
  });
  return options as CaptionOptions;
}

/**
 * A flag given once, repeated, or with comma-separated values (--model a --model b, --model a,b), as one list;
 * undefined when it is absent. An ensemble's members are given this way.
 */
export function listFlag(values: Record<string, unknown>, flag: string): string[] | undefined {
  const value = values[flag];
  if (value === undefined) return undefined;
  const list = (Array.isArray(value) ? value : [value]).flatMap((v) => String(v).split(',')).map((v) => v.trim());
  if (list.some((v) => v === ''))
    throw new UserError(`--${flag} ${JSON.stringify(value)} has an empty entry: give one path per model.`);
  return list;
}
