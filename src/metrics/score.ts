/**
 * The caption metrics of the COCO caption evaluation (pycocoevalcap), computed in TypeScript:
 * BLEU-1..4, ROUGE-L and CIDEr(-D), on pycocoevalcap's scale (BLEU in 0..1, CIDEr unscaled, e.g. 0.45).
 * METEOR and SPICE need the official Java jars and are not computed.
 *
 * Like pycocoevalcap's COCOEvalCap, only the images that have a hypothesis are scored, and CIDEr's
 * document frequencies come from the references of exactly those images.
 */
import { bleu } from './bleu.js';
import { ciderD } from './cider.js';
import { tokenizeCaption } from './ptb-tokenizer.js';
import { rougeL } from './rouge.js';

export interface Scores {
  'BLEU-1': number;
  'BLEU-2': number;
  'BLEU-3': number;
  'BLEU-4': number;
  'ROUGE-L': number;
  CIDEr: number;
}

export const SCORE_NAMES: readonly (keyof Scores)[] = ['BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'ROUGE-L', 'CIDEr'];

/** Thrown when a hypothesis has no references; `missing` lists the ids (in hypothesis order). */
export class MissingReferencesError extends Error {
  constructor(readonly missing: string[]) {
    const shown = missing
      .slice(0, 10)
      .map((id) => JSON.stringify(id))
      .join(', ');
    super(
      `${missing.length} hypothesis id(s) have no reference captions: ${shown}${missing.length > 10 ? ', ...' : ''}`,
    );
    this.name = 'MissingReferencesError';
  }
}

/**
 * Score already-tokenised captions (space-separated tokens, as pycocoevalcap's tokenizer outputs them).
 * `hyps[i]` is scored against `refs[i]`, which must be non-empty.
 */
export function scoreTokenized(hyps: readonly string[], refs: readonly (readonly string[])[]): Scores {
  if (hyps.length !== refs.length)
    throw new Error(`scoreTokenized: ${hyps.length} hypotheses but ${refs.length} reference lists.`);
  if (hyps.length === 0) throw new Error('scoreTokenized: nothing to score (no hypotheses).');
  refs.forEach((r, i) => {
    if (r.length === 0) throw new Error(`scoreTokenized: image #${i} has an empty reference list.`);
  });
  const [b1, b2, b3, b4] = bleu(hyps, refs);
  return {
    'BLEU-1': b1,
    'BLEU-2': b2,
    'BLEU-3': b3,
    'BLEU-4': b4,
    'ROUGE-L': rougeL(hyps, refs),
    CIDEr: ciderD(hyps, refs),
  };
}

/**
 * Score raw captions like pycocoevalcap's COCOEvalCap: PTB-tokenise references and hypotheses, then
 * compute every metric over the images in `hyps`. Throws MissingReferencesError when some hypothesis
 * id has no (or an empty list of) references; extra reference ids are ignored.
 */
export function scoreCaptions(refs: ReadonlyMap<string, readonly string[]>, hyps: ReadonlyMap<string, string>): Scores {
  const missing = [...hyps.keys()].filter((id) => (refs.get(id)?.length ?? 0) === 0);
  if (missing.length > 0) throw new MissingReferencesError(missing);
  if (hyps.size === 0) throw new Error('scoreCaptions: no hypotheses to score.');
  const ids = [...hyps.keys()];
  const tokHyps = ids.map((id) => tokenizeCaption(hyps.get(id)!));
  const tokRefs = ids.map((id) => refs.get(id)!.map(tokenizeCaption));
  return scoreTokenized(tokHyps, tokRefs);
}
