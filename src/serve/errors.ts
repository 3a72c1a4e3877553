/**
 * The catalogue of every refusal `sat serve` answers with: one table from code to HTTP status, message and fix
 * (and the flag that sets the limit involved). A route refuses with `refuse(ERRORS.queue_full, detail)`; the
 * client gets
 *   { "error": { "status", "code", "message", "limit": { "name", "value" }?, "fix" } }
 * docs/serve-errors.md lists the same table for users (a test keeps the two in step).
 */
import type { FastifyError } from 'fastify';

export interface ErrorSpec {
  status: number;
  /** What went wrong; a refusal appends its detail after a colon. */
  message: string;
  /** What the client (or the operator) can do about it. */
  fix: string;
  /** The `sat serve` flag that sets the limit involved, or what else bounds it. */
  limit?: string;
  /** Retry-After seconds sent with the refusal (a refusal may give its own). */
  retryAfter?: number;
}

export type ErrorEntry = ErrorSpec & { code: string };

const catalogue = <T extends Record<string, ErrorSpec>>(specs: T): { [K in keyof T]: T[K] & { code: K & string } } =>
  Object.fromEntries(Object.entries(specs).map(([code, spec]) => [code, { ...spec, code }])) as {
    [K in keyof T]: T[K] & { code: K & string };
  };

export const ERRORS = catalogue({
  // the request itself
  not_found: {
    status: 404,
    message: 'no such route or file',
    fix: 'see GET /v1/model and POST /v1/captions; the page is at GET /.',
  },
  bad_request: {
    status: 400,
    message: 'the request is malformed',
    fix: 'check the request against GET /v1/model and docs/serve-errors.md.',
  },
  bad_content_length: {
    status: 400,
    message: 'the Content-Length header does not match the body',
    fix: 'send the body with a correct Content-Length.',
  },
  body_too_large: {
    status: 413,
    message: 'the image is too large',
    limit: '--max-bytes',
    fix: 'send a smaller image (resize or recompress it), or start sat serve with a larger --max-bytes.',
  },
  unsupported_media_type: {
    status: 415,
    message: 'this Content-Type is not accepted',
    fix: 'send the image as the body with Content-Type image/jpeg (image/png, ...), or as the field "image" of a multipart/form-data form.',
  },
  not_an_image_body: {
    status: 415,
    message: 'the body is not an image',
    fix: 'send the image bytes as the body with Content-Type image/jpeg (or image/png, image/webp ...), or as the field "image" of a multipart/form-data form.',
  },
  form_too_large: {
    status: 413,
    message: 'the form has too many parts',
    fix: 'send one file "image" and the options as fields (see GET /v1/model).',
  },
  bad_form: {
    status: 400,
    message: 'the form is not what POST /v1/captions takes',
    fix: 'send one image in the multipart field "image".',
  },
  missing_image: {
    status: 400,
    message: 'the form has no file in the field "image"',
    fix: 'send the image as the multipart field "image" (curl -F image=@photo.jpg).',
  },
  bad_option: {
    status: 400,
    message: 'a caption option is out of range',
    fix: 'send the option within the range GET /v1/model lists, or leave it out for the default.',
  },
  unknown_option: {
    status: 400,
    message: 'unknown caption option',
    fix: 'use only the options GET /v1/model lists (query string, or multipart fields beside "image").',
  },
  bad_multipart: {
    status: 400,
    message: 'the multipart body is malformed',
    fix: "send a well-formed multipart/form-data body (boundary in the Content-Type, at most 70 characters, the closing boundary at the end), as curl -F or a browser's FormData do.",
  },
  host_not_allowed: {
    status: 403,
    message: 'the Host header names another server',
    limit: '--allow-origin',
    fix: 'address the server by its IP address or localhost; to serve under a host name (a proxy, DNS), start sat serve with --allow-origin http://NAME[:PORT].',
  },
  origin_not_allowed: {
    status: 403,
    message: "requests from this web page's origin are not allowed",
    limit: '--allow-origin',
    fix: 'use the page sat serve itself serves (GET /), or start sat serve with --allow-origin ORIGIN for the site that should use it.',
  },
  request_timeout: {
    status: 408,
    message: 'the request did not arrive in time',
    limit: '--timeout',
    fix: 'send the headers and the body at once, or start sat serve with a larger --timeout (or --headers-timeout).',
  },
  headers_too_large: {
    status: 431,
    message: 'the request headers are too large',
    fix: 'send fewer or shorter headers (cookies included): POST /v1/captions needs only Host and Content-Type.',
  },
  // the upload
  uploads_full: {
    status: 503,
    message: 'too many uploads are in flight',
    limit: '--max-uploads',
    retryAfter: 1,
    fix: 'retry in a second, or start sat serve with a larger --max-uploads.',
  },
  upload_too_slow: {
    status: 408,
    message: 'the body arrives too slowly',
    limit: '--min-upload-rate',
    fix: 'send the whole body at once, from a faster connection, or start sat serve with a lower --min-upload-rate.',
  },
  // the image
  format_not_enabled: {
    status: 415,
    message: 'this image format is not enabled on this server',
    limit: '--image-formats',
    fix: 'send a JPEG, PNG or WebP image, or start sat serve with the format in --image-formats.',
  },
  image_too_slow: {
    status: 422,
    message: 'decoding the image took too long',
    limit: '--image-timeout',
    fix: 'send a smaller or simpler image (e.g. re-saved as a baseline JPEG), or start sat serve with a larger --image-timeout.',
  },
  not_an_image: {
    status: 415,
    message: 'the body is not an image this server decodes',
    fix: 'send a JPEG, PNG or WebP image (GET /v1/model lists the formats enabled).',
  },
  corrupt_image: {
    status: 422,
    message: 'the image data is truncated or damaged',
    fix: 'send the file again, or re-save it with an image editor.',
  },
  too_many_pixels: {
    status: 422,
    message:
      'the image has too many pixels (16-bit samples, alpha, extra pages and interlacing count at their memory cost)',
    limit: '--max-pixels',
    fix: 'send a smaller image (downscale it first), or start sat serve with a larger --max-pixels.',
  },
  // the server's state and load
  model_loading: {
    status: 503,
    message: 'the model is still loading',
    fix: 'retry in a few seconds; GET /readyz answers 200 once it is loaded.',
    retryAfter: 2,
  },
  model_failed: { status: 503, message: 'the model could not be loaded', fix: 'fix the model and restart sat serve.' },
  model_unavailable: {
    status: 503,
    message: 'no model instance is running',
    retryAfter: 5,
    fix: 'restart sat serve (a supervisor does this when GET /readyz answers 503); the server log says why the model stopped.',
  },
  model_error: {
    status: 500,
    message: "the model failed on this image's batch",
    fix: 'retry once; if it fails again, the server log has the details (start sat serve with --log): report it with the image.',
  },
  shutting_down: {
    status: 503,
    message: 'the server is shutting down',
    fix: 'send the request to another instance, or retry once it is back.',
    retryAfter: 5,
  },
  queue_full: {
    status: 503,
    message: 'the queue is full',
    limit: '--max-queue',
    fix: 'retry after the seconds the Retry-After header names, or start sat serve with a larger --max-queue.',
  },
  timeout: {
    status: 503,
    message: 'no caption within --timeout',
    limit: '--timeout',
    retryAfter: 1,
    fix: 'retry later, when the server is less busy, or start sat serve with a larger --timeout.',
  },
  client_closed: {
    status: 499,
    message: 'the client closed the request before it was captioned',
    fix: 'none: nobody is waiting for this answer.',
  },
  not_available: {
    status: 503,
    message: 'these files cannot be made',
    fix: 'fix the cause named here; the next request tries again.',
  },
  internal: {
    status: 500,
    message: 'internal error',
    fix: 'this is a bug in sat serve: please report it with the request and the server log (start sat serve with --log).',
  },
});

