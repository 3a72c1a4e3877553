/**
 * Caption requests whose bodies are still arriving, counted apart from the queue: a request takes an upload place
 * when its headers have arrived and gives it back once its body is read (or it ends), and only then asks for a
 * queue place. So clients that send slowly hold upload places, never queue places.
 *
 *   --max-uploads        uploads in flight at once; one more is refused (503 uploads_full), unless an upload
 *                        slower than --min-upload-rate can be cut to make room (the slowest, 408)
 *   --min-upload-rate    bytes/s an upload must average once --upload-grace has passed (its first seconds are
 *                        free, for connection set-up); slower: cut with 408 upload_too_slow and the connection closed
 *
 * Progress is the socket's bytesRead since the request's headers arrived: nothing is read from the body here, so
 * the body parsers see every byte. Memory held by bodies in flight stays below max-uploads x max-bytes.
 */
import type { Socket } from 'node:net';
import { ERRORS, refuse, type Refusal } from './errors.js';

export interface UploadLimits {
  maxUploads: number;
  /** Bytes per second; 0: no minimum. */
  minUploadRate: number;
  uploadGraceMs: number;
}

export interface Upload {
  readonly socket: Socket;
  readonly startedAt: number;
  readonly startBytes: number;
  /** Whether the whole body has arrived (it is no longer judged, though its place is given back only when it is read). */
  complete(): boolean;
  /** Answer the request with `refusal` and close its connection. */
  cut(refusal: Refusal): void;
}

/** An upload may be cut to make room only after this long: a client just connected has had no chance to send. */
const EVICTABLE_AFTER_MS = 250;
const CHECK_EVERY_MS = 100;

export class UploadTracker {
  private readonly uploads = new Set<Upload>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly limits: UploadLimits,
    private readonly onChange: (inFlight: number) => void = () => undefined,
  ) {}

  get inFlight(): number {
    return this.uploads.size;
  }

  /** Take an upload place for `upload`, cutting the slowest upload behind the minimum rate if none is free; else throw uploads_full. */
  admit(upload: Upload, now = performance.now()): void {
    if (this.uploads.size >= this.limits.maxUploads) {
      const victim = this.slowest(now);
      if (!victim) {
        throw refuse(ERRORS.uploads_full, `${this.uploads.size} uploads are in flight`, {
          value: this.limits.maxUploads,
        });
      }
      this.cut(victim, now, 'cut to make room for another request');
    }
    this.uploads.add(upload);
    this.onChange(this.uploads.size);
    if (this.limits.minUploadRate > 0) this.timer ??= setInterval(() => this.check(), CHECK_EVERY_MS).unref();
  }

  /** Give `upload`'s place back (its body was read, or the request ended); idempotent. */
  finish(upload: Upload): void {
    if (!this.uploads.delete(upload)) return;
    this.onChange(this.uploads.size);
    if (this.uploads.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private received = (u: Upload) => u.socket.bytesRead - u.startBytes;

  /** Bytes `u` is behind the minimum rate (counted from its start, not its grace); <= 0: on time. */
  private deficit(u: Upload, now: number): number {
    return (this.limits.minUploadRate * (now - u.startedAt)) / 1000 - this.received(u);
  }

  /** The upload furthest behind the minimum rate, among those old enough to judge; null when none is behind. */
  private slowest(now: number): Upload | null {
    if (this.limits.minUploadRate <= 0) return null;
    let worst: Upload | null = null;
    for (const u of this.uploads) {
      if (u.complete() || now - u.startedAt < EVICTABLE_AFTER_MS || this.deficit(u, now) <= 0) continue;
      if (!worst || this.deficit(u, now) > this.deficit(worst, now)) worst = u;
    }
    return worst;
  }

  /** Cut every upload that, past its grace, has averaged less than the minimum rate. */
  private check(now = performance.now()): void {
    for (const u of this.uploads) {
      const after = now - u.startedAt - this.limits.uploadGraceMs;
      if (after > 0 && !u.complete() && this.received(u) < (this.limits.minUploadRate * after) / 1000)
        this.cut(u, now, 'too slow');
    }
  }

  private cut(u: Upload, now: number, why: string): void {
    this.finish(u);
    const seconds = (now - u.startedAt) / 1000;
    u.cut(
      refuse(
        ERRORS.upload_too_slow,
        `${why}: ${this.received(u)} bytes in ${seconds.toFixed(1)} s, ` +
          `less than ${this.limits.minUploadRate} bytes/s`,
        { value: this.limits.minUploadRate },
      ),
    );
  }
}
