/**
 * The web page's files and the browser build it loads for "caption in this browser", served by fixed name
 * (never a path a client names):
 *   /                       index.html
 *   /assets/app.css         the styles
 *   /assets/app.js          src/web/page/main.ts bundled by esbuild (one ES module, no dependencies)
 *   /assets/web/*           show-attend-tell/web (src/web/index.ts) with onnxruntime-web's wasm files
 *
 * `npm run build` writes the page to dist/page/ (writePageBundle) and the browser build to dist/web/
 * (scripts/build-web.mjs); an installed package serves those. Running from the sources (tsx, the tests), both
 * are built in memory from the sources instead, so they never lag behind them.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { packageRoot } from '../util/package-files.js';
import { contentType, folderFiles, lazyFiles, type FileSet, type FileSource } from './static-files.js';

export interface PageAsset {
  body: Buffer;
  type: string;
}

const SOURCE = () => path.join(packageRoot(), 'src', 'web', 'page');
const BUILT = () => path.join(packageRoot(), 'dist', 'page');
const WEB_BUILT = () => path.join(packageRoot(), 'dist', 'web');
const WEB_MODULE = 'show-attend-tell.mjs';
/** onnxruntime-web's runtime, loaded by the module from its own folder. */
const ORT_FILES = ['ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'];
const fromSources = () => import.meta.url.endsWith('.ts');

async function esbuild(): Promise<typeof import('esbuild')> {
  try {
    return await import('esbuild');
  } catch {
    throw new Error('the web page is not built (dist/page, dist/web) and esbuild is not installed to build it: run `npm run build`.');
  }
}

async function bundlePage(): Promise<Buffer> {
  const result = await (await esbuild()).build({
    entryPoints: [path.join(SOURCE(), 'main.ts')], bundle: true, format: 'esm', target: 'es2020', minify: true,
    write: false, logLevel: 'silent', legalComments: 'none',
  });
  return Buffer.from(result.outputFiles[0].contents);
}

let loaded: Promise<Map<string, PageAsset>> | null = null;

/** Read (or, from the sources, build) the page's files, once per process. */
export function loadPageAssets(): Promise<Map<string, PageAsset>> {
  loaded ??= readPageAssets();
  loaded.catch(() => { loaded = null; });
  return loaded;
}

async function readPageAssets(): Promise<Map<string, PageAsset>> {
  const sources = fromSources() || !fs.existsSync(path.join(BUILT(), 'app.js'));
  const dir = sources ? SOURCE() : BUILT();
  const script = sources ? await bundlePage() : fs.readFileSync(path.join(dir, 'app.js'));
  return new Map([
    ['/', { body: fs.readFileSync(path.join(dir, 'index.html')), type: 'text/html; charset=utf-8' }],
    ['/assets/app.css', { body: fs.readFileSync(path.join(dir, 'style.css')), type: 'text/css; charset=utf-8' }],
    ['/assets/app.js', { body: script, type: 'text/javascript; charset=utf-8' }],
  ]);
}

/** Build step (npm run build): write the page to dist/page/. */
export async function writePageBundle(): Promise<void> {
  fs.mkdirSync(BUILT(), { recursive: true });
  fs.writeFileSync(path.join(BUILT(), 'app.js'), await bundlePage());
  for (const f of ['index.html', 'style.css']) fs.copyFileSync(path.join(SOURCE(), f), path.join(BUILT(), f));
}

/** The browser build of show-attend-tell/web: dist/web, or from the sources built in memory on first use. */
let webBuild: FileSource | null = null;
export function webBuildFiles(): FileSource {
  if (webBuild) return webBuild;
  if (!fromSources()) {
    webBuild = fs.existsSync(path.join(WEB_BUILT(), WEB_MODULE)) ? lazyFiles(async () => folderFiles(WEB_BUILT()))
      : { none: `this installation has no browser build (${WEB_BUILT()}: npm run build writes it)` };
  } else {
    webBuild = lazyFiles(buildWebInMemory);
  }
  return webBuild;
}

/** src/web/index.ts bundled as scripts/build-web.mjs bundles it for dist/web (its options), in memory. */
async function buildWebInMemory(): Promise<FileSet> {
  const result = await (await esbuild()).build({
    entryPoints: [path.join(packageRoot(), 'src', 'web', 'index.ts')], bundle: true, format: 'esm', platform: 'browser', target: 'es2022',
    conditions: ['onnxruntime-web-use-extern-wasm'], minify: true, write: false, logLevel: 'silent', legalComments: 'none',
  });
  const body = result.outputFiles[0].contents;
  const files: FileSet = new Map([[WEB_MODULE, { body, type: contentType(WEB_MODULE), size: body.length }]]);
  const ortDist = path.dirname(createRequire(import.meta.url).resolve(`onnxruntime-web/${ORT_FILES[1]}`));
  for (const name of ORT_FILES) {
    const file = path.join(ortDist, name);
    files.set(name, { file, type: contentType(name), size: fs.statSync(file).size });
  }
  return files;
}
