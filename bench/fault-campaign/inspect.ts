/**
 * The campaign's judges: does what a command left behind still load (health), and is a result equal to the
 * uninterrupted run's (equality)? Each returns human-readable problems, empty when all is well.
 *
 *   feature store:  meta.json and the index parse, every indexed record reads back with its CRC-32;
 *                   equal = the same ids, each record's fp16 bytes identical.
 *   checkpoints:    every latest/best .safetensors loads with its metadata, every .json parses;
 *                   equal = the same epoch, losses of every epoch and every tensor's bytes (latest and best).
 *   bundle:         manifest.json parses and every file matches its SHA-256 (readBundleFolder);
 *                   equal = every file's SHA-256, the manifest compared without its createdAt time.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadCheckpoint, type LoadedCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { readBundleFolder } from '../../src/export/bundle-folder.js';
import { openFeatureStore } from '../../src/features/store.js';
import { listFiles, sha256File } from './common.js';

const message = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0].slice(0, 120);

export function featureStoreHealth(dir: string): string[] {
  if (!fs.existsSync(path.join(dir, 'meta.json')))
    return fs.existsSync(dir) && fs.readdirSync(dir).length > 0 ? ['meta.json missing'] : [];
  try {
    const store = openFeatureStore(dir);
    try {
      const bad = store.verify();
      return bad.length > 0 ? [`${bad.length} record(s) fail their CRC (first ${bad[0]})`] : [];
    } finally {
      store.close();
    }
  } catch (e) {
    return [`store does not open: ${message(e)}`];
  }
}

export function featureStoresDiffer(dir: string, reference: string): string[] {
  const a = openFeatureStore(dir),
    b = openFeatureStore(reference);
  try {
    const ids = b.ids();
    const missing = ids.filter((id) => !a.has(id));
    const extra = a.ids().filter((id) => !b.has(id));
    let differ = 0;
    for (const id of ids) {
      if (!a.has(id)) continue;
      const x = new Uint32Array(a.read(id).buffer),
        y = new Uint32Array(b.read(id).buffer);
      if (x.some((v, i) => v !== y[i])) differ++;
    }
    const out: string[] = [];
    if (missing.length) out.push(`${missing.length} image(s) missing`);
    if (extra.length) out.push(`${extra.length} extra image(s)`);
    if (differ) out.push(`${differ} record(s) not bit-equal`);
    return out;
  } finally {
    a.close();
    b.close();
  }
}

/** The files a checkpoints folder may hold once no writer is running: anything else is left over (a temporary file). */
const CHECKPOINT_FILES = /^(latest|best)\.(safetensors|json)$|^vocab\.json$|^loss\.(png|svg)$/;

export function checkpointHealth(dir: string): string[] {
  const problems: string[] = [];
  for (const file of listFiles(dir)) {
    const full = path.join(dir, file);
    if (file.endsWith('.safetensors')) {
      try {
        loadCheckpoint(full);
      } catch (e) {
        problems.push(`${file} does not load (${fs.statSync(full).size} bytes): ${message(e)}`);
      }
    } else if (file.endsWith('.json')) {
      try {
        JSON.parse(fs.readFileSync(full, 'utf8'));
      } catch (e) {
        problems.push(`${file} is not JSON: ${message(e)}`);
      }
    }
  }
  return problems;
}

/** Files in a checkpoints or bundle folder that are not part of it: temporaries a failed or killed writer left. */
export function strayFiles(dir: string, kind: 'checkpoints' | 'bundle'): string[] {
  const known =
    kind === 'checkpoints' ? CHECKPOINT_FILES : /^(manifest\.json|encoder\.onnx|decoder-(init|step)\.onnx)$/;
  return listFiles(dir).filter((f) => !known.test(f) && !/\.lock$/.test(f));
}

function losses(c: LoadedCheckpoint): string {
  const p = (c.meta as { progress?: { epoch: number; history: { trainLoss: number; valLoss?: number }[] } }).progress;
  return JSON.stringify({ epoch: p?.epoch, history: p?.history.map((h) => [h.trainLoss, h.valLoss]) });
}

export function checkpointsDiffer(dir: string, reference: string): string[] {
  const out: string[] = [];
  for (const tag of ['latest', 'best'] as const) {
    const file = path.join(dir, `${tag}.safetensors`),
      ref = path.join(reference, `${tag}.safetensors`);
    if (!fs.existsSync(ref)) continue;
    if (!fs.existsSync(file)) {
      out.push(`${tag} missing`);
      continue;
    }
    let a: LoadedCheckpoint, b: LoadedCheckpoint;
    try {
      a = loadCheckpoint(file);
      b = loadCheckpoint(ref);
    } catch (e) {
      out.push(`${tag}: ${message(e)}`);
      continue;
    }
    if (losses(a) !== losses(b)) out.push(`${tag}: losses or epoch differ`);
    let tensors = 0;
    for (const [name, t] of b.tensors) {
      const u = a.tensors.get(name);
      const x = u && new Uint8Array(u.data.buffer, u.data.byteOffset, u.data.byteLength);
      const y = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      if (!x || x.length !== y.length || x.some((v, i) => v !== y[i])) tensors++;
    }
    if (tensors) out.push(`${tag}: ${tensors} tensor(s) differ`);
  }
  return out;
}

export async function bundleHealth(dir: string): Promise<string[]> {
  if (!fs.existsSync(dir) || fs.readdirSync(dir).length === 0) return ['no bundle'];
  try {
    await readBundleFolder(dir);
    return [];
  } catch (e) {
    return [`bundle does not load: ${message(e)}`];
  }
}

/** The manifest without its createdAt time, or null when it is not JSON. */
function manifestWithoutTime(file: string): string | null {
  try {
    const m = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    delete m.createdAt;
    return JSON.stringify(m);
  } catch {
    return null;
  }
}

export function bundlesDiffer(dir: string, reference: string): string[] {
  const out: string[] = [];
  for (const f of listFiles(reference)) {
    const a = path.join(dir, f),
      b = path.join(reference, f);
    if (!fs.existsSync(a)) out.push(`${f} missing`);
    else if (f === 'manifest.json' && manifestWithoutTime(a) === null) out.push('manifest.json is not JSON');
    else if (
      f === 'manifest.json' ? manifestWithoutTime(a) !== manifestWithoutTime(b) : sha256File(a) !== sha256File(b)
    )
      out.push(`${f} SHA-256 differs`);
  }
  return out;
}
