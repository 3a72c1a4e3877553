/**
 *   GET /              the web page, /assets/* its files
 *   GET /v1/bundle/*   the export bundle of the served model, for captioning in the browser (onnxruntime-web)
 *   GET /assets/web/*  the browser build of show-attend-tell/web that the page loads to do that
 *
 * Files are served by fixed name from their FileSource, never from a path a client names.
 */
import fs from 'node:fs';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { ERRORS, refuse } from '../errors.js';
import { PAGE_ROUTES, pageFiles, webBuildFiles } from '../page-assets.js';
import type { ServeOptions } from '../options.js';
import type { FileSource, PublishedFile } from '../static-files.js';

/** What GET /v1/model says about captioning in the browser. */
export type BrowserSupport = { available: true; module: string; bundle: string } | { available: false; reason: string };

/** One file of `source`, or a refusal saying why there is none. */
async function fileOf(source: FileSource, name: string, where: string, noneFix: string): Promise<PublishedFile> {
  if ('none' in source) throw refuse(ERRORS.not_found, `${where}: ${source.none}`, { fix: noneFix });
  let files;
  try {
    files = await source.files();
  } catch (e) {
    throw refuse(ERRORS.not_available, `${where}: ${(e as Error).message}`);
  }
  const found = files.get(name);
  if (!found) throw refuse(ERRORS.not_found, where, { fix: `the files here are: ${[...files.keys()].join(', ')}.` });
  return found;
}

function sendFile(reply: FastifyReply, found: PublishedFile) {
  reply
    .type(found.type)
    .header('content-length', found.size)
    .header('cache-control', 'no-cache')
    .header('x-content-type-options', 'nosniff');
  return reply.send(
    found.body
      ? Buffer.from(found.body.buffer, found.body.byteOffset, found.body.byteLength)
      : fs.createReadStream(found.file!),
  );
}

/** Registers the page, bundle and browser-build routes; returns what /v1/model says about in-browser captioning. */
export function fileRoutes(app: FastifyInstance, opts: ServeOptions): BrowserSupport {
  const bundle = opts.bundle ?? { none: 'this server publishes no export bundle of its model' };
  const webBuild = opts.webBuild ?? webBuildFiles();
  const page = opts.page ?? pageFiles();
  for (const [route, name] of Object.entries(PAGE_ROUTES)) {
    app.get(route, async (_request, reply) =>
      sendFile(
        reply,
        await fileOf(page, name, route, 'the API (POST /v1/captions, GET /v1/model) works without the page.'),
      ),
    );
  }
  const publish = (prefix: string, source: FileSource) => {
    app.get(`${prefix}:name`, async (request, reply) =>
      sendFile(
        reply,
        await fileOf(
          source,
          (request.params as { name: string }).name,
          request.url.split('?')[0],
          "the page's in-browser captioning is off on this server.",
        ),
      ),
    );
  };
  publish('/v1/bundle/', bundle);
  publish('/assets/web/', webBuild);
  if ('none' in bundle) return { available: false, reason: bundle.none };
  if ('none' in webBuild) return { available: false, reason: webBuild.none };
  return { available: true, module: '/assets/web/show-attend-tell.mjs', bundle: '/v1/bundle/' };
}
