/**
 * The caption vocabulary, with the semantics of the TF tutorial (TensorFlow's "Image captioning with visual
 * attention" tutorial, which uses `tf.keras.preprocessing.text.Tokenizer`):
 *
 *   tokenizer = Tokenizer(num_words=top_k, oov_token="<unk>",
 *                         filters='!"#$%&()*+.,-/:;=?@[\]^_`{|}~ ')
 *   tokenizer.fit_on_texts(train_captions)      # each caption is "<start> ... <end>"
 *   tokenizer.word_index['<pad>'] = 0
 *
 * What that means, and what this file reproduces:
 *  - text is lowercased, every filter character becomes a space, and the text is split on whitespace.
 *    '<' and '>' are NOT filters, so "<start>"/"<end>" survive as tokens; apostrophes stay ("man's").
 *  - words are counted on TRAIN captions only, "<start>" and "<end>" included (once per caption).
 *  - ids: 0 = <pad>, 1 = <unk>, then words by count descending, ties broken by first occurrence
 *    (Keras sorts a first-occurrence-ordered dict with a stable sort).
 *  - only ids < top_k are kept (Keras `num_words`); every other word encodes as <unk>.
 *
 * So the vocabulary size V (the number of rows of the embedding and of the output softmax) is
 *
 *     V = min(top_k, 2 + D)
 *
 * where D is the number of distinct train tokens, <start> and <end> included. V counts <pad>, <unk>,
 * <start> and <end>; with the default top_k = 5000 that is 4996 ordinary words + 4 special tokens.
 * (The tutorial sizes its layers `top_k + 1`, one row that no id ever uses; we use exactly V.)
 *
 * One deliberate difference: Keras splits on ' ' only, we split on any whitespace (tabs, newlines),
 * which only matters for captions containing tabs.
 */
import fs from 'node:fs';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';

export { defaultMaxLength } from './max-length.js';

export const PAD = '<pad>';
export const UNK = '<unk>';
export const START = '<start>';
export const END = '<end>';

/** The tutorial's filter list: Keras' default minus '<', '>' (and minus tab/newline), plus space. */
export const KERAS_TUTORIAL_FILTERS = '!"#$%&()*+.,-/:;=?@[\\]^_`{|}~';

export interface VocabularyOptions {
  /** Keep ids < topK (Keras num_words). Must be >= 4 so <pad>, <unk>, <start>, <end> can all fit. */
  topK?: number;
  /**
   * Longest token sequence, <start> and <end> included. Longer captions are cut to
   * <start> w1 .. w(maxLength-2) <end>. Default: the longest train caption (the tutorial's max_length).
   */
  maxLength?: number;
}

export interface VocabularyJson {
  format: 'sat-vocab';
  version: 1;
  topK: number;
  maxLength: number;
  filters: string;
  lower: true;
  /** id -> word, for ids 0..V-1. */
  words: string[];
  /** Train count of each kept word (0 for <pad>/<unk>), same order as `words`. */
  counts: number[];
  /** Number of distinct train tokens before the topK cut (D above). */
  distinctTrainTokens: number;
}

const FILTER_RE = new RegExp(`[${KERAS_TUTORIAL_FILTERS.replace(/[\\\]^-]/g, '\\$&')}]`, 'g');

/** Lowercase, replace filter characters by spaces, split on whitespace. Does not add <start>/<end>. */
export function tokenize(text: string): string[] {
  return text
    .toLowerCase()
    .replace(FILTER_RE, ' ')
    .split(/\s+/)
    .filter((w) => w.length > 0);
}

export class Vocabulary {
  readonly words: readonly string[];
  readonly counts: readonly number[];
  readonly topK: number;
  readonly maxLength: number;
  readonly distinctTrainTokens: number;
  readonly padId = 0;
  readonly unkId = 1;
  readonly startId: number;
  readonly endId: number;
  private readonly index: Map<string, number>;

  private constructor(json: VocabularyJson) {
    this.words = json.words;
    this.counts = json.counts;
    this.topK = json.topK;
    this.maxLength = json.maxLength;
    this.distinctTrainTokens = json.distinctTrainTokens;
    this.index = new Map(json.words.map((w, i) => [w, i]));
    const need = (w: string) => {
      const id = this.index.get(w);
      if (id === undefined)
        throw new UserError(`vocabulary has no "${w}" token; rebuild it with \`sat prepare\` (a larger --top-k).`);
      return id;
    };
    if (need(PAD) !== 0 || need(UNK) !== 1)
      throw new UserError('vocabulary must have <pad> = 0 and <unk> = 1; rebuild it with `sat prepare`.');
    this.startId = need(START);
    this.endId = need(END);
  }

