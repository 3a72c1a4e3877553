/**
 * POST /v1/captions inputs: the image bytes (raw body or the multipart field "image") and the caption options
 * (query string or multipart fields). Options are the Captioner API's CaptionOptions under snake_case names
 * (max_length -> maxLength, suppress_unk -> suppressUnk, ...): whatever checkCaptionOptions knows passes through to
 * the model unchanged, checked by that one function; the service adds only its own caps (--max-beam, the model's
 * longest caption) and one option of its own, `attention` (send the attention grids with the words).
 */
import type { FastifyError, FastifyRequest } from 'fastify';
import {
  CAPTION_OPTION_LIMITS,
  checkCaptionOptions,
  DEFAULT_CONSENSUS_SAMPLES,
  DEFAULT_CONSENSUS_WEIGHT,
  type CaptionOptionName,
  type CaptionOptions,
} from '../decode/captioner-api.js';
import { ERRORS, fromFastifyError, refuse, Refusal, type RefusalLimit } from './errors.js';

/** The service's caps on top of CAPTION_OPTION_LIMITS, and its defaults. */
export interface ServiceCaps {
  maxBeam: number;
  /** Beam width of requests that name neither a beam nor sampling. */
  defaultBeam: number;
  /** Longest caption the model's vocabulary allows: the default and the upper bound of max_length. */
  maxLength: number;
  /** Whether the model has a caption memory (consensus reranking), and the caps on its two costs. */
  consensus: boolean;
  maxConsensus: number;
  maxConsensusSamples: number;
}

/** The caps of a server started with `opts` serving a model that says `info`. */
export function serviceCaps(
  opts: { maxBeam: number; defaultBeam: number; maxConsensus: number; maxConsensusSamples: number },
  info: { maxLength: number; consensus: boolean },
): ServiceCaps {
  const { maxBeam, defaultBeam, maxConsensus, maxConsensusSamples } = opts;
  return {
    maxBeam,
    defaultBeam,
    maxConsensus,
    maxConsensusSamples,
    maxLength: info.maxLength,
    consensus: info.consensus,
  };
}

/** A request's options: the CaptionOptions for the model (defaults filled in) and whether to send attention grids. */
export interface CaptionRequestOptions {
  options: CaptionOptions;
  attention: boolean;
  /** The options the client named, as snake_case wire names (echoed in the answer). */
  given: string[];
}

/** The service's own option, not the model's. */
const SERVICE_OPTIONS = ['attention'];
const TRUE = ['', '1', 'true', 'yes'],
  FALSE = ['0', 'false', 'no'];

export const wireName = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const optionKey = (wire: string) => wire.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** Whether checkCaptionOptions knows `key` (it refuses unknown keys, and skips known ones left undefined). */
function isCaptionOption(key: string): key is CaptionOptionName {
  try {
    checkCaptionOptions({ [key]: undefined } as CaptionOptions);
    return true;
  } catch {
    return false;
  }
}

const badOption = (name: string, value: string, rule: string, limit?: RefusalLimit, widen = '') =>
  refuse(ERRORS.bad_option, `${name}=${JSON.stringify(value)}: ${name} must be ${rule}`, {
    limit,
    fix: `send ${name} as ${rule}, or leave it out for the default${widen}.`,
  });

/** A wire string as the option's value: numeric options as numbers, flags as booleans, counts as numbers. */
function optionValue(key: CaptionOptionName, wire: string, value: string): number | boolean {
  if (key in CAPTION_OPTION_LIMITS) return value === '' ? NaN : Number(value);
  const lower = value.toLowerCase();
  if (TRUE.includes(lower)) return true;
  if (FALSE.includes(lower)) return false;
  const n = Number(value);
  if (value !== '' && Number.isFinite(n)) return n;
  throw badOption(wire, value, 'true, false or a number');
}

