/**
 * What `sat serve` can be told (src/cli/serve.ts maps its flags onto these), with safe defaults.
 */
import type { FileSource } from './static-files.js';

export interface ServeOptions {
  host: string;
  port: number;
  maxBytes: number;
  maxPixels: number;
  maxQueue: number;
  maxBatch: number;
  batchWaitMs: number;
  timeoutMs: number;
  maxBeam: number;
  defaultBeam: number;
  /** Most nearest training images a consensus-reranking request may ask for (`consensus`). */
  maxConsensus: number;
  /** Most sampled captions per image a consensus-reranking request may ask for (`consensus_samples`). */
  maxConsensusSamples: number;
  /** Caption requests whose bodies are still arriving (counted apart from the queue). */
  maxUploads: number;
  /** Bytes/s an upload must average after uploadGraceMs (0: no minimum). */
  minUploadRate: number;
  uploadGraceMs: number;
  /** A request's headers must arrive within this (and within timeoutMs). */
  headersTimeoutMs: number;
  /** Longest a connection refused before its body was read is read on (and discarded) so the client gets the answer; 0: closed at once. */
  lingerMs: number;
  /** Most bytes read on (and discarded) from such a connection. */
  lingerBytes: number;
  /** Open connections; more are closed at once. */
  maxConnections: number;
  /**
   * Origins (scheme://host[:port]) besides the server's own whose pages may use it, and whose host names it answers
   * to (a proxy's, a DNS name's); '*' turns both checks off.
   */
  allowOrigins: string[];
  /** Image formats decoded (sharp's names: jpeg, png, webp, gif, tiff, heif). */
  imageFormats: string[];
  /** Longest time decoding one image may take (sharp's timeout: whole seconds, at least 1). */
  imageTimeoutMs: number;
  /**
   * Megabytes of libvips' operation cache (process-wide; sharp's default is 50 MB, 100 operations). 0: no cache:
   * every upload is a new image, so a cache only holds memory.
   */
  imageCacheMb: number;
  /** fastify's request log (pino, JSON lines on stdout). */
  log?: boolean;
  /** The export bundle published at /v1/bundle/ for the page's in-browser captioning (default: none). */
  bundle?: FileSource;
  /** The browser build of show-attend-tell/web published at /assets/web/ (default: this package's dist/web). */
  webBuild?: FileSource;
  /** The web page's files (index.html, style.css, app.js) served at / and /assets/ (default: this package's dist/page). */
  page?: FileSource;
}

export const DEFAULT_SERVE_OPTIONS: ServeOptions = {
  host: '127.0.0.1',
  port: 8080,
  maxBytes: 10 * 1024 * 1024,
  maxPixels: 50_000_000,
  maxQueue: 64,
  maxBatch: 8,
  batchWaitMs: 5,
  timeoutMs: 30_000,
  maxBeam: 10,
  defaultBeam: 3,
  maxConsensus: 100,
  maxConsensusSamples: 20,
  maxUploads: 128,
  minUploadRate: 8192,
  uploadGraceMs: 2000,
  headersTimeoutMs: 10_000,
  maxConnections: 512,
  lingerMs: 5000,
  lingerBytes: 64 * 1024 * 1024,
  allowOrigins: [],
  imageFormats: ['jpeg', 'png', 'webp'],
  imageTimeoutMs: 5000,
  imageCacheMb: 0,
};

/** Formats --image-formats may enable: sharp's names (heif covers AVIF). */
export const IMAGE_FORMATS = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif'];

/** close() gives the requests in flight --timeout plus this, then stops the model whatever it is doing. */
export const CLOSE_MARGIN_MS = 1000;
