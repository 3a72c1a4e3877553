/**
 * A deterministic byte mutator: input k of a run is a function of (run seed, k) alone, so any input a run
 * reports can be made again without replaying the run. Mutations are stacked (1 to 8): bit flips, interesting
 * bytes and little-endian integers (0, 1, -1, the signed/unsigned limits, the input's own length +- 1),
 * small arithmetic, inserted, deleted and duplicated ranges, truncation and splicing with another seed.
 */
import { Rng } from '../src/util/rng.js';

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff, 0x20, 0x22, 0x2c, 0x7b, 0x7d];
const INTERESTING_32 = [
  0, 1, 2, 4, 8, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe,
  0xffffffff,
];

/** The rng of input `k` of a run with seed `seed`. */
export const inputRng = (seed: number, k: number) =>
  new Rng(((seed >>> 0) * 2654435761 + k * 40503 + 0x9e3779b9) >>> 0);

/** Input `k` of a run: a seed picked and mutated by inputRng(seed, k). `maxBytes` bounds the input size. */
export function mutateInput(seeds: readonly Uint8Array[], seed: number, k: number, maxBytes: number): Uint8Array {
  const rng = inputRng(seed, k);
  let b: Uint8Array = seeds[rng.int(seeds.length)].slice();
  const steps = 1 + rng.int(rng.next() < 0.5 ? 2 : 8);
  for (let s = 0; s < steps; s++) b = mutateOnce(b, rng, seeds);
  return b.length > maxBytes ? b.subarray(0, maxBytes) : b;
}

function mutateOnce(b: Uint8Array, rng: Rng, seeds: readonly Uint8Array[]): Uint8Array {
  const at = () => rng.int(Math.max(1, b.length));
  const op = rng.int(11);
  if (b.length === 0 && op < 8) return Uint8Array.from({ length: 1 + rng.int(16) }, () => rng.int(256));
  switch (op) {
    case 0: {
      b[at()] ^= 1 << rng.int(8);
      return b;
    }
    case 1: {
      b[at()] = INTERESTING_8[rng.int(INTERESTING_8.length)];
      return b;
    }
    case 2: {
      b[at()] = rng.int(256);
      return b;
    }
    case 3: {
      b[at()] += rng.int(2) ? 1 + rng.int(16) : -(1 + rng.int(16));
      return b;
    }
    case 4:
    case 5: {
      // a 2-, 4- or 8-byte little-endian integer
      const width = [2, 4, 8][rng.int(3)];
      const p = at();
      if (p + width > b.length) return b;
      const values = [...INTERESTING_32, b.length, b.length - 1, b.length + 1, rng.int(2 ** 31)];
      const v = values[rng.int(values.length)];
      const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
      if (width === 2) view.setUint16(p, v & 0xffff, true);
      else if (width === 4) view.setUint32(p, v >>> 0, true);
      else view.setBigUint64(p, rng.int(4) === 0 ? 0xffffffffffffffffn : BigInt(v), true);
      return b;
    }
    case 6: {
      // delete a range
      const p = at(),
        n = 1 + rng.int(Math.min(64, b.length - p));
      return concat(b.subarray(0, p), b.subarray(p + n));
    }
    case 7: {
      // insert random or repeated bytes
      const p = at(),
        n = 1 + rng.int(32);
      const fill = rng.int(2) ? Uint8Array.from({ length: n }, () => rng.int(256)) : new Uint8Array(n).fill(b[p] ?? 0);
      return concat(b.subarray(0, p), fill, b.subarray(p));
    }
    case 8: {
      // copy a range of the input over another place
      if (b.length < 2) return b;
      const from = at(),
        n = 1 + rng.int(Math.min(64, b.length - from)),
        to = at();
      const chunk = b.slice(from, from + n);
      b.set(chunk.subarray(0, Math.max(0, Math.min(chunk.length, b.length - to))), to);
      return b;
    }
    case 9:
      return b.subarray(0, at()); // truncate
    default: {
      // splice: our head, another seed's tail
      const other = seeds[rng.int(seeds.length)];
      return concat(b.subarray(0, at()), other.subarray(rng.int(Math.max(1, other.length))));
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const JSON_VALUES: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  1e308,
  -1e308,
  2 ** 53,
  2 ** 31,
  4097,
  1025,
  '',
  '../../dev/zero',
  '/etc/passwd',
  'a/b',
  '..',
  'x'.repeat(5000),
  [],
  {},
  [1, 2],
  [-1, 2 ** 40],
  { sha256: 'f'.repeat(64), bytes: 1e12 },
];

/**
 * A structural mutation of JSON text (for manifests): one value somewhere in the tree replaced by an interesting
 * one, a key deleted, or a key added; falls back to the byte mutator when the text is not JSON.
 */
export function mutateJson(seeds: readonly Uint8Array[], seed: number, k: number, maxBytes: number): Uint8Array {
  const rng = inputRng(seed, k);
  if (rng.int(3) === 0) return mutateInput(seeds, seed, k, maxBytes);
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(seeds[rng.int(seeds.length)]));
  } catch {
    return mutateInput(seeds, seed, k, maxBytes);
  }
  const steps = 1 + rng.int(3);
  for (let s = 0; s < steps; s++) doc = mutateTree(doc, rng, 0);
  const out = new TextEncoder().encode(JSON.stringify(doc));
  return out.length > maxBytes ? out.subarray(0, maxBytes) : out;
}

function mutateTree(node: unknown, rng: Rng, depth: number): unknown {
  const pick = () => structuredClone(JSON_VALUES[rng.int(JSON_VALUES.length)]);
  if (node === null || typeof node !== 'object' || depth > 6 || rng.int(6) === 0) return pick();
  const keys = Object.keys(node);
  if (keys.length === 0) return pick();
  const key = keys[rng.int(keys.length)];
  const obj = node as Record<string, unknown>;
  const op = rng.int(8);
  if (op === 0 && !Array.isArray(node)) delete obj[key];
  else if (op === 1 && !Array.isArray(node))
    obj[['__proto__', 'constructor', 'extra', 'toString'][rng.int(4)]] = pick();
  else obj[key] = mutateTree(obj[key], rng, depth + 1);
  return node;
}
