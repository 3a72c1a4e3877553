/**
 * How close the browser's TypeScript resize (src/features/resize.ts resizeToSquareRgb, what show-attend-tell/web
 * runs) comes to sharp's (src/features/image.ts loadRgb, what `sat features` and Node captioning run) on real photos:
 * both start from the same decoded pixels (sharp's decode, EXIF-rotated, sRGB), so only the resize differs.
 *
 *   node --import tsx checks/resize-parity.ts [--size 224] [--limit 20] [--max-diff 1] [--max-differing 0.001] DIR_OR_FILES...
 *
 * Prints per image and over all: max |difference| and mean |difference| in 0..255 levels, and the share of
 * values that differ at all. Verdict (exit 1 otherwise): over all images, max |difference| <= --max-diff and the
 * share of differing values <= --max-differing (shrinking is exact; an axis that is enlarged may be one level off).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { loadRgb } from '../src/features/image.js';
import { resizeToSquareRgb } from '../src/features/resize.js';

const { values, positionals } = parseArgs({
  options: {
    size: { type: 'string', default: '224' },
    limit: { type: 'string', default: '20' },
    'max-diff': { type: 'string', default: '1' },
    'max-differing': { type: 'string', default: '0.001' },
  },
  allowPositionals: true,
});
const size = Number(values.size);
const files = positionals
  .flatMap((p) =>
    fs.statSync(p).isDirectory()
      ? fs
          .readdirSync(p)
          .filter((f) => /\.(jpe?g|png|webp)$/i.test(f))
          .sort()
          .map((f) => path.join(p, f))
      : [p],
  )
  .slice(0, Number(values.limit));

let worst = 0,
  sum = 0,
  count = 0,
  differing = 0;
for (const file of files) {
  const { data, info } = await sharp(file)
    .rotate()
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const ours = resizeToSquareRgb(
    {
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      width: info.width,
      height: info.height,
      channels: 3,
    },
    size,
  );
  const theirs = await loadRgb(file, size);
  let max = 0,
    total = 0,
    diff = 0;
  for (let i = 0; i < ours.length; i++) {
    const d = Math.abs(ours[i] - theirs[i]);
    if (d > max) max = d;
    total += d;
    if (d > 0) diff++;
  }
  worst = Math.max(worst, max);
  sum += total;
  count += ours.length;
  differing += diff;
  console.log(
    `${path.basename(file)} ${info.width}x${info.height} -> ${size}: max ${max}, mean ${(total / ours.length).toFixed(4)}, differing ${((100 * diff) / ours.length).toFixed(2)}%`,
  );
}
console.log(
  `${files.length} images -> ${size}x${size}: max |diff| ${worst}, mean |diff| ${(sum / count).toFixed(4)}, differing ${((100 * differing) / count).toFixed(2)}% of values`,
);
const ok = worst <= Number(values['max-diff']) && differing / count <= Number(values['max-differing']);
console.log(
  ok
    ? 'PASS'
    : `FAIL: max |diff| must be <= ${values['max-diff']} and the differing share <= ${values['max-differing']}`,
);
if (!ok) process.exitCode = 1;
