/**
 * A short-lived thread that exports the served checkpoint as a bundle in memory (`buildBundle`, as `sat export`
 * does) for the page's in-browser captioning, so the seconds it takes never block the server's event loop.
 *
 * workerData: ExportWorkerData. Message out: { type: 'done', manifest, files: [name, bytes][] } | { type: 'failed', message }.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { buildBundle, type ExportOptions } from '../export/bundle.js';

export interface ExportWorkerData {
  source: string;
  options: ExportOptions;
}

const port = parentPort!;
const { source, options } = workerData as ExportWorkerData;
try {
  const bundle = await buildBundle(source, options);
  const files = [...bundle.files];
  port.postMessage(
    { type: 'done', manifest: bundle.manifest, files },
    files.map(([, bytes]) => bytes.buffer as ArrayBuffer),
  );
} catch (e) {
  port.postMessage({ type: 'failed', message: (e as Error).message });
}
port.close();
