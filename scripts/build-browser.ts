/**
 * The browser builds, made by esbuild with one set of options. `npm run build` runs this file after tsc
 * (`node --import tsx scripts/build-browser.ts`) and writes them to dist/web and dist/page, which `sat serve`
 * publishes (src/serve/page-assets.ts); tests build them in memory (buildBrowser) so they never test a stale build:
 *
 *   web    src/web/index.ts       -> show-attend-tell.mjs (show-attend-tell/web), with onnxruntime-web's
 *                                     ort-wasm-simd-threaded.{mjs,wasm} beside it (pages load them from us, never a CDN)
 *   page   src/web/page/main.ts   -> app.js, with index.html (src/web/page-html.ts, 'served') and style.css: the
 *                                     `sat serve` web page
 *
 * Both are single ES modules for platform 'browser' (src/web/browser-bundle.ts, as the site's page): a build that
 * pulls in a Node built-in, sharp, the native addon or onnxruntime-node fails, naming the modules. esbuild is a
 * devDependency: an installed package serves dist/web and dist/page and never builds.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BUILD_FOLDERS, WEB_MODULE, type BrowserBuild } from '../src/serve/page-assets.js';
import { contentType, type FileSet } from '../src/serve/static-files.js';
import { packageRoot } from '../src/util/package-files.js';
import { bundleForBrowser } from '../src/web/browser-bundle.js';
import { pageHtml } from '../src/web/page-html.js';
import { SITE_BUILD_FOLDER, writeSitePage } from '../src/web/site-build.js';
/** onnxruntime-web's runtime, loaded by the web module from its own folder. */
const ORT_FILES = ['ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'];

const ENTRIES: Record<BrowserBuild, { entry: string[]; out: string }> = {
  web: { entry: ['src', 'web', 'index.ts'], out: WEB_MODULE },
  page: { entry: ['src', 'web', 'page', 'main.ts'], out: 'app.js' },
};

/** One build in memory: its bundle (and esbuild's legal-comments file, if any) plus the files copied beside it. */
export async function buildBrowser(which: BrowserBuild): Promise<FileSet> {
  const root = packageRoot();
  const { entry, out } = ENTRIES[which];
  const bundle = await bundleForBrowser({
    entry: path.join(root, ...entry),
    outfile: out,
    name: which,
    legalComments: 'linked',
    noEsbuild: () =>
      new Error(
        'esbuild is not installed, so the browser builds cannot be made: run `npm ci` in the ' +
          'show-attend-tell checkout (esbuild is a devDependency).',
      ),
  });
  const files: FileSet = new Map();
  for (const [name, body] of bundle) files.set(name, { body, type: contentType(name), size: body.length });
  if (which === 'page') {
    const body = new TextEncoder().encode(pageHtml('served'));
    files.set('index.html', { body, type: contentType('index.html'), size: body.length });
  }
  const copied =
    which === 'web'
      ? ORT_FILES.map((name) =>
          path.join(path.dirname(createRequire(import.meta.url).resolve(`onnxruntime-web/${ORT_FILES[1]}`)), name),
        )
      : [path.join(root, 'src', 'web', 'page', 'style.css')];
  for (const file of copied)
    files.set(path.basename(file), { file, type: contentType(file), size: fs.statSync(file).size });
  return files;
}

/** Write a build to `dir` (emptied first). */
export async function writeBrowserBuild(
  which: BrowserBuild,
  dir = path.join(packageRoot(), BUILD_FOLDERS[which]),
): Promise<FileSet> {
  const files = await buildBrowser(which);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, f] of files) {
    if (f.body) fs.writeFileSync(path.join(dir, name), f.body);
    else fs.copyFileSync(f.file!, path.join(dir, name));
  }
  return files;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const which of ['web', 'page'] as const) {
    const files = await writeBrowserBuild(which);
    const sizes = [...files].map(([name, f]) => `${name} ${(f.size / 1e6).toFixed(2)} MB`).join(', ');
    console.log(`${BUILD_FOLDERS[which]}: ${sizes}`);
  }
  // The static captioning site's page (`sat export --site DIR` copies it): src/web/site-build.ts.
  const site = await writeSitePage();
  console.log(
    `${SITE_BUILD_FOLDER}: ${[...site].map(([name, bytes]) => `${name} ${(bytes.length / 1e6).toFixed(2)} MB`).join(', ')}`,
  );
}
