/**
 * Which IP addresses a library must not fetch from on a caller's behalf unless told to: loopback, private,
 * link-local, carrier-grade NAT, multicast, documentation, benchmarking and the other special-use ranges of the
 * IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and after). IPv6 forms that carry an IPv4
 * address (IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by that IPv4 address, so
 * [::ffff:127.0.0.1] is loopback. Decimal, octal and hex IPv4 spellings (http://2130706433/, http://0x7f.1/)
 * reach here already normalised by the WHATWG URL parser.
 */
import net from 'node:net';

type Range = readonly [prefix: string, bits: number, kind: string];

const IPV4_RANGES: readonly Range[] = [
  ['0.0.0.0', 8, '"this network"'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'carrier-grade NAT'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'IETF protocol'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, '6to4 relay'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
];

const IPV6_RANGES: readonly Range[] = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['::', 96, 'IPv4-compatible (deprecated)'],
  ['64:ff9b:1::', 48, 'local NAT64'],
  ['100::', 64, 'discard-only'],
  ['2001::', 23, 'IETF protocol'],
  ['2001:db8::', 32, 'documentation'],
  ['3fff::', 20, 'documentation'],
  ['fc00::', 7, 'unique local (private)'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'site-local (deprecated)'],
  ['ff00::', 8, 'multicast'],
];

/**
 * The kind of special-use address `address` is ("loopback", "private", "link-local" ...), or null for an
 * ordinary public unicast address. Brackets around IPv6 are accepted; anything that is not an IP address throws.
 */
export function specialAddressKind(address: string): string | null {
  const ip = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const version = net.isIP(ip);
  if (version === 4) return matchRanges(ipv4Bytes(ip), IPV4_RANGES);
  if (version !== 6) throw new Error(`${JSON.stringify(address)} is not an IP address`);
  const bytes = ipv6Bytes(ip.replace(/%.*$/, '')); // a zone index (fe80::1%eth0) names an interface, not an address
  const embedded = embeddedIpv4(bytes);
  if (embedded) {
    const kind = matchRanges(embedded.v4, IPV4_RANGES);
    return kind === null ? null : `${kind} (${embedded.form} ${embedded.v4.join('.')})`;
  }
  return matchRanges(bytes, IPV6_RANGES);
}

/** The IPv4 address an IPv6 form carries: IPv4-mapped, NAT64 well-known prefix, 6to4. */
function embeddedIpv4(b: Uint8Array): { v4: Uint8Array; form: string } | null {
  const zero = (from: number, to: number) => b.subarray(from, to).every((x) => x === 0);
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return { v4: b.slice(12), form: 'IPv4-mapped' };
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12))
    return { v4: b.slice(12), form: 'NAT64' };
  if (b[0] === 0x20 && b[1] === 0x02) return { v4: b.slice(2, 6), form: '6to4' };
  return null;
}

function matchRanges(bytes: Uint8Array, ranges: readonly Range[]): string | null {
  for (const [prefix, bits, kind] of ranges) {
    const p = bytes.length === 4 ? ipv4Bytes(prefix) : ipv6Bytes(prefix);
    if (samePrefix(bytes, p, bits)) return kind;
  }
  return null;
}

function samePrefix(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (a[i] !== b[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a[whole] & mask) === (b[whole] & mask);
}

function ipv4Bytes(ip: string): Uint8Array {
  return Uint8Array.from(ip.split('.').map(Number));
}

/** 16 bytes of a valid IPv6 address (net.isIP checked), "::" and a trailing dotted IPv4 part included. */
function ipv6Bytes(ip: string): Uint8Array {
  let text = ip;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = ipv4Bytes(dotted[1]);
    text =
      text.slice(0, -dotted[1].length) +
      `${((v4[0] << 8) | v4[1]).toString(16)}:${((v4[2] << 8) | v4[3]).toString(16)}`;
  }
  const [head, rest] = text.includes('::') ? text.split('::') : [text, null];
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  const left = parse(head);
  const right = rest === null ? [] : parse(rest);
  const groups = [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}
