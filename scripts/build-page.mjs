// The `sat serve` web page (src/web/page) built into dist/page/ by esbuild, after tsc (npm run build).
import { writePageBundle } from '../dist/src/serve/page-assets.js';

await writePageBundle();
console.log('dist/page: the sat serve web page');