  /** V: rows of the embedding / softmax, specials included. */
  get size(): number {
    return this.words.length;
  }

  /** Build from the TRAIN captions (raw text; <start>/<end> are added here). */
  static build(trainCaptions: readonly string[], opts: VocabularyOptions = {}): Vocabulary {
    const topK = opts.topK ?? 5000;
    if (!Number.isInteger(topK) || topK < 4)
      throw new UserError(`--top-k must be an integer >= 4 (room for <pad>, <unk>, <start>, <end>), got ${topK}.`);
    if (trainCaptions.length === 0)
      throw new UserError(
        'cannot build a vocabulary: the train split has no captions. Check the dataset root and split lists.',
      );
    // Map preserves insertion order = first occurrence, as Keras' OrderedDict.
    const counts = new Map<string, number>();
    let longest = 0;
    for (const caption of trainCaptions) {
      const toks = [START, ...tokenize(caption), END];
      longest = Math.max(longest, toks.length);
      for (const t of toks) counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    counts.delete(PAD);
    counts.delete(UNK); // a literal "<unk>" in a caption maps onto the unknown id anyway
    // Array.prototype.sort is stable (ES2019), so equal counts keep first-occurrence order.
    const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1]);
    const kept = ranked.slice(0, topK - 2);
    if (!kept.some(([w]) => w === START) || !kept.some(([w]) => w === END)) {
      throw new UserError(
        `--top-k ${topK} is too small: <start>/<end> fell outside the ${topK - 2} most frequent tokens. Use a larger --top-k.`,
      );
    }
    const maxLength = opts.maxLength ?? longest;
    if (!Number.isInteger(maxLength) || maxLength < 2)
      throw new UserError(`--max-length must be an integer >= 2 (room for <start> and <end>), got ${maxLength}.`);
    return new Vocabulary({
      format: 'sat-vocab',
      version: 1,
      topK,
      maxLength,
      filters: KERAS_TUTORIAL_FILTERS,
      lower: true,
      words: [PAD, UNK, ...kept.map(([w]) => w)],
      counts: [0, 0, ...kept.map(([, c]) => c)],
      distinctTrainTokens: counts.size,
    });
  }

  static fromJSON(json: VocabularyJson): Vocabulary {
    if (json?.format !== 'sat-vocab' || !Array.isArray(json.words))
      throw new UserError('not a sat vocabulary file (expected format "sat-vocab"); rebuild it with `sat prepare`.');
    return new Vocabulary(json);
  }

  static load(file: string): Vocabulary {
    let json: VocabularyJson;
    try {
      json = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new UserError(`cannot read vocabulary ${file}: ${(e as Error).message}. Run \`sat prepare\` to create it.`);
    }
    return Vocabulary.fromJSON(json);
  }

  toJSON(): VocabularyJson {
    return {
      format: 'sat-vocab',
      version: 1,
      topK: this.topK,
      maxLength: this.maxLength,
      filters: KERAS_TUTORIAL_FILTERS,
      lower: true,
      words: [...this.words],
      counts: [...this.counts],
      distinctTrainTokens: this.distinctTrainTokens,
    };
  }

  /** Writes the vocabulary to `file` atomically (src/util/atomic-write.ts). */
  save(file: string): void {
    writeFileAtomic(file, JSON.stringify(this.toJSON()) + '\n', 'the vocabulary');
  }

  /** Id of one token (already tokenised); unknown words give <unk>. */
  id(word: string): number {
    return this.index.get(word) ?? this.unkId;
  }

  /** Caption -> [<start>, w1, ..., <end>], at most maxLength ids (the last one is always <end>). */
  encode(caption: string): number[] {
    const words = tokenize(caption).slice(0, this.maxLength - 2);
    return [this.startId, ...words.map((w) => this.id(w)), this.endId];
  }

  /** Ids -> words, dropping <start>/<pad> and stopping at the first <end>. */
  decodeTokens(ids: readonly number[]): string[] {
    const out: string[] = [];
    for (const id of ids) {
      if (id === this.endId) break;
      if (id === this.startId || id === this.padId) continue;
      out.push(this.words[id] ?? UNK);
    }
    return out;
  }

  decode(ids: readonly number[]): string {
    return this.decodeTokens(ids).join(' ');
  }
}
