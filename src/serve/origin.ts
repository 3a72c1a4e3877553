/**
 * Only the server's own pages, and the origins named with --allow-origin, may use it; only its own names may
 * address it. So a web page elsewhere cannot make a local `sat serve` work (a multipart POST needs no CORS
 * preflight), and DNS rebinding (a name of the attacker's resolving to 127.0.0.1) cannot read /v1/model or /metrics.
 *
 *   Host     an IP address (any: a rebinding attack needs a name), localhost, the --host name, or the host of an
 *            --allow-origin origin; else 403 host_not_allowed
 *   Origin   absent (curl, scripts), this server's own (http://<Host>), or an --allow-origin origin; else 403
 *            origin_not_allowed. Answers to an allowed other origin carry Access-Control-Allow-Origin, and its
 *            preflight (OPTIONS) is answered.
 *   --allow-origin '*' turns both checks off.
 */
import { isIP } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERRORS, refuse } from './errors.js';
import type { ServeOptions } from './options.js';

/** "[::1]:8080" -> "::1", "Example.org:80" -> "example.org". */
export function hostName(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') > 0 ? h.indexOf(']') : undefined);
  return h.replace(/:\d*$/, '');
}

/** An --allow-origin value as an origin (scheme://host[:port], no path); throws a message naming the fix. */
export function parseOrigin(value: string): string {
  if (value === '*') return value;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(
      `--allow-origin ${JSON.stringify(value)} is not an origin: give scheme://host[:port], e.g. https://caption.example.org`,
    );
  }
  if (!['http:', 'https:'].includes(url.protocol) || url.pathname !== '/' || url.search || url.hash) {
    throw new Error(
      `--allow-origin ${JSON.stringify(value)} is not an origin: give scheme://host[:port] with no path, e.g. https://caption.example.org`,
    );
  }
  return url.origin;
}

type Hook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** The onRequest hook that refuses foreign Hosts and Origins, and marks answers to allowed other origins. */
export function checkHostAndOrigin(opts: Pick<ServeOptions, 'allowOrigins' | 'host'>): Hook {
  const origins = new Set(opts.allowOrigins.map(parseOrigin));
  if (origins.has('*')) return async () => undefined;
  const names = new Set([
    'localhost',
    hostName(opts.host),
    ...[...origins].map((o) => new URL(o).hostname.replace(/^\[|\]$/g, '')),
  ]);
  return async (request, reply) => {
    const host = request.headers.host;
    if (host !== undefined) {
      const name = hostName(host);
      if (!isIP(name) && !names.has(name))
        throw refuse(ERRORS.host_not_allowed, JSON.stringify(host), { value: [...origins].join(' ') || 'none' });
    }
    const origin = request.headers.origin;
    if (origin === undefined) return;
    if (host !== undefined && origin.toLowerCase() === `http://${host.toLowerCase()}`) return;
    if (!origins.has(origin))
      throw refuse(ERRORS.origin_not_allowed, JSON.stringify(origin), { value: [...origins].join(' ') || 'none' });
    reply.header('access-control-allow-origin', origin).header('vary', 'Origin');
  };
}

/** CORS preflights of allowed origins (the hook has refused the others). */
export function preflightRoute(app: FastifyInstance): void {
  app.options('*', async (request, reply) => {
    if (!request.headers.origin) throw refuse(ERRORS.not_found, `OPTIONS ${request.url.split('?')[0]}`);
    return reply
      .status(204)
      .headers({
        'access-control-allow-methods': 'GET, POST',
        'access-control-allow-headers': 'content-type',
        'access-control-max-age': '600',
      })
      .send();
  });
}
