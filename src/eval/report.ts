/**
 * The HTML page of `sat eval`: the metrics table and a sample of images with the generated caption next to
 * the human references, the image's own CIDEr-D, and its attention figure. Every link is relative to the
 * output folder (images and figures are copied/written into it), so the folder can be zipped and shared.
 */
import { SCORE_NAMES, type Scores } from '../metrics/score.js';
import { rates, type AttentionCheck } from './attention-check.js';

export interface ReportItem {
  id: string;
  image: string | null; // relative path of the copied image, null when the file could not be read
  figure: string | null; // relative path of the attention figure
  caption: string;
  finished: boolean; // false: cut at max length
  references: string[];
  cider: number; // this image's CIDEr-D (document frequencies from the whole evaluated split)
}

export interface ReportHeader {
  title: string; // e.g. "runs/f8k: dev split, checkpoint best (epoch 7)"
  details: string[]; // lines under the title: decoding, images, time
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function attentionSection(check: AttentionCheck): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const rows = (['colour', 'shape', 'all'] as const)
    .map((k) => {
      const r = rates(check[k]);
      return (
        `<tr><td>${k}</td><td>${r.words}</td><td>${pct(r.peakHitRate)}</td><td>${pct(r.peakChance)}</td>` +
        `<td>${pct(r.massInBox)}</td><td>${pct(r.massChance)}</td></tr>`
      );
    })
    .join('\n');
  return `<h2>Attention check</h2>
<p>For each generated word naming a colour or shape present in the image: does the attention peak (its cell of the
${check.grid}&times;${check.grid} grid) overlap the named object's ground-truth box, and how much attention mass lies in
the box? Chance: the fraction of cells overlapping the box, and the box's area fraction (uniform attention).
${check.absent > 0 ? `${check.absent} words named something not in the image and are not scored.` : ''}</p>
<table><tr><th>words</th><th>scored</th><th>peak on box</th><th>chance</th><th>mass in box</th><th>chance</th></tr>
${rows}
</table>`;
}

export function reportHtml(header: ReportHeader, scores: Scores, items: ReportItem[], check?: AttentionCheck): string {
  const metricRows = SCORE_NAMES.map((n) => `<tr><td>${n}</td><td>${scores[n].toFixed(4)}</td></tr>`).join('\n');
  const sample = items
    .map(
      (it) => `<tr>
<td>${it.image ? `<img src="${esc(it.image)}" width="160" alt="${esc(it.id)}">` : ''}<br><small>${esc(it.id)}</small></td>
<td><b>${esc(it.caption) || '<i>(empty)</i>'}</b>${it.finished ? '' : ' <i>(cut at max length)</i>'}<br>
<small>CIDEr-D ${it.cider.toFixed(3)}</small><ul>${it.references.map((r) => `<li>${esc(r)}</li>`).join('')}</ul></td>
<td>${it.figure ? `<a href="${esc(it.figure)}"><img src="${esc(it.figure)}" width="420" alt="attention of ${esc(it.id)}"></a>` : ''}</td>
</tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${esc(header.title)}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1100px}td,th{vertical-align:top;padding:4px 8px;border-bottom:1px solid #ddd;text-align:left}
ul{margin:4px 0;padding-left:1.2em;color:#444}</style></head><body>
<h1>${esc(header.title)}</h1>
${header.details.map((d) => `<p>${esc(d)}</p>`).join('\n')}
<table><tr><th>metric</th><th>score</th></tr>
${metricRows}
<tr><td>METEOR, SPICE</td><td>not computed (they need the official Java jars)</td></tr>
</table>
${check ? attentionSection(check) : ''}
<h2>Sample of ${items.length} images</h2>
<table><tr><th>image</th><th>generated caption, its CIDEr-D, human references</th><th>attention per word</th></tr>
${sample}
</table></body></html>
`;
}
