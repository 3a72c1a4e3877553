/**
 * A request the service refuses: an HTTP status, a stable code, a message naming what was wrong, the
 * limit involved (its `sat serve` flag, or what else sets it, and its value) and the fix. Sent as
 *   { "error": { "status", "code", "message", "limit": { "name", "value" }?, "fix" } }
 */
export interface RefusalLimit {
  name: string;            // the flag that sets it ("--max-bytes"), or what else bounds it
  value: number | string;
}

export class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fix: string,
    readonly limit?: RefusalLimit,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'Refusal';
  }

  toJSON() {
    return { error: { status: this.status, code: this.code, message: this.message, ...(this.limit ? { limit: this.limit } : {}), fix: this.fix } };
  }
}

/** "10485760" -> "10 MiB": limits as people read them in messages. */
export function formatBytes(n: number): string {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1 << 10 && n % (1 << 10) === 0) return `${n / (1 << 10)} KiB`;
  return `${n} bytes`;
}
