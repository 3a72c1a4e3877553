/**
 * The model shipped in the package and used when none is named: a bundle folder at models/<DEFAULT_MODEL_NAME>/
 * in the package root. Pure (no Node built-ins): the browser entry names it too.
 */
export const DEFAULT_MODEL_NAME = 'flickr8k-mobilenet-v2';
