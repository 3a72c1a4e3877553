/**
 * PTB tokenisation of captions, as pycocoevalcap's PTBTokenizer does it.
 *
 * The official scorer pipes every caption through Stanford CoreNLP 3.4.1's PTBTokenizer
 * (`-preserveLines -lowerCase`, i.e. all PTB3 normalisations on) and then drops the tokens in
 * `PUNCTUATIONS`. We have no JVM jar offline, so this file re-implements the lexer rules of
 * edu/stanford/nlp/process/PTBLexer.flex that can occur in captions, with the lexer's own semantics:
 * at each position every rule is tried, the longest match wins (a rule's trailing context `r1/r2`
 * counts towards its length but is not consumed), and ties go to the rule listed first. Literal
 * strings in the .flex file are case-insensitive (%caseless), character classes are not; the regexes
 * below spell that out. Lowercasing happens AFTER tokenisation, exactly like PTBTokenizer's
 * `-lowerCase`, which has a visible consequence: "(" becomes "-LRB-" and then "-lrb-", which is not in
 * PUNCTUATIONS (the list is upper case), so brackets survive as "-lrb-"/"-rrb-" tokens in the official
 * scores, and so they do here.
 *
 * Where this may differ from the real jar (rare in ordinary caption text; not checkable here without it):
 * - Rules not reproduced: phone numbers, "likely URLs" without a scheme, SGML entities other than
 *   &amp; &quot; &apos; &lt; &gt;, accented-letter entities, acronyms followed by a sentence-initial
 *   word (only adds a "." token, which is dropped anyway), and the sentence-end lookahead of
 *   abbreviations (same: only an extra "." token).
 * - Newline-like characters other than "\n" (\r, U+2028/9, \v, \f, U+0085) make the real tokenizer emit
 *   a line break, which misaligns every later caption in pycocoevalcap; we treat them as spaces.
 * - Letters outside the Basic Multilingual Plane are letters here; the JFlex lexer of that time saw UTF-16 halves
 *   and deleted them.
 * - CoreNLP 3.4.1 may differ from the older PTBLexer.flex we followed in abbreviation lists, in
 *   escaping "/" and "*" ("and/or" -> "and\/or"; we escape, as ptb3Escaping does there) and in
 *   writing "[" "]" as -LRB- -RRB- (later versions write -LSB- -RSB-; both survive the filter).
 * - Americanize is applied as in that lexer: to purely alphabetic tokens, case-sensitively, with its
 *   word list and its "-our" -> "-or" rule (so "colour" -> "color" but also "downpour" -> "downpor").
 */
import { americanize } from './americanize.js';

/** Tokens pycocoevalcap removes after tokenising (ptbtokenizer.py PUNCTUATIONS, compared case-sensitively). */
export const PTB_PUNCTUATIONS: ReadonlySet<string> = new Set([
  "''",
  "'",
  '``',
  '`',
  '-LRB-',
  '-RRB-',
  '-LCB-',
  '-RCB-',
  '.',
  '?',
  '!',
  ',',
  ':',
  '-',
  '--',
  '...',
  ';',
]);

