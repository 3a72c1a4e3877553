/**
 * `sat score`: COCO caption metrics (BLEU-1..4, ROUGE-L, CIDEr-D, as pycocoevalcap computes them) of
 * hypothesis captions against reference captions, both read from JSON files.
 */
import { readHypotheses, readReferences } from '../metrics/caption-files.js';
import { MissingReferencesError, SCORE_NAMES, scoreCaptions } from '../metrics/score.js';
import { UserError } from '../util/errors.js';
import { requireString, type Command } from './command.js';

const command: Command = {
  name: 'score',
  summary: 'Score captions with BLEU-1..4, ROUGE-L and CIDEr (equal to pycocoevalcap)',
  usage: 'sat score --refs refs.json --hyps hyps.json [--json]',
  options: {
    refs: { type: 'string', description: 'reference captions: {"<id>": ["caption", ...]} or a COCO annotations file' },
    hyps: {
      type: 'string',
      description: 'hypotheses: {"<id>": "caption"} or a COCO results list [{"image_id", "caption"}]',
    },
    json: { type: 'boolean', description: 'print the scores as one JSON object', default: false },
  },
  async run({ values }) {
    const refsFile = requireString(
      values,
      'refs',
      'pass the reference captions file, e.g. --refs captions_val2014.json',
    );
    const hypsFile = requireString(values, 'hyps', 'pass the generated captions file, e.g. --hyps results.json');
    const refs = readReferences(refsFile);
    const hyps = readHypotheses(hypsFile);
    if (hyps.size === 0) throw new UserError(`${hypsFile} holds no hypotheses to score.`);
    let scores;
    try {
      scores = scoreCaptions(refs, hyps);
    } catch (e) {
      if (e instanceof MissingReferencesError) {
        throw new UserError(
          `${e.message}. Every image id in ${hypsFile} needs reference captions in ${refsFile}; check that both files use the same ids.`,
        );
      }
      throw e;
    }
    if (values.json) {
      console.log(JSON.stringify(scores));
      return;
    }
    console.log(`Scored ${hyps.size} image(s) against ${refsFile} (PTB-tokenised, pycocoevalcap definitions)`);
    for (const name of SCORE_NAMES) console.log(`  ${name.padEnd(8)} ${scores[name].toFixed(4)}`);
    console.log('  METEOR and SPICE: not computed (they need the official Java jars)');
  },
};

export default command;
