/**
 * The web page's files and the browser build it loads for "caption in this browser", served by fixed name
 * (never a path a client names):
 *   /                       index.html
 *   /assets/app.css         the styles
 *   /assets/app.js          src/web/page/main.ts bundled (one ES module, no dependencies)
 *   /assets/web/*           show-attend-tell/web (src/web/index.ts) with onnxruntime-web's wasm files
 *
 * `sat serve` publishes dist/page and dist/web, which `npm run build` writes (scripts/build-browser.ts), run from
 * the sources too; a checkout or package without them still serves the API, and the page's routes say how to
 * build them. Tests pass builds made in memory instead (ServeOptions.page and .webBuild).
 */
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../util/package-files.js';
import { folderFiles, lazyFiles, type FileSource } from './static-files.js';

export type BrowserBuild = 'web' | 'page';

/** What `npm run build` writes, under the package root. */
export const BUILD_FOLDERS: Record<BrowserBuild, string> = {
  web: path.join('dist', 'web'),
  page: path.join('dist', 'page'),
};

/** The module of show-attend-tell/web in its build. */
export const WEB_MODULE = 'show-attend-tell.mjs';

/** Route -> file of the page build. */
export const PAGE_ROUTES: Record<string, string> = {
  '/': 'index.html',
  '/assets/app.css': 'style.css',
  '/assets/app.js': 'app.js',
};

/** dist/<build> of this package, or the reason there is none. */
function browserBuild(which: BrowserBuild, mainFile: string): FileSource {
  const dir = path.join(packageRoot(), BUILD_FOLDERS[which]);
  if (fs.existsSync(path.join(dir, mainFile))) return lazyFiles(async () => folderFiles(dir));
  return {
    none: `this installation of show-attend-tell has no ${dir} (run \`npm run build\` in ${packageRoot()}, or reinstall the package)`,
  };
}

/** The `sat serve` page (index.html, style.css, app.js). */
export const pageFiles = (): FileSource => browserBuild('page', 'app.js');

/** The browser build of show-attend-tell/web. */
export const webBuildFiles = (): FileSource => browserBuild('web', WEB_MODULE);
