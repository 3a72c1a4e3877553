/**
 * Writes the zip fixtures of test/dataset-zip.test.ts with real zip tools, next to the hand-made archives of
 * test/helpers/zip-fixture.ts (which are written with the reader's own CRC and carry no extra fields):
 *
 *   infozip.zip          Info-ZIP `zip` with an archive comment; deflated and stored (-n .bin) entries, a folder,
 *                        and the extended-timestamp / unix extra fields, longer in the local header than in the
 *                        central directory (a reader that takes the data offset from the directory reads garbage)
 *   infozip-fd.zip       `zip -fd`: every entry followed by a data descriptor
 *   infozip-stdin.zip    `zip - -` fed from a pipe: a streamed entry named "-" (data descriptor, ZIP64 extra)
 *   infozip-zip64.zip    `zip -fz`: ZIP64 extra fields and a ZIP64 end record and locator
 *   python-zip64.zip     Python zipfile with force_zip64: a ZIP64 extra field in each local header only (so the
 *                        local extra field is 20 bytes, the directory's 0), and a comment
 *   python-stream.zip    Python zipfile writing to a pipe (not seekable): data descriptors with their signature, as
 *                        macOS Archive Utility and Java write them
 *
 * and expected.json: each archive's files with their SHA-256. Needs Debian's zip and unzip (`apt-get install zip
 * unzip`) and python3; the tests read the committed files and need none of them.
 * Run: node --import tsx scripts/zip-fixtures.ts
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const OUT = path.resolve(import.meta.dirname, '../test/fixtures/zip');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-zipfix-'));
const src = path.join(work, 'src');

/** Deterministic contents: compressible text, incompressible bytes (stored), a nested file, an empty file. */
const files: Record<string, Buffer> = {
  'captions.txt': Buffer.from(
    Array.from({ length: 60 }, (_, i) => `image${i}.jpg a dog runs on the grass number ${i}\n`).join(''),
  ),
  'noise.bin': Buffer.from(Array.from({ length: 700 }, (_, i) => (i * 2654435761) >>> 24)),
  'images/readme.txt': Buffer.from('nested file\n'.repeat(20)),
  'empty.txt': Buffer.alloc(0),
};
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
for (const [name, data] of Object.entries(files)) {
  fs.mkdirSync(path.dirname(path.join(src, name)), { recursive: true });
  fs.writeFileSync(path.join(src, name), data);
}
/** Fixed access and modification times (Info-ZIP stores both): set again before each tool, since reading moves atime. */
const fixTimes = () => {
  for (const name of [...Object.keys(files), 'images'])
    fs.utimesSync(path.join(src, name), 1_700_000_000, 1_700_000_000);
};
const run = (cmd: string, args: string[], input?: Buffer) => {
  fixTimes();
  return execFileSync(cmd, args, {
    cwd: src,
    input,
    env: { ...process.env, TZ: 'UTC' },
    stdio: [input ? 'pipe' : 'ignore', 'pipe', 'inherit'],
  });
};
const names = Object.keys(files).sort();
const expected: Record<string, Record<string, string>> = {};
const all = Object.fromEntries(names.map((n) => [n, sha(files[n])]));

fs.rmSync(OUT, { recursive: true, force: true });
fs.mkdirSync(OUT, { recursive: true });
run(
  'zip',
  ['-q', '-n', '.bin', '-z', path.join(OUT, 'infozip.zip'), ...names, 'images/'],
  Buffer.from('fixture archive comment\n'),
);
expected['infozip.zip'] = all;
run('zip', ['-q', '-fd', '-n', '.bin', path.join(OUT, 'infozip-fd.zip'), ...names]);
expected['infozip-fd.zip'] = all;
run('zip', ['-q', '-fz', '-n', '.bin', path.join(OUT, 'infozip-zip64.zip'), ...names]);
expected['infozip-zip64.zip'] = all;
fs.writeFileSync(path.join(OUT, 'infozip-stdin.zip'), run('zip', ['-q', '-', '-'], files['captions.txt']));
expected['infozip-stdin.zip'] = { '-': sha(files['captions.txt']) };
run('/usr/bin/python3', [
  '-c',
  `
import zipfile, sys
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    z.comment = b'python zip64 fixture'
    for name in sys.argv[2:]:
        info = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
        info.compress_type = zipfile.ZIP_STORED if name.endswith('.bin') else zipfile.ZIP_DEFLATED
        with z.open(info, 'w', force_zip64=True) as f:
            f.write(open(name, 'rb').read())
`,
  path.join(OUT, 'python-zip64.zip'),
  ...names,
]);
expected['python-zip64.zip'] = all;
fs.writeFileSync(
  path.join(OUT, 'python-stream.zip'),
  run('/usr/bin/python3', [
    '-c',
    `
import zipfile, sys
with zipfile.ZipFile(sys.stdout.buffer, 'w', zipfile.ZIP_DEFLATED) as z:
    for name in sys.argv[1:]:
        info = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, 'w') as f:
            f.write(open(name, 'rb').read())
`,
    ...names,
  ]),
);
expected['python-stream.zip'] = all;

for (const f of Object.keys(expected)) run('unzip', ['-tq', path.join(OUT, f)]); // the real tool accepts each archive
fs.writeFileSync(path.join(OUT, 'expected.json'), JSON.stringify(expected, null, 2) + '\n');
fs.rmSync(work, { recursive: true, force: true });
console.log(`wrote ${Object.keys(expected).join(', ')} to ${path.relative(process.cwd(), OUT)}`);
