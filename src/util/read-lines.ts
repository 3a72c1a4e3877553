/**
 * A text file's lines, read synchronously in fixed-size pieces: the file is never one string in memory, so a
 * large JSONL file costs its parsed records, not its text as well. Lines are split on "\n" (a trailing "\r" is
 * dropped); the last line needs no newline. Multi-byte UTF-8 characters split across pieces decode correctly.
 */
import fs from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

/** Calls `visit(line, lineNumber)` (1-based) for every line of `file`, empty lines included. */
export function forEachLine(
  file: string,
  visit: (line: string, lineNumber: number) => void,
  pieceBytes = 1 << 20,
): void {
  const fd = fs.openSync(file, 'r');
  try {
    const piece = Buffer.allocUnsafe(pieceBytes);
    const decoder = new StringDecoder('utf8');
    let pending = '',
      lineNumber = 0;
    const emit = (line: string) => visit(line.endsWith('\r') ? line.slice(0, -1) : line, ++lineNumber);
    for (;;) {
      const n = fs.readSync(fd, piece, 0, pieceBytes, null);
      const text = n > 0 ? pending + decoder.write(piece.subarray(0, n)) : pending + decoder.end();
      let start = 0;
      for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
        emit(text.slice(start, nl));
        start = nl + 1;
      }
      pending = text.slice(start);
      if (n === 0) break;
    }
    if (pending.length > 0) emit(pending);
  } finally {
    fs.closeSync(fd);
  }
}
