/**
 * `sat serve` as a child process (the CLI, the model on its own thread): SIGTERM while requests are in
 * flight answers all of them, refuses new connections, and exits 0.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { makeTinyModel, solidImage, type TinyModel } from './serve-fixture.js';

let dir: string;
let tiny: TinyModel;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-serve-term-'));
  tiny = await makeTinyModel(dir);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('SIGTERM: requests in flight are answered, then the server exits 0', { timeout: 120_000 }, async () => {
  // A long batch wait keeps the requests queued when the signal comes.
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--model', tiny.run, ...tiny.encoderFlags,
    '--port', '0', '--batch-wait-ms', '400', '--max-batch', '8'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk;
        const ready = /ready: .* page at (http:\/\/127\.0\.0\.1:\d+)\//.exec(stderr);
        if (ready) resolve(ready[1]);
      });
      void exited.then((code) => reject(new Error(`sat serve exited (${code}) before it was ready:\n${stderr}`)));
    });
    const red = new Uint8Array(await solidImage('#e01010'));
    const inFlight = Array.from({ length: 4 }, () => fetch(`${url}/v1/captions`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: red }));
    await new Promise((r) => setTimeout(r, 150));
    child.kill('SIGTERM');
    const answers = await Promise.all(inFlight.map(async (r) => { const res = await r; return [res.status, (await res.json()).caption]; }));
    assert.deepEqual(answers, Array(4).fill([200, 'a red square']));
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /SIGTERM: finishing the requests in flight/);
    await assert.rejects(fetch(`${url}/healthz`)); // nothing listens any more
  } finally {
    child.kill('SIGKILL');
  }
});
