/**
 * How many tokens decoding generates per caption by default, <end> included: the vocabulary's longest
 * sequence minus <start> (the tutorial's max_length). Every decoder (sat caption, eval, validation, demo, bundles
 * in Node and in browsers) uses it. Pure: no Node built-ins (src/vocab/vocabulary.ts reads files).
 */
export const defaultMaxLength = (vocab: { readonly maxLength: number }): number => Math.max(1, vocab.maxLength - 1);
