// `npm run build`, after tsc: the browser builds of src/serve/browser-build.ts written to dist/web (show-attend-tell/web
// with onnxruntime-web's wasm files) and dist/page (the sat serve web page).
import { BUILD_FOLDERS, writeBrowserBuild } from '../dist/src/serve/browser-build.js';

for (const which of ['web', 'page']) {
  const files = await writeBrowserBuild(which);
  const sizes = [...files].map(([name, f]) => `${name} ${(f.size / 1e6).toFixed(2)} MB`).join(', ');
  console.log(`${BUILD_FOLDERS[which]}: ${sizes}`);
}

// The static captioning site's page (`sat export --site DIR` copies it): src/web/site-build.ts.
const { SITE_BUILD_FOLDER, writeSitePage } = await import('../dist/src/web/site-build.js');
const site = await writeSitePage();
console.log(`${SITE_BUILD_FOLDER}: ${[...site].map(([name, bytes]) => `${name} ${(bytes.length / 1e6).toFixed(2)} MB`).join(', ')}`);
