/**
 * British -> American spelling, as Stanford's `Americanize` does it for the PTB tokenizer.
 *
 * The tokenizer that pycocoevalcap runs (Stanford CoreNLP 3.4.1 PTBTokenizer) has `americanize=true`
 * by default, and applies it to every purely alphabetic token before lowercasing. For captions this
 * matters: "a grey cat" is scored as "a gray cat". The word list and the five patterns below are the
 * ones in edu.stanford.nlp.process.Americanize; like the original they are case-sensitive (so "Grey"
 * stays "Grey" and is lowercased to "grey" afterwards).
 */

const CONVERSIONS: Record<string, string> = {
  anaesthetic: 'anesthetic', analogue: 'analog', analogues: 'analogs', analyse: 'analyze', analysed: 'analyzed',
  analysing: 'analyzing', armoured: 'armored', cancelled: 'canceled', cancelling: 'canceling', candour: 'candor',
  capitalise: 'capitalize', capitalised: 'capitalized', capitalisation: 'capitalization', centre: 'center',
  chimaeric: 'chimeric', clamour: 'clamor', coloured: 'colored', colouring: 'coloring', defence: 'defense',
  detour: 'detour', discolour: 'discolor', discolours: 'discolors', discoloured: 'discolored',
  discolouring: 'discoloring', encyclopaedia: 'encyclopedia', endeavour: 'endeavor', endeavours: 'endeavors',
  endeavoured: 'endeavored', endeavouring: 'endeavoring', fervour: 'fervor', favour: 'favor', favours: 'favors',
  favoured: 'favored', favouring: 'favoring', favourite: 'favorite', favourites: 'favorites', fibre: 'fiber',
  fibres: 'fibers', finalise: 'finalize', finalised: 'finalized', finalising: 'finalizing', flavour: 'flavor',
  flavours: 'flavors', flavoured: 'flavored', flavouring: 'flavoring', glamour: 'glamour', grey: 'gray',
  harbour: 'harbor', harbours: 'harbors', homologue: 'homolog', homologues: 'homologs', honour: 'honor',
  honours: 'honors', honoured: 'honored', honouring: 'honoring', honourable: 'honorable', humour: 'humor',
  humours: 'humors', humoured: 'humored', humouring: 'humoring', kerb: 'curb', labelled: 'labeled',
  labelling: 'labeling', labour: 'labor', labours: 'labors', laboured: 'labored', labouring: 'laboring',
  leant: 'leaned', learnt: 'learned', localise: 'localize', localised: 'localized', manoeuvre: 'maneuver',
  manoeuvres: 'maneuvers', maximise: 'maximize', maximised: 'maximized', maximising: 'maximizing',
  meagre: 'meager', minimise: 'minimize', minimised: 'minimized', minimising: 'minimizing',
  modernise: 'modernize', modernised: 'modernized', modernising: 'modernizing', misdemeanour: 'misdemeanor',
  misdemeanours: 'misdemeanors', neighbour: 'neighbor', neighbours: 'neighbors', neighbourhood: 'neighborhood',
  neighbourhoods: 'neighborhoods', oestrogen: 'estrogen', oestrogens: 'estrogens', organisation: 'organization',
  organisations: 'organizations', penalise: 'penalize', penalised: 'penalized', popularise: 'popularize',
  popularised: 'popularized', popularises: 'popularizes', popularising: 'popularizing', practise: 'practice',
  practised: 'practiced', pressurise: 'pressurize', pressurised: 'pressurized', pressurises: 'pressurizes',
  pressurising: 'pressurizing', realise: 'realize', realised: 'realized', realising: 'realizing',
  realises: 'realizes', recognise: 'recognize', recognised: 'recognized', recognising: 'recognizing',
  recognises: 'recognizes', rumoured: 'rumored', rumouring: 'rumoring', savour: 'savor', savours: 'savors',
  savoured: 'savored', savouring: 'savoring', splendour: 'splendor', splendours: 'splendors', theatre: 'theater',
  theatres: 'theaters', titre: 'titer', titres: 'titers', travelled: 'traveled', travelling: 'traveling',
};

// (pattern, exception, replacement); the first pattern that matches (and whose exception does not) wins.
const PATTERNS: Array<[RegExp, RegExp | null, string]> = [
  [/haem(at)?o/g, null, 'hem$1o'],
  [/aemia$/g, null, 'emia'],
  [/([lL]euk)aem/g, null, '$1em'],
  [/programme(s?)$/g, null, 'program$1'],
  [/^([a-z]{3,})our(s?)$/g, /glamour|de[tv]our/, '$1or$2'],
];

export function americanize(word: string): string {
  // Object.hasOwn: a caption word like "constructor" must not hit Object.prototype.
  if (Object.hasOwn(CONVERSIONS, word)) return CONVERSIONS[word];
  for (const [pattern, except, replacement] of PATTERNS) {
    if (except && except.test(word)) continue;
    pattern.lastIndex = 0;
    if (pattern.test(word)) {
      pattern.lastIndex = 0;
      // Java's $1 for a group that did not participate is "", like JS's replace for an unmatched group.
      return word.replace(pattern, replacement);
    }
  }
  return word;
}
