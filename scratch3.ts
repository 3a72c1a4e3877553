import sharp from 'sharp';
import fs from 'node:fs';
import { resizeToSquareRgb } from './src/features/resize.js';
import { loadRgb } from './src/features/image.js';
const dir = '/work/shared/data/coco-sample/val2017';
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.jpg')).slice(0, 6);
for (const f of files) {
  for (const size of [224, 299]) {
    const ref = await loadRgb(`${dir}/${f}`, size);
    const { data, info } = await sharp(`${dir}/${f}`).rotate().toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const mine = resizeToSquareRgb({ data, width: info.width, height: info.height, channels: 3 }, size);
    let d = 0, mx = 0; for (let i = 0; i < mine.length; i++) { const e = Math.abs(mine[i] - ref[i]); d += e; mx = Math.max(mx, e); }
    console.log(f, info.width, info.height, size, (d / mine.length).toFixed(3), mx);
  }
}
