/**
 * `sat serve` as a child process (the CLI, the model on its own thread): it publishes the checkpoint exported
 * on first use (on a thread of its own) for the page; SIGTERM while requests are in flight (their bodies half
 * uploaded) answers all of them, refuses new connections, and exits 0.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { makeTinyModel, solidImage, type TinyModel } from './helpers/serve-fixture.js';

let dir: string;
let tiny: TinyModel;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sat-serve-term-'));
  tiny = await makeTinyModel(dir);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** POST the first half of `body` now; `finish()` sends the rest and resolves with [status, caption]. */
function halfSent(url: string, body: Buffer): { finish(): Promise<[number, string]> } {
  const request = http.request(`${url}/v1/captions`, {
    method: 'POST',
    headers: { 'content-type': 'image/png', 'content-length': body.length },
  });
  const answer = new Promise<[number, string]>((resolve, reject) => {
    request.on('response', (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk));
      res.on('end', () => resolve([res.statusCode!, JSON.parse(text).caption]));
    });
    request.on('error', reject);
  });
  request.write(body.subarray(0, body.length >> 1));
  return {
    finish: () => {
      request.end(body.subarray(body.length >> 1));
      return answer;
    },
  };
}

/** GET on a connection of its own, closed after the answer (none stays open for the shutdown to close). */
function getOnce(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk));
        res.on('end', () => resolve(text));
      })
      .on('error', reject);
  });
}

test(
  'SIGTERM: requests in flight are answered, new connections refused, then the server exits 0',
  { timeout: 120_000 },
  async () => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli.ts',
        'serve',
        '--model',
        tiny.run,
        ...tiny.encoderFlags,
        '--port',
        '0',
        '--instances',
        '1',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
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
      const model = JSON.parse(await getOnce(`${url}/v1/model`));
      assert.deepEqual(model.browser, {
        available: true,
        module: '/assets/web/show-attend-tell.mjs',
        bundle: '/v1/bundle/',
      });
      const bundle = JSON.parse(await getOnce(`${url}/v1/bundle/manifest.json`));
      assert.equal(bundle.modelId, model.id, 'the published bundle is the served model');
      const red = await solidImage('#e01010');
      // Requests whose bodies are half uploaded are surely in flight when the signal comes.
      const inFlight = Array.from({ length: 3 }, () => halfSent(url, red));
      const admitted = async () => /^sat_uploads_in_flight 3$/m.test(await getOnce(`${url}/metrics`));
      while (!(await admitted())) await new Promise((r) => setTimeout(r, 5));
      child.kill('SIGTERM');
      while (!/SIGTERM: finishing/.test(stderr)) await new Promise((r) => setTimeout(r, 10));
      await assert.rejects(fetch(`${url}/healthz`), 'a new connection after SIGTERM is refused');
      const answers = await Promise.all(inFlight.map((r) => r.finish()));
      assert.deepEqual(answers, Array(3).fill([200, 'a red square']));
      assert.equal(await exited, 0, stderr);
    } finally {
      child.kill('SIGKILL');
    }
  },
);