/** Options from name -> value strings (query or multipart fields); unknown names are refused (typos would pass silently). */
export function parseOptions(raw: Record<string, string>, caps: ServiceCaps): CaptionRequestOptions {
  const unknown = Object.keys(raw).filter((k) => !SERVICE_OPTIONS.includes(k) && !isCaptionOption(optionKey(k)));
  if (unknown.length > 0) {
    throw refuse(ERRORS.unknown_option, unknown.map((u) => JSON.stringify(u)).join(', '), {
      fix: 'use only the options GET /v1/model lists under "decoding", and attention (query string, or multipart fields beside "image").',
    });
  }
  const options: CaptionOptions = {};
  const given: string[] = [];
  for (const [wire, value] of Object.entries(raw)) {
    if (SERVICE_OPTIONS.includes(wire) || (value === '' && optionKey(wire) in CAPTION_OPTION_LIMITS)) continue;
    const key = optionKey(wire) as CaptionOptionName;
    (options as Record<string, unknown>)[key] = optionValue(key, wire, value);
    given.push(wire);
  }
  // the service's caps, each naming what sets it
  checkCap(options.beam, 'beam', raw, 1, caps.maxBeam, {
    limit: '--max-beam',
    widen: '; wider beams need a server started with a larger --max-beam',
  });
  checkCap(options.maxLength, 'max_length', raw, 1, caps.maxLength, {
    limit: "the model's longest caption (its vocabulary's max length - 1)",
  });
  checkConsensusCaps(options, raw, caps);
  // the service's defaults: its beam (unless sampling), the model's longest caption, the beam's alternatives in the answer
  if (options.beam === undefined && !options.sample) options.beam = caps.defaultBeam;
  options.maxLength ??= caps.maxLength;
  options.alternatives ??= true;
  if ((options.beam ?? 1) > 1 && !options.sample) options.alpha ??= 0;
  checkCaptionOptions(options, {
    fail: (message) =>
      refuse(ERRORS.bad_option, message, {
        fix: 'send the options within the ranges GET /v1/model lists under "decoding", or leave them out.',
      }),
    name: wireName,
  });
  const flag = raw.attention?.toLowerCase();
  if (flag !== undefined && !TRUE.includes(flag) && !FALSE.includes(flag))
    throw badOption('attention', raw.attention, 'true or false');
  return { options, attention: flag !== undefined && TRUE.includes(flag), given };
}

/** Consensus reranking: only on a model with a caption memory, and within the service's caps on its cost. */
function checkConsensusCaps(options: CaptionOptions, raw: Record<string, string>, caps: ServiceCaps): void {
  if (options.consensus === undefined) return;
  if (!caps.consensus)
    throw refuse(ERRORS.bad_option, 'consensus: this model has no caption memory to rerank with', {
      fix: 'leave consensus out, or serve a bundle exported with `sat export --memory RUN`.',
    });
  checkCap(options.consensus, 'consensus', raw, 1, caps.maxConsensus, {
    limit: '--max-consensus',
    widen: '; more neighbours need a server started with a larger --max-consensus',
  });
  options.consensusSamples ??= Math.min(DEFAULT_CONSENSUS_SAMPLES, caps.maxConsensusSamples);
  checkCap(options.consensusSamples, 'consensus_samples', raw, 0, caps.maxConsensusSamples, {
    limit: '--max-consensus-samples',
    widen: '; more samples need a server started with a larger --max-consensus-samples',
  });
}

/** A service cap on an integer option (`wire` its name): anything but an integer in min..max is refused, naming the cap. */
function checkCap(
  value: number | undefined,
  wire: string,
  raw: Record<string, string>,
  min: number,
  max: number,
  cap: { limit: string; widen?: string },
): void {
  if (value === undefined || (Number.isInteger(value) && value >= min && value <= max)) return;
  throw badOption(
    wire,
    raw[wire],
    `an integer from ${min} to ${max}`,
    { name: cap.limit, value: max },
    cap.widen ?? '',
  );
}

