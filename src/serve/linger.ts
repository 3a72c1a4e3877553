/**
 * Lingering close (nginx's lingering_close): a connection that ends with a refusal sent before the request's body
 * was read keeps reading, and discarding, what the client still sends, so the client can finish writing and read
 * the answer. Closing at once would leave unread bytes in the kernel's receive buffer, and closing such a socket
 * sends a TCP reset: the client's pending write fails (EPIPE, ECONNRESET) and the answer it was sent is often lost.
 *
 * While a connection lingers, its answer has been sent and its write side is shut (FIN); it is closed once
 *   - the request's body has all arrived (the HTTP parser reads it on, into nothing), or
 *   - the client closes its side, or
 *   - more than --linger-bytes have been discarded, or --linger seconds have passed
 * whichever comes first. The last two bound what a client that never stops sending can hold: a connection place
 * (--max-connections) for --linger seconds.
 *
 * Two ways in: Node ends a `Connection: close` response with socket.destroySoon(), replaced here for sockets whose
 * request body is unread; and the clientError answers (request timeout, malformed request), which write the answer
 * themselves and hand the socket over (the HTTP parser is detached there: the bytes that follow cannot be parsed).
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';

export interface LingerLimits {
  /** Longest a refused connection is read on after its answer; 0: closed at once. */
  lingerMs: number;
  /** Most bytes discarded from a refused connection after its answer. */
  lingerBytes: number;
}

/** Why a lingering connection was closed (for the tests and the metrics). */
export type LingerEnd = 'body-read' | 'client-closed' | 'bytes' | 'time' | 'error';

export interface LingerHooks {
  onStart?(): void;
  onEnd?(why: LingerEnd): void;
}

const lingering = new WeakSet<Socket>();
/** How often a lingering connection's discarded bytes are checked against --linger-bytes. */
const METER_EVERY_MS = 50;

/** Make `server` linger on connections it closes with a request body still unread. */
export function installLingeringClose(server: Server, limits: LingerLimits, hooks: LingerHooks = {}): void {
  const current = new WeakMap<Socket, IncomingMessage>();
  server.on('request', (request: IncomingMessage) => current.set(request.socket, request));
  server.on('connection', (socket: Socket) => {
    const destroySoon = socket.destroySoon;
    if (typeof destroySoon !== 'function') return;
    socket.destroySoon = function lingerOrDestroySoon(this: Socket) {
      const request = current.get(socket);
      if (request && !request.complete && limits.lingerMs > 0) lingerAfterAnswer(socket, limits, hooks, request);
      else destroySoon.call(this);
    };
  });
}

/** Whether `socket` is lingering already (its answer sent, its close decided). */
export const isLingering = (socket: Socket): boolean => lingering.has(socket);

/**
 * Shut `socket`'s write side once what was written has gone out, read on and discard until the body ends (when
 * `request` is given and its parser still reads), the client closes, or a limit is reached; then close it.
 */
export function lingerAfterAnswer(
  socket: Socket,
  limits: LingerLimits,
  hooks: LingerHooks = {},
  request?: IncomingMessage,
): void {
  if (lingering.has(socket) || socket.destroyed) return;
  lingering.add(socket);
  hooks.onStart?.();
  const startBytes = socket.bytesRead;
  let ended = false;
  const end = (why: LingerEnd) => {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    clearInterval(meter);
    hooks.onEnd?.(why);
    // A body read to its end leaves nothing unread: this close is a FIN. Any other is a reset, as it must be.
    if (why === 'body-read' && !socket.writableFinished) socket.once('finish', () => socket.destroy());
    else socket.destroy();
  };
  const timer = setTimeout(() => end('time'), limits.lingerMs);
  // Bytes are counted from socket.bytesRead: a 'data' listener would take the socket from the HTTP parser.
  const meter = setInterval(() => {
    if (socket.bytesRead - startBytes > limits.lingerBytes) end('bytes');
  }, METER_EVERY_MS);
  timer.unref();
  meter.unref();
  socket.once('end', () => end('client-closed'));
  socket.once('error', () => end('error'));
  socket.once('close', () => end('client-closed'));
  if (request) {
    if (request.complete) return end('body-read');
    request.once('end', () => end('body-read'));
    request.once('error', () => end('error'));
    request.resume(); // the body is discarded whoever stopped reading it (a body parser that gave up)
  } else {
    // No parser can follow the bytes (it failed, or gave up): they are discarded raw.
    socket.removeAllListeners('data');
    socket.on('data', () => undefined);
  }
  socket.resume();
  socket.end();
}
