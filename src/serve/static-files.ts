/**
 * Folders the server publishes file by file: the export bundle (/v1/bundle/) and the browser build of
 * show-attend-tell/web (/assets/web/). Each folder is listed once at start-up; a request can only name
 * one of the regular files found then (a fixed map, never a path joined from the URL).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PublishedFile {
  file: string;    // absolute path
  type: string;    // Content-Type
  size: number;
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8', '.map': 'application/json; charset=utf-8', '.txt': 'text/plain; charset=utf-8',
  '.onnx': 'application/octet-stream', '.bin': 'application/octet-stream',
};

/** name -> file for the regular files directly in `dir` (none when it does not exist). */
export function publishFolder(dir: string | null): Map<string, PublishedFile> {
  const out = new Map<string, PublishedFile>();
  if (!dir || !fs.existsSync(dir)) return out;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isFile() || entry.name.startsWith('.')) continue;
    const file = path.join(dir, entry.name);
    out.set(entry.name, { file, type: TYPES[path.extname(entry.name).toLowerCase()] ?? 'application/octet-stream', size: fs.statSync(file).size });
  }
  return out;
}

/** The package root: the nearest folder above this file with a package.json (src/serve or dist/src/serve). */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  return dir;
}

/** This package's browser build (dist/web, written by `npm run build`), or null when it is not built. */
export function webBuildFolder(): string | null {
  const web = path.join(packageRoot(), 'dist', 'web');
  return fs.existsSync(web) ? web : null;
}
