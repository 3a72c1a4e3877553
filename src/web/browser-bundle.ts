/**
 * One browser bundle made by esbuild in memory (Node only; never imported by browser code): a single minified ES
 * module for platform 'browser', with onnxruntime-web's build that loads ort-wasm-simd-threaded.mjs/.wasm from
 * files beside the bundle. A bundle that pulls in a Node built-in, sharp, the native addon or onnxruntime-node
 * fails, naming the modules. esbuild is a devDependency: an installed package never builds.
 */
import path from 'node:path';

export interface BrowserBundleOptions {
  /** The entry module's path. */
  entry: string;
  /** The bundle's file name (names the output files; nothing is written). */
  outfile: string;
  /** The build's name in the error for Node-only modules ("the NAME build pulls in ..."). */
  name: string;
  /** esbuild's legalComments: 'linked' adds a legal-comments file beside the bundle, 'none' drops them. */
  legalComments: 'linked' | 'none';
  /** The error to throw when esbuild is not installed. */
  noEsbuild: () => Error;
}

/** The bundle's output files (file name -> bytes): the bundle, and esbuild's legal-comments file if any. */
export async function bundleForBrowser(options: BrowserBundleOptions): Promise<Map<string, Uint8Array>> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    throw options.noEsbuild();
  }
  const result = await esbuild.build({
    entryPoints: [options.entry],
    outfile: options.outfile,
    write: false,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['onnxruntime-web-use-extern-wasm'],
    minify: true,
    sourcemap: false,
    metafile: true,
    logLevel: 'silent',
    legalComments: options.legalComments,
  });
  const forbidden = Object.keys(result.metafile.inputs).filter((f) =>
    /(^|\/)(sharp|onnxruntime-node)\/|\.node$|^node:/.test(f),
  );
  if (forbidden.length > 0)
    throw new Error(
      `the ${options.name} build pulls in Node-only modules: ${forbidden.join(', ')}; browser code must not import them.`,
    );
  return new Map(result.outputFiles.map((f) => [path.basename(f.path), f.contents]));
}
