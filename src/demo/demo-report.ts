/**
 * Scoring and the HTML page of `sat demo`: held-out synthetic shapes captions against their ground truth.
 *
 *  - exact: the generated caption equals one of the image's reference captions (after tokenisation)
 *  - word accuracy: position-wise matching words against the closest reference, divided by the longer
 *    of the two lengths (so missing or extra words count as errors)
 *  - objects right: the set of "<colour> <shape>" pairs the caption names equals the set of objects
 *    drawn in the image (from the generator's ground truth); this ignores wording and relations
 */
import { SHAPE_COLORS, SHAPE_KINDS, type ShapeObject } from '../dataset/shapes.js';

export interface CaptionResult {
  id: string;
  image: string; // path relative to the demo folder, for the HTML page
  generated: string;
  references: string[]; // tokenised, joined with spaces
  exact: boolean;
  wordAccuracy: number;
  objectsRight: boolean;
  attentionFigure?: string; // path relative to the demo folder
}

export interface DemoScores {
  images: number;
  exact: number; // count
  wordAccuracy: number; // mean over images
  objectsRight: number; // count
}

export function wordAccuracy(generated: string[], references: string[][]): number {
  let best = 0;
  for (const ref of references) {
    const n = Math.max(generated.length, ref.length);
    if (n === 0) return 1;
    let same = 0;
    for (let i = 0; i < Math.min(generated.length, ref.length); i++) if (generated[i] === ref[i]) same++;
    best = Math.max(best, same / n);
  }
  return best;
}

/** "<colour> <shape>" pairs named in a caption, as a sorted list of "colour shape". */
export function namedObjects(words: string[]): string[] {
  const out = new Set<string>();
  for (let i = 0; i + 1 < words.length; i++) {
    if (words[i] in SHAPE_COLORS && (SHAPE_KINDS as readonly string[]).includes(words[i + 1]))
      out.add(`${words[i]} ${words[i + 1]}`);
  }
  return [...out].sort();
}

export function scoreCaption(generated: string[], references: string[][], objects: ShapeObject[]) {
  const joined = generated.join(' ');
  const truth = [...new Set(objects.map((o) => `${o.color} ${o.shape}`))].sort();
  return {
    exact: references.some((r) => r.join(' ') === joined),
    wordAccuracy: wordAccuracy(generated, references),
    objectsRight: namedObjects(generated).join('|') === truth.join('|'),
  };
}

export function summarise(results: CaptionResult[]): DemoScores {
  return {
    images: results.length,
    exact: results.filter((r) => r.exact).length,
    wordAccuracy: results.reduce((s, r) => s + r.wordAccuracy, 0) / Math.max(1, results.length),
    objectsRight: results.filter((r) => r.objectsRight).length,
  };
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function demoHtml(results: CaptionResult[], scores: DemoScores, heading: string): string {
  const pct = (n: number) => `${((100 * n) / Math.max(1, scores.images)).toFixed(1)}%`;
  const rows = results
    .map(
      (r) =>
        `<tr class="${r.exact ? 'ok' : r.objectsRight ? 'half' : 'bad'}">
<td><img src="${esc(r.image)}" width="112" height="112" alt="${esc(r.id)}"></td>
<td><b>${esc(r.generated) || '<i>(empty)</i>'}</b><br><small>${r.exact ? 'exact match' : `word accuracy ${(100 * r.wordAccuracy).toFixed(0)}%`}` +
        `${r.objectsRight ? ', objects right' : ', objects wrong'}</small></td>
<td><small>${r.references.map(esc).join('<br>')}</small></td>
<td>${r.attentionFigure ? `<a href="${esc(r.attentionFigure)}">attention</a>` : ''}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>sat demo</title>
<style>body{font-family:sans-serif;margin:2em}td{vertical-align:top;padding:4px 8px;border-bottom:1px solid #ddd}
tr.ok{background:#eaffea}tr.half{background:#fffbe0}tr.bad{background:#ffecec}</style></head><body>
<h1>Show, Attend and Tell on synthetic shapes</h1>
<p>${esc(heading)}</p>
<p>Held-out images: ${scores.images}. Exact caption: ${scores.exact} (${pct(scores.exact)}).
Objects right: ${scores.objectsRight} (${pct(scores.objectsRight)}). Mean word accuracy: ${(100 * scores.wordAccuracy).toFixed(1)}%.</p>
<p><img src="loss.png" alt="loss per epoch" width="480"></p>
<table><tr><th>image</th><th>generated (greedy)</th><th>ground truth</th><th></th></tr>
${rows}
</table></body></html>
`;
}
