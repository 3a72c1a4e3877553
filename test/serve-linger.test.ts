/**
 * Lingering close in `sat serve` (src/serve/linger.ts), over real sockets on 127.0.0.1 (random ports): a client that
 * is still sending when it is refused (413 for a body over --max-bytes, 408 for a request over --timeout, 400 for
 * a malformed request) reads the JSON refusal, its writes never fail (no EPIPE, no ECONNRESET); a client that never
 * stops sending holds its connection no longer than --linger, nor past --linger-bytes (then it is reset).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import type { CaptionEngine } from '../src/serve/engine.js';
import { startServer, type CaptionServer, type ServeOptions } from '../src/serve/server.js';

/** An engine the refusals never reach. */
const engine: CaptionEngine = {
  info: {
    modelId: 'linger-test',
    inputSize: 16,
    maxLength: 8,
    grid: [2, 2],
  } as unknown as CaptionEngine['info'],
  captionBatch: async () => ({ captions: [], modelMs: 0 }),
  dispose: async () => undefined,
};

const servers: CaptionServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function serve(options: Partial<ServeOptions>): Promise<CaptionServer> {
  const server = await startServer(async () => engine, { port: 0, ...options });
  servers.push(server);
  await server.ready;
  return server;
}

interface Exchange {
  status: number;
  body: { error?: { code: string; message: string; fix: string } };
  /** The client's socket error (EPIPE, ECONNRESET ...), '' when none. */
  error: string;
  /** Milliseconds from the answer's first byte to the connection's close. */
  closedAfterAnswerMs: number;
  bytesSent: number;
}

/**
 * POST `head` then body chunks: `chunks` of `chunkBytes` as fast as the socket takes them (waiting for drain), or
 * one byte every `trickleMs` until the server closes. Resolves when the connection closes (or after `deadlineMs`).
 */
function send(
  server: CaptionServer,
  head: string,
  body: { chunks?: number; chunkBytes?: number; trickleMs?: number; chunked?: boolean; stopOnAnswer?: boolean },
  deadlineMs = 10_000,
): Promise<Exchange> {
  const { port } = new URL(server.url);
  return new Promise((resolve) => {
    // allowHalfOpen: the client goes on sending after the server's FIN, as a client that does not read would
    const socket = net.connect({ port: Number(port), host: '127.0.0.1', allowHalfOpen: true });
    let text = '',
      error = '',
      answeredAt = 0,
      bytesSent = 0,
      trickle: NodeJS.Timeout | undefined;
    const deadline = setTimeout(() => socket.destroy(new Error('client deadline')), deadlineMs);
    socket.on('data', (d: Buffer) => {
      if (!answeredAt) answeredAt = performance.now();
      text += d.toString('latin1');
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (error ||= e.code ?? e.message));
    socket.on('close', () => {
      clearTimeout(deadline);
      clearInterval(trickle);
      const [headers, payload = ''] = text.split('\r\n\r\n');
      let parsed = {};
      try {
        parsed = JSON.parse(payload);
      } catch {
        /* no JSON answer */
      }
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1] ?? 0),
        body: parsed,
        error,
        closedAfterAnswerMs: answeredAt ? performance.now() - answeredAt : NaN,
        bytesSent,
      });
    });
    const write = (b: Buffer) => {
      bytesSent += b.length;
      return socket.write(
        body.chunked ? Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]) : b,
      );
    };
    socket.on('connect', async () => {
      socket.write(head);
      if (body.trickleMs !== undefined) {
        trickle = setInterval(() => {
          if (body.stopOnAnswer && answeredAt) socket.end();
          else if (!socket.destroyed && socket.writable) write(Buffer.from('x'));
        }, body.trickleMs);
        return;
      }
      const chunk = Buffer.alloc(body.chunkBytes ?? 65_536, 7);
      for (let i = 0; i < (body.chunks ?? 0) && socket.writable; i++) {
        if (!write(chunk)) await new Promise((r) => (socket.once('drain', r), socket.once('close', r)));
      }
      if (socket.writable) socket.end(body.chunked ? '0\r\n\r\n' : '');
    });
  });
}

