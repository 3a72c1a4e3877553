/**
 * POST /v1/captions inputs: the image bytes (raw body or the multipart field "image") and the options
 * beam, alpha, max_length and attention (query string or multipart fields), checked against the limits.
 */
import type { FastifyRequest } from 'fastify';
import { bodyTooLarge, ERRORS, refuse, type RefusalLimit } from './errors.js';

export interface CaptionOptions {
  beam: number;
  alpha: number;
  maxLength: number;
  attention: boolean;
}

export interface OptionLimits {
  maxBeam: number;
  defaultBeam: number;
  /** Longest caption the model's vocabulary allows: the default and the upper bound of max_length. */
  maxLength: number;
}

const OPTION_NAMES = ['beam', 'alpha', 'max_length', 'attention'];

const badOption = (name: string, value: string, rule: string, limit?: RefusalLimit, widen = '') =>
  refuse(ERRORS.bad_option, `${name}=${JSON.stringify(value)}: ${name} must be ${rule}`,
    { limit, fix: `send ${name} as ${rule}, or leave it out for the default${widen}.` });

function integerOption(raw: Record<string, string>, name: string, max: number, fallback: number, limit: RefusalLimit, widen = ''): number {
  const value = raw[name];
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw badOption(name, value, `an integer from 1 to ${max}`, limit, widen);
  return n;
}

/** Options from name -> value strings (query or multipart fields); unknown names are refused (typos would pass silently). */
export function parseOptions(raw: Record<string, string>, limits: OptionLimits): CaptionOptions {
  const unknown = Object.keys(raw).filter((k) => !OPTION_NAMES.includes(k));
  if (unknown.length > 0) {
    throw refuse(ERRORS.unknown_option, unknown.map((u) => JSON.stringify(u)).join(', '),
      { fix: `use only ${OPTION_NAMES.join(', ')} (query string, or multipart fields beside "image").` });
  }
  const beam = integerOption(raw, 'beam', limits.maxBeam, limits.defaultBeam, { name: '--max-beam', value: limits.maxBeam },
    '; wider beams need a server started with a larger --max-beam');
  const maxLength = integerOption(raw, 'max_length', limits.maxLength, limits.maxLength,
    { name: 'the model\'s longest caption (its vocabulary\'s max length - 1)', value: limits.maxLength });
  let alpha = 0;
  if (raw.alpha !== undefined && raw.alpha !== '') {
    alpha = Number(raw.alpha);
    if (!Number.isFinite(alpha) || alpha < 0 || alpha > 5) throw badOption('alpha', raw.alpha, 'a number from 0 to 5');
  }
  const flag = raw.attention?.toLowerCase();
  if (flag !== undefined && !['', '1', '0', 'true', 'false', 'yes', 'no'].includes(flag)) throw badOption('attention', raw.attention, 'true or false');
  return { beam, alpha: beam === 1 ? 0 : alpha, maxLength, attention: flag !== undefined && ['', '1', 'true', 'yes'].includes(flag) };
}

function queryStrings(request: FastifyRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((request.query ?? {}) as Record<string, unknown>)) {
    if (Array.isArray(v)) throw refuse(ERRORS.bad_option, `option ${k} is given ${v.length} times`, { fix: `send ${k} once.` });
    out[k] = String(v);
  }
  return out;
}

/** Image bytes and option strings of one request, from either a raw image body or a multipart form. */
export async function readCaptionRequest(request: FastifyRequest, maxBytes: number): Promise<{ image: Buffer; raw: Record<string, string> }> {
  const raw = queryStrings(request);
  if (!request.isMultipart()) {
    const body = request.body;
    if (!Buffer.isBuffer(body) || body.length === 0) {
      const empty = body === undefined || (Buffer.isBuffer(body) && body.length === 0);
      throw refuse(ERRORS.not_an_image_body, empty ? 'it is empty' : `it is of type ${request.headers['content-type']}`);
    }
    return { image: body, raw };
  }
  let image: Buffer | null = null;
  for await (const part of request.parts()) {
    if (part.type === 'file') {
      if (part.fieldname !== 'image' || image) {
        await part.toBuffer().catch(() => undefined);
        throw refuse(ERRORS.bad_form, `it has ${image ? 'a second file' : `a file field "${part.fieldname}"`}; it takes one file, in the field "image"`);
      }
      try {
        image = await part.toBuffer();
      } catch (e) {
        if ((e as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') throw bodyTooLarge(maxBytes);
        throw e;
      }
    } else {
      if (raw[part.fieldname] !== undefined) {
        throw refuse(ERRORS.bad_option, `option ${part.fieldname} is given twice`, { fix: `send ${part.fieldname} once, in the query string or in the form.` });
      }
      raw[part.fieldname] = String(part.value);
    }
  }
  if (!image || image.length === 0) {
    throw refuse(ERRORS.missing_image);
  }
  return { image, raw };
}
