// The browser entry (src/web/index.ts) bundled as one ES module, dist/web/show-attend-tell.mjs, with
// onnxruntime-web's wasm runtime files copied next to it (so pages load them from our package, never a CDN).
// Platform 'browser': importing a Node built-in, sharp, the native addon or onnxruntime-node fails the build.
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
// `--out DIR` builds elsewhere (the browser tests build a fresh copy of the current sources).
const outFlag = process.argv.indexOf('--out');
const out = outFlag > 0 ? path.resolve(process.argv[outFlag + 1]) : path.join(root, 'dist', 'web');
fs.rmSync(out, { recursive: true, force: true });
const result = await build({
  entryPoints: [path.join(root, 'src', 'web', 'index.ts')],
  outfile: path.join(out, 'show-attend-tell.mjs'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  // onnxruntime-web's build that loads ort-wasm-simd-threaded.mjs/.wasm from files (next to this bundle)
  conditions: ['onnxruntime-web-use-extern-wasm'],
  minify: true,
  sourcemap: false,
  metafile: true,
  logLevel: 'warning',
  legalComments: 'linked',
});
const forbidden = Object.keys(result.metafile.inputs).filter((f) => /(^|\/)(sharp|onnxruntime-node)\/|\.node$|^node:/.test(f));
if (forbidden.length > 0) throw new Error(`the browser bundle pulls in Node-only modules: ${forbidden.join(', ')}`);
const ortDist = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm'));
for (const file of ['ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm']) fs.copyFileSync(path.join(ortDist, file), path.join(out, file));
const size = (f) => (fs.statSync(path.join(out, f)).size / 1e6).toFixed(2);
console.log(`dist/web: show-attend-tell.mjs ${size('show-attend-tell.mjs')} MB, ort-wasm-simd-threaded.wasm ${size('ort-wasm-simd-threaded.wasm')} MB`);
