/**
 * File sets the server publishes file by file: the export bundle (/v1/bundle/) and the browser build of
 * show-attend-tell/web (/assets/web/). A set is a fixed map from name to file (on disk or in memory), made
 * once; a request can only name one of its entries, never a path joined from the URL.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Bundle } from '../export/bundle-backend.js';
import { readManifest } from '../export/bundle-folder.js';
import { MANIFEST_FILE } from '../export/manifest.js';

export interface PublishedFile {
  type: string; // Content-Type
  size: number;
  /** Absolute path on disk, or the bytes themselves. */
  file?: string;
  body?: Uint8Array;
}

export type FileSet = Map<string, PublishedFile>;

/**
 * What the server publishes under a prefix: files made on first use (an export takes seconds, the browser
 * build a second), or null with the reason why there is nothing.
 */
export type FileSource = { files(): Promise<FileSet> } | { none: string };

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.onnx': 'application/octet-stream',
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};
export const contentType = (name: string) => TYPES[path.extname(name).toLowerCase()] ?? 'application/octet-stream';

/** name -> file for the regular files directly in `dir`. */
export function folderFiles(dir: string): FileSet {
  const out: FileSet = new Map();
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isFile() || entry.name.startsWith('.')) continue;
    const file = path.join(dir, entry.name);
    out.set(entry.name, { file, type: contentType(entry.name), size: fs.statSync(file).size });
  }
  return out;
}

/** A bundle held in memory as the files of its folder (manifest.json and the files it lists). */
export function bundleFiles(bundle: Bundle): FileSet {
  const out: FileSet = new Map();
  const manifest = new TextEncoder().encode(JSON.stringify(bundle.manifest, null, 2) + '\n');
  out.set(MANIFEST_FILE, { body: manifest, type: contentType(MANIFEST_FILE), size: manifest.length });
  for (const [name, body] of bundle.files) out.set(name, { body, type: contentType(name), size: body.length });
  return out;
}

/** A FileSource made by `make` on first use; a failure is not kept, so the next request tries again. */
export function lazyFiles(make: () => Promise<FileSet>): FileSource {
  let made: Promise<FileSet> | null = null;
  return {
    files: () => {
      made ??= make();
      made.catch(() => {
        made = null;
      });
      return made;
    },
  };
}

/** A bundle folder as published: manifest.json and the files it lists, nothing else that lies in the folder. */
export function bundleFolderFiles(dir: string): FileSet {
  const manifest = readManifest(dir);
  const all = folderFiles(dir);
  const out: FileSet = new Map();
  for (const name of [MANIFEST_FILE, ...Object.keys(manifest.files)]) {
    const found = all.get(name);
    if (!found)
      throw new Error(
        `${path.join(dir, name)} is missing from the bundle: copy the whole folder, or export it again with \`sat export\``,
      );
    out.set(name, found);
  }
  return out;
}
