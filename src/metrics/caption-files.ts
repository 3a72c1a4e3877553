/**
 * Reading reference and hypothesis captions for `sat score` (and anyone else who scores files).
 *
 * References, either
 *   {"<id>": ["caption", ...], ...}                                   plain map
 *   {"annotations": [{"image_id": 42, "caption": "..."}, ...], ...}   COCO annotations file
 * Hypotheses, either
 *   {"<id>": "caption", ...}                                          plain map (a one-caption list is accepted too)
 *   [{"image_id": 42, "caption": "..."}, ...]                         COCO results file
 * Ids are compared as strings, so the COCO number 42 and the key "42" are the same image.
 */
import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read ${what} file ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${what} file ${file} is not valid JSON: ${(e as Error).message}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function cocoEntry(entry: unknown, index: number, file: string): { id: string; caption: string } {
  if (
    !isObject(entry) ||
    (typeof entry.image_id !== 'number' && typeof entry.image_id !== 'string') ||
    typeof entry.caption !== 'string'
  ) {
    throw new UserError(
      `${file}: entry #${index} must look like {"image_id": 42, "caption": "a dog ..."}, got ${JSON.stringify(entry)?.slice(0, 120)}`,
    );
  }
  return { id: String(entry.image_id), caption: entry.caption };
}

/** Parse references (already-parsed JSON); `file` only names the source in errors. */
export function parseReferences(json: unknown, file = 'references'): Map<string, string[]> {
  const refs = new Map<string, string[]>();
  if (isObject(json) && Array.isArray(json.annotations)) {
    json.annotations.forEach((a, i) => {
      const { id, caption } = cocoEntry(a, i, file);
      const list = refs.get(id) ?? [];
      list.push(caption);
      refs.set(id, list);
    });
    return refs;
  }
  if (!isObject(json)) {
    throw new UserError(
      `${file}: references must be {"<id>": ["caption", ...]} or a COCO annotations file {"annotations": [{"image_id", "caption"}]}.`,
    );
  }
  for (const [id, v] of Object.entries(json)) {
    const list = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(list) || !list.every((c) => typeof c === 'string')) {
      throw new UserError(
        `${file}: references of id "${id}" must be a list of caption strings, got ${JSON.stringify(v)?.slice(0, 120)}`,
      );
    }
    refs.set(id, list as string[]);
  }
  return refs;
}

/** Parse hypotheses (already-parsed JSON): one caption per id. */
export function parseHypotheses(json: unknown, file = 'hypotheses'): Map<string, string> {
  const hyps = new Map<string, string>();
  const add = (id: string, caption: string) => {
    if (hyps.has(id))
      throw new UserError(
        `${file}: image id "${id}" has more than one hypothesis; the COCO scorer needs exactly one per image.`,
      );
    hyps.set(id, caption);
  };
  if (Array.isArray(json)) {
    json.forEach((entry, i) => {
      const { id, caption } = cocoEntry(entry, i, file);
      add(id, caption);
    });
    return hyps;
  }
  if (!isObject(json)) {
    throw new UserError(
      `${file}: hypotheses must be {"<id>": "caption"} or a COCO results list [{"image_id", "caption"}].`,
    );
  }
  for (const [id, v] of Object.entries(json)) {
    const caption = Array.isArray(v) && v.length === 1 ? v[0] : v;
    if (typeof caption !== 'string') {
      throw new UserError(
        `${file}: the hypothesis of id "${id}" must be one caption string, got ${JSON.stringify(v)?.slice(0, 120)}`,
      );
    }
    add(id, caption);
  }
  return hyps;
}

export const readReferences = (file: string) => parseReferences(readJson(file, 'references'), file);
export const readHypotheses = (file: string) => parseHypotheses(readJson(file, 'hypotheses'), file);
