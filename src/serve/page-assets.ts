/**
 * The web page's files, served from memory by fixed name (never a path a client names):
 *   /                 index.html
 *   /assets/app.css   the styles
 *   /assets/app.js    src/web/page/main.ts bundled by esbuild (one ES module, no dependencies)
 *
 * `npm run build` writes the bundle to dist/page/ (writePageBundle); the server reads it from there.
 * Running from the sources (tsx, the tests) the bundle is built in memory at start-up instead.
 */
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from './static-files.js';

export interface PageAsset {
  body: Buffer;
  type: string;
}

const SOURCE = () => path.join(packageRoot(), 'src', 'web', 'page');
const BUILT = () => path.join(packageRoot(), 'dist', 'page');

async function bundle(): Promise<Buffer> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new Error(`the web page is not built (${BUILT()}/app.js is missing) and esbuild is not installed to build it: run \`npm run build\`.`);
  }
  const result = await esbuild.build({
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
  const fromSources = import.meta.url.endsWith('.ts') || !fs.existsSync(path.join(BUILT(), 'app.js'));
  const dir = fromSources ? SOURCE() : BUILT();
  const script = fromSources ? await bundle() : fs.readFileSync(path.join(dir, 'app.js'));
  return new Map([
    ['/', { body: fs.readFileSync(path.join(dir, 'index.html')), type: 'text/html; charset=utf-8' }],
    ['/assets/app.css', { body: fs.readFileSync(path.join(dir, 'style.css')), type: 'text/css; charset=utf-8' }],
    ['/assets/app.js', { body: script, type: 'text/javascript; charset=utf-8' }],
  ]);
}

/** Build step (npm run build): write the page to dist/page/. */
export async function writePageBundle(): Promise<void> {
  fs.mkdirSync(BUILT(), { recursive: true });
  fs.writeFileSync(path.join(BUILT(), 'app.js'), await bundle());
  for (const f of ['index.html', 'style.css']) fs.copyFileSync(path.join(SOURCE(), f), path.join(BUILT(), f));
}
