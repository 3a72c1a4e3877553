/**
 * A small RFC 4180 CSV parser: comma separated, fields optionally in double quotes, a quote inside a
 * quoted field written as "", commas and newlines allowed inside quotes, CRLF or LF line ends.
 * Enough for "image,caption" files written by spreadsheets or Python's csv module.
 */
import { UserError } from '../util/errors.js';

/** Parse CSV text into rows of fields. `source` names the file in error messages. */
export function parseCsv(text: string, source = 'CSV'): string[][] {
  return parseCsvLines(text, source).map((r) => r.fields);
}

/** Parse CSV text into rows of fields, each with the line it starts on (1-based). */
export function parseCsvLines(text: string, source = 'CSV'): { fields: string[]; line: number }[] {
  const rows: { fields: string[]; line: number }[] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false; // inside a quoted field
  let line = 1;
  let rowLine = 1;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // skip a UTF-8 byte order mark
  const endField = () => {
    row.push(field);
    field = '';
  };
  const endRow = () => {
    endField();
    if (!(row.length === 1 && row[0] === '')) rows.push({ fields: row, line: rowLine }); // blank lines are not rows
    row = [];
  };
  for (; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else {
        if (c === '\n') line++;
        field += c;
      }
    } else if (c === '"') {
      if (field !== '')
        throw new UserError(
          `${source} line ${line}: a quote inside an unquoted field; quote the whole field and double inner quotes ("").`,
        );
      quoted = true;
    } else if (c === ',') endField();
    else if (c === '\n') {
      endRow();
      line++;
      rowLine = line;
    } else if (c === '\r' && text[i + 1] === '\n') {
      /* CRLF: the \n ends the row */
    } else field += c;
  }
  if (quoted)
    throw new UserError(`${source}: unterminated quoted field at the end of the file (started before line ${line}).`);
  if (field !== '' || row.length > 0) endRow();
  return rows;
}
