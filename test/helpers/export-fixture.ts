/**
 * A trained checkpoint made in seconds for the export and Captioner tests: the tiny model of test/helpers/tiny-model.ts
 * trained to caption three solid colours, and a PNG of each colour.
 */
import path from 'node:path';
import sharp from 'sharp';
import type { EncoderOptions } from '../../src/encoders/registry.js';
import type { GruState, InitState } from '../../src/model/types.js';
import { makeTinyRun } from './tiny-model.js';

export { poolEncoderOnnx, SIZE } from './tiny-model.js';
export const COLOURS = { red: [0xe0, 0x10, 0x10], blue: [0x10, 0x30, 0xe0], green: [0x20, 0xc0, 0x30] } as const;
export const CAPTIONS = { red: 'a red square', blue: 'a blue circle on the left', green: 'two green dots' } as const;

export interface CaptionFixture {
  run: string;
  encoder: EncoderOptions;
  /** The same encoder as command-line flags. */
  encoderFlags: string[];
  /** PNG files of the three colours (20x12, resized to 16x16 by the pipeline). */
  images: Record<keyof typeof COLOURS, string>;
}

export async function makeCaptionRun(
  dir: string,
  opts: { gruState?: GruState; initState?: InitState; steps?: number } = {},
): Promise<CaptionFixture> {
  const names = Object.keys(COLOURS) as (keyof typeof COLOURS)[];
  const { run, encoder, encoderFlags } = await makeTinyRun(
    dir,
    names.map((n) => ({ rgb: COLOURS[n], caption: CAPTIONS[n] })),
    { gruState: opts.gruState ?? 'carry', initState: opts.initState ?? 'zeros', steps: opts.steps },
  );
  const images = {} as Record<keyof typeof COLOURS, string>;
  for (const name of names) {
    const [r, g, b] = COLOURS[name];
    images[name] = path.join(dir, `${name}.png`);
    await sharp({ create: { width: 20, height: 12, channels: 3, background: { r, g, b } } })
      .png()
      .toFile(images[name]);
  }
  return { run, encoder, encoderFlags, images };
}
