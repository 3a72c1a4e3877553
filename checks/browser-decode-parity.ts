/**
 * How the browser's image decode differs from sharp's: headless Chromium (Debian's /usr/bin/chromium through
 * playwright-core) decodes each image as show-attend-tell/web does (fetch -> createImageBitmap with EXIF
 * orientation -> canvas -> RGBA), and the pixels are compared with sharp's decode as `sat features` runs it
 * (rotate, sRGB, no alpha), at full size and after the shared resize to SIZE (src/features/resize.ts).
 *
 *   node --import tsx checks/browser-decode-parity.ts [--size 224] [--limit 20] [--max-diff 2] DIR
 *
 * Verdict (exit 1 otherwise): at SIZE, no value differs by more than --max-diff levels (the JPEG decoders of
 * Chromium and libvips round a few values differently; the resize itself is exact).
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { loadRgb } from '../src/features/image.js';
import { resizeToSquareRgb } from '../src/features/resize.js';

const { values, positionals } = parseArgs({
  options: {
    size: { type: 'string', default: '224' },
    limit: { type: 'string', default: '20' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    'max-diff': { type: 'string', default: '2' },
  },
  allowPositionals: true,
});
let worstAtSize = 0;
const dir = positionals[0];
const size = Number(values.size);
const files = fs
  .readdirSync(dir)
  .filter((f) => /\.(jpe?g|png)$/i.test(f))
  .sort()
  .slice(0, Number(values.limit));
const server = http.createServer((req, res) => {
  const name = decodeURIComponent(new URL(req.url!, 'http://x').pathname.slice(1));
  if (name === '') {
    res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>decode</title>');
    return;
  }
  if (!files.includes(name)) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'image/jpeg' }).end(fs.readFileSync(path.join(dir, name)));
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
const { chromium } = await import('playwright-core');
const browser = await chromium.launch({ executablePath: values.chromium, args: ['--no-sandbox', '--disable-gpu'] });
const stat = (a: ArrayLike<number>, b: ArrayLike<number>, stride: [number, number]) => {
  let max = 0,
    sum = 0,
    n = 0,
    differing = 0;
  for (let p = 0; p * stride[0] < a.length; p++)
    for (let c = 0; c < 3; c++) {
      const d = Math.abs(a[p * stride[0] + c] - b[p * stride[1] + c]);
      max = Math.max(max, d);
      sum += d;
      n++;
      if (d) differing++;
    }
  return { max, mean: sum / n, differing: differing / n };
};
try {
  const page = await browser.newPage();
  await page.goto(url);
  for (const file of files) {
    const b64 = await page.evaluate(
      async (u) => {
        const blob = await (await fetch(u)).blob();
        const bitmap = await createImageBitmap(blob, {
          imageOrientation: 'from-image',
          premultiplyAlpha: 'none',
          colorSpaceConversion: 'default',
        });
        const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
        const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
        ctx.drawImage(bitmap, 0, 0);
        const { data, width, height } = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
        let s = '';
        for (let i = 0; i < data.length; i += 0x8000) s += String.fromCharCode(...data.subarray(i, i + 0x8000));
        return { b64: btoa(s), width, height };
      },
      url + encodeURIComponent(file),
    );
    const rgba = new Uint8Array(Buffer.from(b64.b64, 'base64'));
    const { data, info } = await sharp(path.join(dir, file))
      .rotate()
      .toColourspace('srgb')
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    const full = stat(rgba, data, [4, 3]);
    const small = stat(
      resizeToSquareRgb({ data: rgba, width: b64.width, height: b64.height, channels: 4 }, size),
      await loadRgb(path.join(dir, file), size),
      [3, 3],
    );
    worstAtSize = Math.max(worstAtSize, small.max);
    console.log(
      `${file} ${info.width}x${info.height}${b64.width !== info.width ? ` (browser ${b64.width}x${b64.height})` : ''}: decoded max ${full.max} mean ${full.mean.toFixed(3)} ` +
        `differing ${(100 * full.differing).toFixed(1)}%; at ${size}: max ${small.max} mean ${small.mean.toFixed(3)} differing ${(100 * small.differing).toFixed(1)}%`,
    );
  }
} finally {
  await browser.close();
  server.close();
}
const ok = worstAtSize <= Number(values['max-diff']);
console.log(
  ok
    ? `PASS: max |diff| at ${size} is ${worstAtSize}`
    : `FAIL: max |diff| at ${size} is ${worstAtSize} > ${values['max-diff']}`,
);
if (!ok) process.exitCode = 1;
