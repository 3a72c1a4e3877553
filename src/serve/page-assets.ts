/**
 * The web page's files and the browser build it loads for "caption in this browser", served by fixed name
 * (never a path a client names):
 *   /                       index.html
 *   /assets/app.css         the styles
 *   /assets/app.js          src/web/page/main.ts bundled (one ES module, no dependencies)
 *   /assets/web/*           show-attend-tell/web (src/web/index.ts) with onnxruntime-web's wasm files
 *
 * A built or installed package serves dist/page and dist/web (`npm run build` writes them). Running from the
 * sources (tsx, the tests), both are built in memory by src/serve/browser-build.ts on first use, so they never lag
 * behind the sources. A package without them still serves the API; the page's routes then say how to build it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../util/package-files.js';
import { BUILD_FOLDERS, buildBrowser, WEB_MODULE, type BrowserBuild } from './browser-build.js';
import { folderFiles, lazyFiles, type FileSource } from './static-files.js';

/** Route -> file of the page build. */
export const PAGE_ROUTES: Record<string, string> = { '/': 'index.html', '/assets/app.css': 'style.css', '/assets/app.js': 'app.js' };

const fromSources = () => import.meta.url.endsWith('.ts');
const sources: Partial<Record<BrowserBuild, FileSource>> = {};

/** dist/<build> of this package, or (from the sources) the build made in memory on first use; once per process. */
function browserBuild(which: BrowserBuild, mainFile: string): FileSource {
  const cached = sources[which];
  if (cached) return cached;
  const dir = path.join(packageRoot(), BUILD_FOLDERS[which]);
  let source: FileSource;
  if (fromSources()) source = lazyFiles(() => buildBrowser(which));
  else if (fs.existsSync(path.join(dir, mainFile))) source = lazyFiles(async () => folderFiles(dir));
  else source = { none: `this installation of show-attend-tell has no ${dir} (run \`npm run build\` in ${packageRoot()}, or reinstall the package)` };
  return (sources[which] = source);
}

/** The `sat serve` page (index.html, style.css, app.js). */
export const pageFiles = (): FileSource => browserBuild('page', 'app.js');

/** The browser build of show-attend-tell/web. */
export const webBuildFiles = (): FileSource => browserBuild('web', WEB_MODULE);