export type ErrorCode = keyof typeof ERRORS;

export interface RefusalLimit {
  name: string; // the flag that sets it ("--max-bytes"), or what else bounds it
  value: number | string;
}

export interface RefusalExtras {
  /** The value of the entry's limit on this server. */
  value?: number | string;
  /** A limit other than the entry's (e.g. the model's longest caption). */
  limit?: RefusalLimit;
  /** A fix more precise than the entry's. */
  fix?: string;
  /** Retry-After seconds instead of the entry's. */
  retryAfter?: number;
}

/** A request the service refuses; its JSON is the answer's body. */
export class Refusal extends Error {
  readonly status: number;
  readonly code: string;
  readonly fix: string;
  readonly limit?: RefusalLimit;
  readonly headers: Record<string, string>;

  constructor(entry: ErrorEntry, detail?: string, extras: RefusalExtras = {}) {
    super(detail ? `${entry.message}: ${detail}` : `${entry.message}.`);
    this.name = 'Refusal';
    this.status = entry.status;
    this.code = entry.code;
    this.fix = extras.fix ?? entry.fix;
    this.limit =
      extras.limit ??
      (entry.limit && extras.value !== undefined ? { name: entry.limit, value: extras.value } : undefined);
    const retryAfter = extras.retryAfter ?? entry.retryAfter;
    this.headers = retryAfter === undefined ? {} : { 'retry-after': String(retryAfter) };
  }

  toJSON() {
    return {
      error: {
        status: this.status,
        code: this.code,
        message: this.message,
        ...(this.limit ? { limit: this.limit } : {}),
        fix: this.fix,
      },
    };
  }
}

/** The refusal `entry` describes, with what this request did wrong (`detail`). */
export const refuse = (entry: ErrorEntry, detail?: string, extras?: RefusalExtras) =>
  new Refusal(entry, detail, extras);

/** "10485760" -> "10 MiB": limits as people read them in messages. */
export function formatBytes(n: number): string {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1 << 10 && n % (1 << 10) === 0) return `${n / (1 << 10)} KiB`;
  return `${n} bytes`;
}

/** The refusal for a body over --max-bytes (raw body or multipart file). */
export const bodyTooLarge = (maxBytes: number) =>
  refuse(ERRORS.body_too_large, `more than ${formatBytes(maxBytes)}`, { value: maxBytes });

/** fastify's own refusals (body limit, content type, multipart limits) as catalogue entries; null: not a client error. */
export function fromFastifyError(error: FastifyError, maxBytes: number): Refusal | null {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
      return bodyTooLarge(maxBytes);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return refuse(ERRORS.unsupported_media_type, JSON.stringify(error.message.split(': ').pop()));
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return refuse(ERRORS.bad_content_length);
    case 'FST_PARTS_LIMIT':
    case 'FST_FILES_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return refuse(ERRORS.form_too_large, error.message);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return refuse(ERRORS.not_an_image_body, 'it is JSON');
    default:
      if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
        return new Refusal({ ...ERRORS.bad_request, status: error.statusCode }, error.message);
      }
      return null;
  }
}
