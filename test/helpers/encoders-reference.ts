/**
 * Plain-loop reference ops on one NHWC image, written straight from TensorFlow's definitions and
 * independent of the ONNX code (no layout transposes): the encoder tests compare our graphs to these.
 */
export interface Image3 {
  data: Float32Array;
  h: number;
  w: number;
  c: number;
}

export const at = (m: Image3, y: number, x: number, ch: number) => m.data[(y * m.w + x) * m.c + ch];

/** TF padding: SAME -> out = ceil(in / s), odd pad at the end; VALID -> no padding. */
function pads(size: number, k: number, s: number, same: boolean): [out: number, before: number] {
  if (!same) return [Math.floor((size - k) / s) + 1, 0];
  const out = Math.ceil(size / s);
  return [out, Math.floor(Math.max((out - 1) * s + k - size, 0) / 2)];
}

/**
 * Convolution; `weight(o, ky, kx, i)` reads the filter in whatever layout the caller stores it.
 * Depthwise: one filter per channel (`i` is always 0, output channel o reads input channel o).
 */
export function conv2d(
  x: Image3,
  weight: (o: number, ky: number, kx: number, i: number) => number,
  o: {
    cout: number;
    kh: number;
    kw: number;
    stride: number;
    same: boolean;
    bias?: ArrayLike<number>;
    depthwise?: boolean;
  },
): Image3 {
  const [oh, top] = pads(x.h, o.kh, o.stride, o.same);
  const [ow, left] = pads(x.w, o.kw, o.stride, o.same);
  const out: Image3 = { data: new Float32Array(oh * ow * o.cout), h: oh, w: ow, c: o.cout };
  for (let y = 0; y < oh; y++) {
    for (let xx = 0; xx < ow; xx++) {
      for (let co = 0; co < o.cout; co++) {
        let sum = o.bias ? o.bias[co] : 0;
        for (let ky = 0; ky < o.kh; ky++) {
          const iy = y * o.stride + ky - top;
          if (iy < 0 || iy >= x.h) continue;
          for (let kx = 0; kx < o.kw; kx++) {
            const ix = xx * o.stride + kx - left;
            if (ix < 0 || ix >= x.w) continue;
            if (o.depthwise) sum += at(x, iy, ix, co) * weight(co, ky, kx, 0);
            else for (let ci = 0; ci < x.c; ci++) sum += at(x, iy, ix, ci) * weight(co, ky, kx, ci);
          }
        }
        out.data[(y * ow + xx) * o.cout + co] = sum;
      }
    }
  }
  return out;
}

export function map(x: Image3, f: (v: number, ch: number) => number): Image3 {
  return { ...x, data: x.data.map((v, i) => f(v, i % x.c)) };
}

export function add(a: Image3, b: Image3): Image3 {
  return { ...a, data: a.data.map((v, i) => v + b.data[i]) };
}

/** 3x3 stride-1 SAME average pooling that averages real pixels only (Keras/TF semantics). */
export function avgPoolSame3(x: Image3): Image3 {
  const out: Image3 = { ...x, data: new Float32Array(x.data.length) };
  for (let y = 0; y < x.h; y++)
    for (let xx = 0; xx < x.w; xx++)
      for (let ch = 0; ch < x.c; ch++) {
        let sum = 0,
          n = 0;
        for (let dy = -1; dy <= 1; dy++)
          for (let dx = -1; dx <= 1; dx++) {
            const iy = y + dy,
              ix = xx + dx;
            if (iy >= 0 && iy < x.h && ix >= 0 && ix < x.w) {
              sum += at(x, iy, ix, ch);
              n++;
            }
          }
        out.data[(y * x.w + xx) * x.c + ch] = sum / n;
      }
  return out;
}

export function concat(parts: Image3[]): Image3 {
  const c = parts.reduce((s, p) => s + p.c, 0);
  const { h, w } = parts[0];
  const out: Image3 = { data: new Float32Array(h * w * c), h, w, c };
  for (let p = 0, off = 0; p < parts.length; off += parts[p].c, p++)
    for (let i = 0; i < h * w; i++)
      for (let ch = 0; ch < parts[p].c; ch++) out.data[i * c + off + ch] = parts[p].data[i * parts[p].c + ch];
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function randomArray(n: number, next: () => number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => (next() * 2 - 1) * scale);
}

/**
 * Shapes of every ImageNet MobileNetV2 1.0 trunk tensor, keyed by name (OHWI conv weights, [1, 3, 3, C]
 * depthwise weights, [C] biases), walking `blocks` in order: 32-channel stem, 16-channel first block,
 * expansion 6, block outputs 24,24,32,32,32,64,64,64,64,96,96,96,160,160,160,320, then 1280.
 */
export function mobilenetV2Shapes(
  blocks: { name: string; convs: { weight: string; bias: string; depthwise: boolean }[] }[],
): Map<string, number[]> {
  const outs = [24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320];
  const shapes = new Map<string, number[]>();
  let cin = 3;
  for (const [bi, block] of blocks.entries()) {
    for (const c of block.convs) {
      const isProject = c.bias.includes('project');
      const cout = c.depthwise
        ? cin
        : block.name === 'Conv'
          ? 32
          : block.name === 'Conv_1'
            ? 1280
            : isProject
              ? bi === 1
                ? 16
                : outs[bi - 2]
              : cin * 6;
      const k = block.name === 'Conv' ? 3 : 1; // the stem is the only full 3x3 conv
      shapes.set(c.weight, c.depthwise ? [1, 3, 3, cin] : [cout, k, k, cin]);
      shapes.set(c.bias, [cout]);
      cin = cout;
    }
  }
  return shapes;
}
