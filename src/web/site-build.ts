/**
 * The static captioning site of `sat export --site DIR` (Node only; never imported by browser code):
 *
 *   DIR/index.html, style.css    the page (src/web/page-html.ts: the `sat serve` page's template as 'site', its style.css)
 *   DIR/app.js                   src/web/site/main.ts with show-attend-tell/web bundled in (one ES module)
 *   DIR/ort-wasm-simd-threaded.{mjs,wasm}   onnxruntime-web's runtime, loaded from beside app.js (no CDN)
 *   DIR/model/                   the bundle (manifest.json, encoder.onnx, decoder-*.onnx), SHA-256 checked by the page
 *
 * Any static file server shows it (relative URLs only, so a sub-folder of a site works too); nothing runs on the
 * server. A built or installed package copies dist/site (`npm run build` writes it: the page alone) and the runtime
 * files of dist/web (not stored twice in the package); from the sources (tsx, the tests) the page is built in memory
 * with esbuild and the runtime comes from onnxruntime-web, so it never lags behind.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Bundle } from '../export/bundle-backend.js';
import { writeBundle } from '../export/bundle.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import { packageRoot } from '../util/package-files.js';
import { bundleForBrowser } from './browser-bundle.js';
import { pageHtml } from './page-html.js';

/** Where `npm run build` writes the site's page files, under the package root. */
export const SITE_BUILD_FOLDER = path.join('dist', 'site');
/** The bundle's folder inside a site. */
export const SITE_MODEL_FOLDER = 'model';
const ORT_FILES = ['ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'];

/** The site's page files (name -> bytes; without the onnxruntime-web runtime), built from the sources with esbuild. */
export async function buildSitePage(): Promise<Map<string, Uint8Array>> {
  const root = packageRoot();
  const files = await bundleForBrowser({
    entry: path.join(root, 'src', 'web', 'site', 'main.ts'),
    outfile: 'app.js',
    name: 'site',
    legalComments: 'none',
    noEsbuild: () =>
      new UserError(
        'esbuild is not installed, so the site page cannot be built from the sources: run `npm ci` in the show-attend-tell ' +
          'checkout (esbuild is a devDependency), or use a built package (`npm run build` writes dist/site).',
      ),
  });
  files.set('index.html', new TextEncoder().encode(pageHtml('site')));
  files.set('style.css', fs.readFileSync(path.join(root, 'src', 'web', 'page', 'style.css')));
  return files;
}

/** The page files and the onnxruntime-web runtime of this installation: dist/site + dist/web, or (from the sources) built now. */
export async function sitePageFiles(): Promise<Map<string, Uint8Array>> {
  if (import.meta.url.endsWith('.ts')) {
    const files = await buildSitePage();
    const ortDir = path.dirname(createRequire(import.meta.url).resolve(`onnxruntime-web/${ORT_FILES[1]}`));
    for (const name of ORT_FILES) files.set(name, fs.readFileSync(path.join(ortDir, name)));
    return files;
  }
  const root = packageRoot();
  const site = path.join(root, SITE_BUILD_FOLDER),
    web = path.join(root, 'dist', 'web');
  const missing = [path.join(site, 'app.js'), ...ORT_FILES.map((n) => path.join(web, n))].filter(
    (f) => !fs.existsSync(f),
  );
  if (missing.length > 0) {
    throw new UserError(
      `this installation of show-attend-tell lacks ${missing.join(', ')}: run \`npm run build\` in ${root}, or reinstall the package.`,
    );
  }
  const files = new Map(
    fs
      .readdirSync(site)
      .filter((n) => fs.statSync(path.join(site, n)).isFile())
      .map((n) => [n, fs.readFileSync(path.join(site, n))]),
  );
  for (const name of ORT_FILES) files.set(name, fs.readFileSync(path.join(web, name)));
  return files;
}

/** `npm run build`: the page files into dist/site (emptied first). */
export async function writeSitePage(
  dir = path.join(packageRoot(), SITE_BUILD_FOLDER),
): Promise<Map<string, Uint8Array>> {
  const files = await buildSitePage();
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of files) fs.writeFileSync(path.join(dir, name), bytes);
  return files;
}

/**
 * Writes the site into `dir` (created): the page files, then the bundle into model/ (see writeBundle: its manifest
 * last). Files of the same names are replaced; nothing else in `dir` is touched. Returns the files written.
 */
export async function writeSite(dir: string, bundle: Bundle): Promise<string[]> {
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory())
    throw new UserError(`--site ${dir} is a file; pass a folder for the site.`);
  const page = await sitePageFiles();
  fs.mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, bytes] of page) {
    const file = path.join(dir, name);
    writeFileAtomic(file, bytes);
    written.push(file);
  }
  written.push(...writeBundle(path.join(dir, SITE_MODEL_FOLDER), bundle));
  return written;
}