/** The ranges GET /v1/model lists: CAPTION_OPTION_LIMITS under wire names, with the service's caps and defaults. */
export function optionRanges(caps: ServiceCaps): Record<string, { min: number; max: number; default?: number }> {
  const out: Record<string, { min: number; max: number; default?: number }> = {};
  for (const [key, limit] of Object.entries(CAPTION_OPTION_LIMITS))
    if (caps.consensus || !key.startsWith('consensus')) out[wireName(key)] = { min: limit.min, max: limit.max };
  if (caps.consensus) {
    out.consensus.max = Math.min(out.consensus.max, caps.maxConsensus);
    out.consensus_samples = {
      ...out.consensus_samples,
      max: Math.min(out.consensus_samples.max, caps.maxConsensusSamples),
      default: Math.min(DEFAULT_CONSENSUS_SAMPLES, caps.maxConsensusSamples),
    };
    out.consensus_weight.default = DEFAULT_CONSENSUS_WEIGHT;
  }
  out.beam = { ...out.beam, max: Math.min(out.beam.max, caps.maxBeam), default: caps.defaultBeam };
  if (out.alpha) out.alpha.default = 0;
  out.max_length = { ...out.max_length, max: Math.min(out.max_length.max, caps.maxLength), default: caps.maxLength };
  return out;
}

function queryStrings(request: FastifyRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((request.query ?? {}) as Record<string, unknown>)) {
    if (Array.isArray(v))
      throw refuse(ERRORS.bad_option, `option ${k} is given ${v.length} times`, { fix: `send ${k} once.` });
    out[k] = String(v);
  }
  return out;
}

/** Image bytes and option strings of one request, from either a raw image body or a multipart form. */
export async function readCaptionRequest(
  request: FastifyRequest,
  maxBytes: number,
): Promise<{ image: Buffer; raw: Record<string, string> }> {
  const raw = queryStrings(request);
  if (!request.isMultipart()) {
    const body = request.body;
    if (!Buffer.isBuffer(body) || body.length === 0) {
      const empty = body === undefined || (Buffer.isBuffer(body) && body.length === 0);
      throw refuse(
        ERRORS.not_an_image_body,
        empty ? 'it is empty' : `it is of type ${request.headers['content-type']}`,
      );
    }
    return { image: body, raw };
  }
  const boundary = /;\s*boundary=(?:"([^"]*)"|([^;\s]*))/i.exec(request.headers['content-type'] ?? '');
  const b = boundary?.[1] ?? boundary?.[2] ?? '';
  if (b.length < 1 || b.length > 70) {
    throw refuse(
      ERRORS.bad_multipart,
      b.length === 0
        ? 'its Content-Type names no boundary'
        : `its boundary has ${b.length} characters, more than the 70 allowed (RFC 2046)`,
    );
  }
  let image: Buffer | null;
  try {
    image = await readForm(request, raw);
  } catch (e) {
    if (e instanceof Refusal) throw e;
    const refusal = fromFastifyError(e as FastifyError, maxBytes);
    // busboy's own errors (no boundary, a boundary over 70 characters, a body that ends mid-part) have no status
    throw refusal ?? refuse(ERRORS.bad_multipart, (e as Error).message);
  }
  if (!image || image.length === 0) throw refuse(ERRORS.missing_image);
  return { image, raw };
}

/** The form's file "image" (an image/* or application/octet-stream part), its other fields into `raw`. */
async function readForm(request: FastifyRequest, raw: Record<string, string>): Promise<Buffer | null> {
  let image: Buffer | null = null;
  for await (const part of request.parts()) {
    if (part.type === 'file') {
      if (part.fieldname !== 'image' || image) {
        await part.toBuffer().catch(() => undefined);
        throw refuse(
          ERRORS.bad_form,
          `it has ${image ? 'a second file' : `a file field "${part.fieldname}"`}; it takes one file, in the field "image"`,
        );
      }
      if (!/^(image\/[\w.+-]+|application\/octet-stream)$/i.test(part.mimetype)) {
        part.file.resume();
        throw refuse(ERRORS.unsupported_media_type, `the file "image" is of type ${JSON.stringify(part.mimetype)}`);
      }
      image = await part.toBuffer();
    } else {
      if (raw[part.fieldname] !== undefined) {
        throw refuse(ERRORS.bad_option, `option ${part.fieldname} is given twice`, {
          fix: `send ${part.fieldname} once, in the query string or in the form.`,
        });
      }
      raw[part.fieldname] = String(part.value);
    }
  }
  return image;
}