const post = (server: CaptionServer, framing: string, connection = 'close') =>
  `POST /v1/captions HTTP/1.1\r\nHost: ${new URL(server.url).host}\r\nContent-Type: image/jpeg\r\n${framing}\r\nConnection: ${connection}\r\n\r\n`;

const linger = async (server: CaptionServer) =>
  (await (await fetch(`${server.url}/metrics`)).text())
    .split('\n')
    .filter((l) => l.startsWith('sat_linger_ends_total'));

test('a body streamed well over --max-bytes gets its 413 and JSON refusal, and its writes never fail', async () => {
  const server = await serve({ maxBytes: 256 * 1024 });
  const size = 64 * 65_536; // 4 MiB, 16 x the limit
  for (const connection of ['close', 'keep-alive']) {
    for (const chunked of [false, true]) {
      const framing = chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${size}`;
      for (let trial = 0; trial < 5; trial++) {
        const what = `${framing}, Connection: ${connection}, trial ${trial}`;
        const r = await send(server, post(server, framing, connection), { chunks: 64, chunked });
        assert.equal(r.status, 413, what);
        assert.equal(r.body.error?.code, 'body_too_large', what);
        assert.match(r.body.error!.fix, /--max-bytes/, what);
        assert.equal(r.error, '', `${what}: the client's socket failed`);
        assert.equal(r.bytesSent, size, what);
      }
    }
  }
  assert.ok(
    (await linger(server)).some((l) => /why="(body-read|client-closed)"/.test(l)),
    (await linger(server)).join(),
  );
});

test('a client that trickles an oversized body forever is closed once --linger has passed', async () => {
  const lingerMs = 400;
  const server = await serve({ maxBytes: 1024, lingerMs });
  const r = await send(server, post(server, 'Content-Length: 10000000'), { trickleMs: 20 });
  assert.equal(r.status, 413);
  assert.equal(r.body.error?.code, 'body_too_large');
  assert.ok(
    r.closedAfterAnswerMs >= lingerMs - 50 && r.closedAfterAnswerMs < lingerMs + 1500,
    `closed ${r.closedAfterAnswerMs.toFixed(0)} ms after the answer (--linger ${lingerMs} ms)`,
  );
  assert.ok(
    (await linger(server)).some((l) => /why="time"\} 1/.test(l)),
    (await linger(server)).join(),
  );
});

test('a client that sends more than --linger-bytes after its refusal is closed then', async () => {
  const server = await serve({ maxBytes: 1024, lingerMs: 5000, lingerBytes: 1 << 20 });
  const r = await send(server, post(server, 'Content-Length: 1000000000'), { chunks: 1600 }); // 100 MiB
  assert.equal(r.status, 413);
  assert.equal(r.body.error?.code, 'body_too_large');
  assert.ok(r.bytesSent < 1600 * 65_536, `${r.bytesSent} bytes sent: the server did not stop reading`);
  assert.ok(r.closedAfterAnswerMs < 4000, `closed ${r.closedAfterAnswerMs} ms after the answer`);
  assert.ok(
    (await linger(server)).some((l) => /why="bytes"\} 1/.test(l)),
    (await linger(server)).join(),
  );
});

test('Node-level refusals (request over --timeout, malformed request) are JSON answers the client reads', async () => {
  const server = await serve({ timeoutMs: 300, minUploadRate: 0, lingerMs: 1000 });
  const timedOut = await send(server, post(server, 'Content-Length: 100000'), { trickleMs: 20, stopOnAnswer: true });
  assert.equal(timedOut.status, 408);
  assert.equal(timedOut.body.error?.code, 'request_timeout');
  assert.equal(timedOut.error, '');
  assert.ok(timedOut.closedAfterAnswerMs < 1000 + 1500, `closed ${timedOut.closedAfterAnswerMs} ms after the answer`);

  const malformed = await send(server, 'POST /v1/captions HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n', {
    chunks: 4,
  });
  assert.equal(malformed.status, 400);
  assert.equal(malformed.body.error?.code, 'bad_request');
  assert.equal(malformed.error, '');
});