// ---- Macros of PTBLexer.flex, as regex source ----
const LETTER = '\\p{L}';
const DIGIT = '\\p{Nd}';
const APOS = "(?:['\\u0092\\u2019]|&apos;)";
const APOSETC = `(?:${APOS}|[\\u0091\\u2018\\u201B])`;
const WORD = `[\\p{L}\\p{M}\\u00AD]+`;
const REDAUX = `${APOS}(?:[msdMSD]|[rR][eE]|[vV][eE]|[lL][lL])`;
const SWORD = '[A-Za-z\\u00AD]*[A-MO-Za-mo-z]\\u00AD*';
const SREDAUX = `[nN]${APOSETC}[tT]`;
const SPACE = '[ \\t\\u00A0\\u2000-\\u200A\\u3000]';
const NEWLINE = '(?:\\r|\\r?\\n|\\u2028|\\u2029|\\u000B|\\u000C|\\u0085)';
const SPACENL = `(?:${SPACE}|${NEWLINE})`;
const ACRO = '(?:[A-Za-z](?:\\.[A-Za-z])+)';
const HYPHEN = '[\\-_\\u058A\\u2010\\u2011]';
const THING_PART = `(?:[dDoOlL]${APOSETC}(?:${LETTER}|${DIGIT}))?(?:${LETTER}|${DIGIT})+`;
const THING = `${THING_PART}(?:${HYPHEN}${THING_PART})*`;
const HTHING = `[A-Za-z0-9][A-Za-z0-9.,\\u00AD]*(?:-(?:${ACRO}\\.|[A-Za-z0-9\\u00AD]+))+`;
const THINGA = '[A-Z]+(?:(?:[+&]|&[aA][mM][pP];)[A-Z]+)+';
const INSENTP = '[,;:]';
const ci = (s: string) => s.replace(/[a-z]/gi, (c) => `[${c.toLowerCase()}${c.toUpperCase()}]`);
// Abbreviation lists (literals, hence caseless; names in [brackets] in the .flex are case-sensitive).
const ABMONTH = ci('Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec');
const ABDAYS = ci('Mon|Tue|Tues|Wed|Thu|Thurs|Fri');
const ABSTATE = `${ci('Ala|Ariz')}|A${ci('rk')}|${ci('Calif|Colo|Conn|Dak|Del|Fla|Ga')}|I${ci('ll')}|${ci('Ind|Kans?|Ky|La')}|M${ci('ass')}|${ci('Md|Mich|Minn')}|M${ci('iss')}|${ci('Mo|Mont|Neb|Nev|Okla')}|O${ci('re')}|${ci('Pa|Penn|Tenn|Tex|Va|Vt')}|W${ci('ash')}|${ci('Wisc?|Wyo')}`;
const ABCOMP = ci('Inc|Cos?|Corp|Pp?tys?|Ltd|Plc|Bancorp|Dept|Bhd|Assn|Univ|Intl|Sys');
const ABNUM = ci('Nos?|Prop|Ph|tel|est|ext|sq|ft');
const ABPTIT = `${ci('Jr|Sr|Bros')}|(?:${ci('Ed|Ph')})\\.${ci('D')}|${ci('Blvd|Rd|Esq')}`;
// ABPTIT before ABNUM so "Ph.D." wins over "Ph." (each alternative ends in "\.", so this is the only overlap).
const ABBREV1 = `(?:${ABPTIT}|${ABMONTH}|${ABDAYS}|${ABSTATE}|${ABCOMP}|${ABNUM}|${ci('etc|al|seq')})\\.`;
const ABTITLE = `${ci('Mr|Mrs|Ms')}|M${ci('iss')}|${ci('Drs?|Profs?|Sens?|Reps?|Attys?|Lt|Col|Gen|Messrs|Govs?|Adm|Rev|Maj|Sgt|Cpl|Pvt|Mt|Capt|Ste?|Ave|Pres|Lieut|Hon|Brig|Co?mdr|Pfc|Spc|Supts?|Det')}`;
const ABBREV4 = [
  '[A-Za-z]',
  ABTITLE,
  ci('vs|Alex|Wm|Jos|Cie'),
  `${ci('a')}\\.${ci('k')}\\.${ci('a')}`,
  ci('cf|TREAS'),
  ACRO,
  ci('Invt|Elec|Natl'),
  `${ci('M')}[ft]${ci('g')}`,
];
// flex takes the longest alternative; JS regexes take the first, so alternatives stay separate.
const APOWORD = [
  `${APOS}${ci('n')}${APOS}?`,
  `[lLdDjJ]${APOS}`,
  `${ci('Dunkin')}${APOS}`,
  `${ci('somethin')}${APOS}`,
  `${ci('ol')}${APOS}`,
  `${APOS}${ci('em')}`,
  `[A-HJ-XZn]${APOSETC}${LETTER}{2}${LETTER}*`,
  `${APOS}[2-9]0${ci('s')}`,
  `${APOS}${ci('till?')}`,
  `${LETTER}${LETTER}*[aeiouyAEIOUY]${APOSETC}[aeiouA-Z]${LETTER}*`,
  `${APOS}${ci('cause')}`,
  `${ci("cont'd")}\\.?`,
  ci("'twas|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l"),
];
const QUOTES = [
  APOS,
  "''",
  `[\`\\u2018\\u2019\\u201A\\u201B\\u201C\\u201D\\u0091\\u0092\\u0093\\u0094\\u201E\\u201F\\u2039\\u203A\\u00AB\\u00BB]{1,2}`,
];
const MISCSYMBOL =
  '[\\u00A6\\u00A7\\u00A8\\u00A9\\u00AC\\u00AE\\u00AF\\u00B0-\\u00BA\\u00D7\\u00F7\\u0387\\u05BE\\u05C0\\u05C3\\u05C6\\u05F3\\u05F4\\u0600-\\u0603\\u0606-\\u060A\\u060C\\u0614\\u061B\\u061E\\u066A\\u066D\\u0703-\\u070D\\u07F6-\\u07F8\\u0964\\u0965\\u0E4F\\u2020-\\u2023\\u2032-\\u2038\\u2044\\u207A-\\u207F\\u208A-\\u208E\\u2100-\\u214F\\u2190-\\u21FF\\u2200-\\u22FF\\u2300-\\u23FF\\u2600-\\u26FF\\u3012\\u30FB\\uFF01-\\uFF0F\\uFF1A-\\uFF20\\uFF3B-\\uFF40\\uFF5B-\\uFF65]';

