/**
 * The index.html of both captioning pages, from one template (src/web/page/index.html; Node only, at build time):
 *
 *   'served'  the `sat serve` page: assets under /assets/, the "caption in this browser" switch and its result
 *   'site'    the static site of `sat export --site`: relative assets, everything runs in the browser
 *
 * A template line that ends in <!--served--> or <!--site--> belongs to that page only (the marker is dropped);
 * every other line, to both. The template's own comment about this is dropped too.
 */
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../util/package-files.js';

export const PAGE_KINDS = ['served', 'site'] as const;
export type PageKind = (typeof PAGE_KINDS)[number];

/** The template's path under the package root (in the sources; a built package ships the rendered pages). */
export const PAGE_TEMPLATE = path.join('src', 'web', 'page', 'index.html');

const MARKER = /<!--(served|site)-->$/;
const TEMPLATE_NOTE = /^<!-- The one page of both builds[\s\S]*?-->\n/m;

/** The template rendered for one page. */
export function renderPageHtml(template: string, kind: PageKind): string {
  const lines = template.replace(TEMPLATE_NOTE, '').split('\n');
  return lines
    .flatMap((line) => {
      const marker = MARKER.exec(line);
      if (!marker) return [line];
      return marker[1] === kind ? [line.slice(0, marker.index)] : [];
    })
    .join('\n');
}

/** The page of `kind`, rendered from this checkout's template. */
export function pageHtml(kind: PageKind): string {
  return renderPageHtml(fs.readFileSync(path.join(packageRoot(), PAGE_TEMPLATE), 'utf8'), kind);
}
