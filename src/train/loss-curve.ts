/**
 * The loss plot, like the tutorial's matplotlib "Loss Plot" (loss per epoch), with the validation loss beside
 * the training loss. The SVG is written by hand; the PNG is sharp rendering that SVG.
 */
import path from 'node:path';
import sharp from 'sharp';
import type { EpochRecord } from '../checkpoint/checkpoint.js';
import { writeFileAtomic } from '../util/atomic-write.js';

const W = 640,
  H = 400;
const M = { left: 64, right: 24, top: 40, bottom: 52 };

/** Round numbers for axis ticks: 1, 2 or 5 times a power of ten, about `count` of them. */
function niceTicks(lo: number, hi: number, count: number): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * pow).find((s) => s >= raw) ?? 10 * pow;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

export function lossCurveSvg(history: EpochRecord[], title = 'Loss Plot'): string {
  const series = [
    // Self-critical epochs (trainReward set) have an advantage-weighted loss, not a cross-entropy: not plotted.
    {
      name: 'train',
      color: '#1f77b4',
      points: history.filter((h) => h.trainReward === undefined).map((h) => [h.epoch, h.trainLoss] as const),
    },
    {
      name: 'validation',
      color: '#ff7f0e',
      points: history.filter((h) => h.valLoss !== null).map((h) => [h.epoch, h.valLoss as number] as const),
    },
  ].filter((s) => s.points.length > 0);
  const all = series.flatMap((s) => s.points);
  const maxEpoch = Math.max(1, ...all.map((p) => p[0]));
  const ys = all.map((p) => p[1]).filter(Number.isFinite);
  let lo = ys.length ? Math.min(...ys) : 0,
    hi = ys.length ? Math.max(...ys) : 1;
  if (hi - lo < 1e-6) {
    lo -= 0.5;
    hi += 0.5;
  }
  const pad = (hi - lo) * 0.05;
  lo = Math.max(0, lo - pad);
  hi += pad;
  const x = (e: number) =>
    M.left + ((e - (maxEpoch > 1 ? 1 : 0)) / Math.max(1, maxEpoch - (maxEpoch > 1 ? 1 : 0))) * (W - M.left - M.right);
  const y = (v: number) => M.top + (1 - (v - lo) / (hi - lo)) * (H - M.top - M.bottom);

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">${esc(title)}</text>`);
  // Grid and ticks.
  for (const t of niceTicks(lo, hi, 6)) {
    if (t < lo || t > hi) continue;
    out.push(
      `<line x1="${M.left}" x2="${W - M.right}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e5e5e5"/>`,
    );
    out.push(`<text x="${M.left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${t}</text>`);
  }
  const epochTicks = niceTicks(1, maxEpoch, Math.min(10, maxEpoch)).filter((t) => Number.isInteger(t) && t >= 1);
  for (const t of epochTicks) {
    out.push(
      `<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${H - M.bottom}" y2="${H - M.bottom + 5}" stroke="#333"/>`,
    );
    out.push(`<text x="${x(t).toFixed(1)}" y="${H - M.bottom + 18}" text-anchor="middle">${t}</text>`);
  }
  out.push(
    `<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" fill="none" stroke="#333"/>`,
  );
  out.push(`<text x="${(M.left + W - M.right) / 2}" y="${H - 12}" text-anchor="middle">Epochs</text>`);
  out.push(
    `<text transform="translate(16 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">Loss</text>`,
  );
  // Lines, with a dot per epoch so a single epoch is still visible.
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    out.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ')}"/>`,
    );
    for (const p of pts)
      out.push(`<circle cx="${x(p[0]).toFixed(1)}" cy="${y(p[1]).toFixed(1)}" r="3" fill="${s.color}"/>`);
    const ly = M.top + 16 + i * 18;
    out.push(
      `<line x1="${W - M.right - 110}" x2="${W - M.right - 90}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"/>`,
    );
    out.push(`<text x="${W - M.right - 84}" y="${ly}">${s.name}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Write `loss.svg` and `loss.png` into `dir` (each atomically). Returns the two paths. */
export async function writeLossCurve(
  dir: string,
  history: EpochRecord[],
  title?: string,
): Promise<{ svg: string; png: string }> {
  const svg = lossCurveSvg(history, title);
  const files = { svg: path.join(dir, 'loss.svg'), png: path.join(dir, 'loss.png') };
  writeFileAtomic(files.svg, svg);
  writeFileAtomic(files.png, await sharp(Buffer.from(svg)).png().toBuffer());
  return files;
}