// First characters each rule can start with (a prefilter only: see candidatesAt).
const APOS_START = "['\\u0092\\u2019&]";
const WORD_START = '[\\p{L}\\p{M}\\u00AD]';
const APOWORD_START = "[\\p{L}'\\u0092\\u2019&]";
const QUOTES_START =
  "['&`\\u2018\\u2019\\u201A\\u201B\\u201C\\u201D\\u0091\\u0092\\u0093\\u0094\\u201E\\u201F\\u2039\\u203A\\u00AB\\u00BB]";
const WS_START =
  '[\\0 \\t\\u00A0\\u2000-\\u200A\\u3000\\r\\n\\u2028\\u2029\\u000B\\u000C\\u0085\\u200B\\u200E\\u200F\\uFEFF]';

// ---- Token normalisations (PTBLexer's helper methods) ----
const removeSoftHyphens = (s: string) => s.replace(/\u00AD/g, '');
/** Backslash-escape every `c` not already escaped (PTBLexer.delimit). */
function delimit(s: string, c: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === c && (i === 0 || s[i - 1] !== '\\')) out += '\\';
    out += s[i];
  }
  return out;
}
function latexQuotes(s: string, probablyLeft: boolean): string {
  let t = probablyLeft
    ? s.replace(/&apos;|'/g, '`').replace(/"|&quot;/g, '``')
    : s.replace(/&apos;|'/g, "'").replace(/"|&quot;/g, "''");
  t = t.replace(/[\u0091\u2018\u201B\u2039]/g, '`').replace(/[\u0092\u2019\u203A]/g, "'");
  return t.replace(/[\u0093\u201C\u00AB]/g, '``').replace(/[\u0094\u201D\u00BB]/g, "''");
}
function normalizeCurrency(s: string): string {
  return s
    .replace(/\u00A2/g, 'cents')
    .replace(/\u00A3/g, '#')
    .replace(/[\u0080\u00A4\u20A0\u20AC]/g, '$');
}
const FRACTIONS: Record<string, string> = {
  '\u00BC': '1\\/4',
  '\u00BD': '1\\/2',
  '\u00BE': '3\\/4',
  '\u2153': '1\\/3',
};
const normalizeAmp = (s: string) => s.replace(/&amp;/gi, '&');

/**
 * One lexer rule: `match` is consumed, `context` (trailing context, flex's r1/r2) only lengthens the
 * match for the longest-match comparison. `emit` maps the consumed text to the token (null: no token).
 */
interface Rule {
  /** Regex character class of the characters a match can start with. */
  first: string;
  match: string | string[];
  context?: string;
  emit: (text: string) => string | null;
  /** Characters to consume when fewer than the match (flex's yypushback). */
  consume?: (text: string) => number;
}
const same = (t: string) => t;
const drop = () => null;

// In the order of PTBLexer.flex: on equal length the earlier rule wins.
const RULES: Rule[] = [
  { first: '[cC]', match: ci('cannot'), emit: (t) => t.slice(0, 3), consume: () => 3 },
  { first: '<', match: '<\\/?[A-Za-z!][^>]*>', emit: same },
  {
    first: '[&\\u0096\\u0097\\u2013\\u2014\\u2015]',
    match: `&(?:${ci('MD|mdash|ndash')});|[\\u0096\\u0097\\u2013\\u2014\\u2015]`,
    emit: () => '--',
  },
  { first: '&', match: '&[aA][mM][pP];', emit: normalizeAmp },
  { first: WORD_START, match: WORD, context: REDAUX, emit: (t) => americanize(removeSoftHyphens(t)) },
  { first: '[A-Za-z\\u00AD]', match: SWORD, context: SREDAUX, emit: removeSoftHyphens },
  { first: WORD_START, match: WORD, emit: (t) => americanize(removeSoftHyphens(t)) },
  { first: APOWORD_START, match: APOWORD, emit: same },
  { first: '[yY]', match: `[yY]${APOS}`, context: LETTER, emit: same },
  {
    first: '[hH]',
    match: `${ci('http')}[sS]?:\\/\\/[^ \\t\\n\\f\\r"<>|()]+[^ \\t\\n\\f\\r"<>|.!?(){},\\-]`,
    emit: (t) => delimit(delimit(t, '/'), '*'),
  },
  {
    first: '[a-zA-Z0-9]',
    match: '[a-zA-Z0-9][^ \\t\\n\\f\\r"<>|()\\u00A0]*@(?:[^ \\t\\n\\f\\r"<>|().\\u00A0]+\\.)+[a-zA-Z]{2,4}',
    emit: same,
  },
  { first: APOS_START, match: REDAUX, context: '[^A-Za-z]', emit: (t) => latexQuotes(t, false) },
  { first: '[nN]', match: SREDAUX, emit: (t) => latexQuotes(t, false) },
  { first: '\\p{Nd}', match: `${DIGIT}{1,2}[\\-\\/]${DIGIT}{1,2}[\\-\\/]${DIGIT}{2,4}`, emit: (t) => delimit(t, '/') },
  {
    first: '[\\-+.:,\\u00AD\\u066B\\u066C\\p{Nd}]',
    match: [`[\\-+]?${DIGIT}+`, `[\\-+]?${DIGIT}*(?:[.:,\\u00AD\\u066B\\u066C]${DIGIT}+)+`],
    emit: removeSoftHyphens,
  },
  {
    first: '[\\u207A\\u207B\\u208A\\u208B\\u2070\\u00B9\\u00B2\\u00B3\\u2074-\\u2079\\u2080-\\u2089]',
    match: '[\\u207A\\u207B\\u208A\\u208B]?(?:[\\u2070\\u00B9\\u00B2\\u00B3\\u2074-\\u2079]+|[\\u2080-\\u2089]+)',
    emit: same,
  },
  {
    first: '\\p{Nd}',
    match: `(?:${DIGIT}{1,4}[\\- \\u00A0])?${DIGIT}{1,4}(?:\\\\?\\/|\\u2044)${DIGIT}{1,4}`,
    emit: (t) => delimit(t, '/').replace(/ /g, '\u00A0'),
  },
  {
    first: '[\\u00BC\\u00BD\\u00BE\\u2153-\\u215E]',
    match: '[\\u00BC\\u00BD\\u00BE\\u2153-\\u215E]',
    emit: (t) => FRACTIONS[t] ?? t,
  },
  {
    first: '[\\-cCpPaAsS]',
    match: `-(?:${ci('RRB|LRB|RCB|LCB|RSB|LSB')})-|${ci('C')}\\.${ci('D')}\\.${ci('s')}|${ci('pro-|anti-')}|${ci('S')}(?:&|&amp;)${ci('P')}-500|${ci('S')}(?:&|&amp;)${ci('Ls')}|${ci('Cap')}${APOS}${ci('n')}|${ci('c')}${APOS}${ci('est')}`,
    emit: normalizeAmp,
  },
  {
    first: '[A-Za-z0-9]',
    match: '[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\\\?\\/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}',
    emit: (t) => delimit(t, '/'),
  },
  { first: '[A-Z$#]', match: '[A-Z]*\\$|#', emit: same },
  {
    first: '[\\u00A2\\u00A3\\u00A4\\u00A5\\u0080\\u20A0\\u20AC\\u060B\\u0E3F\\u20A4\\uFFE0\\uFFE1\\uFFE5\\uFFE6]',
    match: '[\\u00A2\\u00A3\\u00A4\\u00A5\\u0080\\u20A0\\u20AC\\u060B\\u0E3F\\u20A4\\uFFE0\\uFFE1\\uFFE5\\uFFE6]',
    emit: normalizeCurrency,
  },
  { first: '[A-Za-z]', match: ABBREV1, emit: same },
  { first: '[A-Za-z]', match: ABBREV4.map((a) => `(?:${a})\\.`), emit: same },
  { first: '[A-Za-z]', match: ABBREV4, context: SPACE, emit: same },
  { first: '[A-Za-z]', match: ACRO, context: SPACENL, emit: same },
  { first: APOS_START, match: `${APOS}[0-9][0-9]`, context: SPACENL, emit: same },
  { first: WORD_START, match: `${WORD}\\.`, context: INSENTP, emit: removeSoftHyphens },
  { first: '["&]', match: '"|&[qQ][uU][oO][tT];', context: '[A-Za-z0-9$]', emit: (t) => latexQuotes(t, true) },
  { first: '["&]', match: '"|&[qQ][uU][oO][tT];', emit: (t) => latexQuotes(t, false) },
  { first: '\\+', match: '\\+', emit: same },
  { first: '[%&\\u2030\\u2031]', match: '[%&\\u2030\\u2031]', emit: same },
  { first: '[~^]', match: '~|\\^', emit: same },
  { first: '[|\\\\0]', match: '\\||\\\\|0[xX]7[fF]', emit: drop },
  { first: '[<\\[&]', match: '[<\\[]|&[lL][tT];', emit: () => '-LRB-' },
  { first: '[>\\]&]', match: '[>\\]]|&[gG][tT];', emit: () => '-RRB-' },
  { first: '\\{', match: '\\{', emit: () => '-LCB-' },
  { first: '\\}', match: '\\}', emit: () => '-RCB-' },
  { first: '\\(', match: '\\(', emit: () => '-LRB-' },
  { first: '\\)', match: '\\)', emit: () => '-RRB-' },
  { first: '-', match: '-+', emit: (t) => (t.length >= 3 && t.length <= 4 ? '--' : t) },
  { first: '[.\\u0085\\u2026]', match: '\\.{3,5}|(?:\\.[ \\u00A0]){2,4}\\.|[\\u0085\\u2026]', emit: () => '...' },
  { first: '[@#_]', match: '@+|#+|_+', emit: same },
  { first: '[*\\\\]', match: '\\*+|(?:\\\\\\*){1,3}', emit: (t) => delimit(t, '*') },
  { first: '[,;:]', match: INSENTP, emit: same },
  { first: '[?!]', match: '[?!]+', emit: same },
  {
    first: '[.\\u00A1\\u00BF\\u037E\\u0589\\u061F\\u06D4\\u0700-\\u0702\\u07FA]',
    match: '[.\\u00A1\\u00BF\\u037E\\u0589\\u061F\\u06D4\\u0700-\\u0702\\u07FA]',
    emit: same,
  },
  { first: '=', match: '=', emit: same },
  { first: '\\/', match: '\\/', emit: (t) => delimit(t, '/') },
  { first: '[A-Za-z0-9]', match: `${HTHING}\\.`, context: INSENTP, emit: removeSoftHyphens },
  { first: '[A-Za-z0-9]', match: HTHING, emit: removeSoftHyphens },
  { first: '[\\p{L}\\p{Nd}]', match: `${THING}\\.`, context: INSENTP, emit: same },
  { first: '[\\p{L}\\p{Nd}]', match: THING, emit: same },
  { first: '[A-Z]', match: `${THINGA}\\.`, context: INSENTP, emit: normalizeAmp },
  { first: '[A-Z]', match: THINGA, emit: normalizeAmp },
  { first: "'", match: "'", context: '[A-Za-z][^ \\t\\n\\r\\u00A0]', emit: (t) => latexQuotes(t, true) },
  { first: APOS_START, match: REDAUX, emit: (t) => latexQuotes(t, false) },
  { first: QUOTES_START, match: QUOTES, emit: (t) => latexQuotes(t, false) },
  { first: MISCSYMBOL, match: MISCSYMBOL, emit: same },
  // Whitespace (newlines too: pycocoevalcap puts one caption per line; see the file comment).
  { first: WS_START, match: `(?:\\0|${SPACE}|${NEWLINE}|[\\u200B\\u200E\\u200F\\uFEFF])+`, emit: drop },
];

// Compiled once, one sticky regex per alternative: group 1 is what the rule consumes, group 2 its
// trailing context.
interface Compiled {
  rule: Rule;
  first: RegExp;
  re: RegExp;
}
const COMPILED: Compiled[] = RULES.flatMap((rule) =>
  (Array.isArray(rule.match) ? rule.match : [rule.match]).map((alt) => ({
    rule,
    first: new RegExp(`^${rule.first}`, 'u'),
    re: new RegExp(`(${alt})${rule.context ? `(${rule.context})` : '()'}`, 'uy'),
  })),
);

// Trying ~70 regexes at every position is slow (about 0.5 ms a caption); most rules cannot start
// with a given character, so the candidates are filtered by first character, cached per character.
// The test suite checks that filtering never changes the result (tokenize with exhaustive = true).
const candidateCache = new Map<string, Compiled[]>();
function candidatesAt(text: string, pos: number): Compiled[] {
  const ch = String.fromCodePoint(text.codePointAt(pos)!);
  let list = candidateCache.get(ch);
  if (!list) {
    list = COMPILED.filter((c) => c.first.test(ch));
    candidateCache.set(ch, list);
  }
  return list;
}

/**
 * Tokenise one caption like Stanford's PTBTokenizer with -lowerCase, before punctuation removal.
 * Characters no rule matches are deleted, as the lexer's default `untokenizable=firstDelete` does.
 * `exhaustive` tries every rule at every position (slow; for testing the first-character filter).
 */
export function ptbTokens(text: string, exhaustive = false): string[] {
  const tokens: string[] = [];
  let pos = 0;
  while (pos < text.length) {
    let best: { rule: Rule; text: string; total: number } | null = null;
    for (const { rule, re } of exhaustive ? COMPILED : candidatesAt(text, pos)) {
      re.lastIndex = pos;
      const m = re.exec(text);
      if (!m) continue;
      const total = m[0].length;
      if (total > 0 && (!best || total > best.total)) best = { rule, text: m[1], total };
    }
    if (!best || best.text.length === 0) {
      // Untokenizable: skip one code point.
      pos += (text.codePointAt(pos) ?? 0) > 0xffff ? 2 : 1;
      continue;
    }
    const consumed = best.rule.consume ? best.rule.consume(best.text) : best.text.length;
    const token = best.rule.emit(best.text.slice(0, consumed));
    if (token !== null && token.length > 0) tokens.push(token.toLowerCase());
    pos += consumed;
  }
  return tokens;
}

/**
 * What pycocoevalcap scores for one caption: PTB tokens, lowercased, punctuation tokens removed,
 * joined by single spaces. ("\n" inside a caption is a space, as ptbtokenizer.py replaces it.)
 */
export function tokenizeCaption(caption: string): string {
  return ptbTokens(caption.replace(/\n/g, ' '))
    .filter((t) => !PTB_PUNCTUATIONS.has(t))
    .join(' ');
}
