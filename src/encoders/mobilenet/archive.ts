import { gunzipSync } from 'node:zlib';
import { ParseError } from '../../util/parse-error.js';

/** Largest tar a .tar.gz may inflate to (default 1 GiB; the MobileNetV2 archive holds about 80 MB). */
export const TAR_MAX_BYTES = 2 ** 30;

/**
 * One file out of a .tar or .tar.gz held in memory. Tar is a sequence of 512-byte headers, each followed by
 * the file's bytes padded to 512: name at 0 (100 bytes), size in octal at 124 (12), type flag at 156
 * ('0' or NUL = file, 'L' = GNU long name for the next entry), ustar prefix at 345 (155). Two zero
 * blocks end the archive.
 */
export function extractFromTar(
  archive: Uint8Array,
  wanted: (name: string) => boolean,
  source: string,
  maxBytes = TAR_MAX_BYTES,
): { name: string; data: Uint8Array } {
  let tar = archive;
  if (archive[0] === 0x1f && archive[1] === 0x8b) {
    try {
      tar = new Uint8Array(gunzipSync(archive, { maxOutputLength: maxBytes }));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ParseError(
        code === 'ERR_BUFFER_TOO_LARGE'
          ? `${source} inflates to more than ${maxBytes} bytes; it is not the archive expected.`
          : `${source} is not a valid gzip file (${(e as Error).message}); download it again.`,
      );
    }
  }
  const text = (from: number, len: number) => {
    const b = tar.subarray(from, from + len);
    const end = b.indexOf(0);
    return new TextDecoder().decode(end >= 0 ? b.subarray(0, end) : b);
  };
  const names: string[] = [];
  let longName: string | undefined;
  let pos = 0;
  for (; pos + 512 <= tar.length;) {
    if (tar.subarray(pos, pos + 512).every((b) => b === 0)) break;
    const sizeText = text(pos + 124, 12).trim() || '0';
    if (!/^[0-7]{1,12}$/.test(sizeText))
      throw new ParseError(`${source}: corrupt tar header at byte ${pos} (size ${JSON.stringify(sizeText)}).`);
    const size = parseInt(sizeText, 8);
    const type = String.fromCharCode(tar[pos + 156]);
    const data = tar.subarray(pos + 512, pos + 512 + size);
    if (data.length < size)
      throw new ParseError(`${source}: the archive ends inside "${text(pos, 100)}" (truncated download?).`);
    if (type === 'L') {
      longName = new TextDecoder().decode(data).replace(/\0+$/, '');
    } else {
      const prefix = text(pos + 345, 155);
      const name = longName ?? (prefix ? `${prefix}/${text(pos, 100)}` : text(pos, 100));
      longName = undefined;
      if ((type === '0' || type === '\0') && wanted(name)) return { name, data };
      names.push(name);
    }
    pos += 512 + Math.ceil(size / 512) * 512;
  }
  if (pos + 512 > tar.length)
    throw new ParseError(`${source}: the archive ends inside an entry header (truncated download?).`);
  throw new ParseError(
    `${source} does not contain the expected file (it has: ${names.slice(0, 10).join(', ') || 'nothing'}).`,
  );
}
