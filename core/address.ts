/**
 * IP and socket addresses: parsing, formatting and classification.
 *
 * Pure. Runtimes hand us addresses as strings ("127.0.0.1", "::1", "::ffff:10.0.0.1"); parsing them is
 * control-path work (a new flow, a config load), never per forwarded datagram.
 *
 * @module
 */

/** An IP address in network byte order: 4 bytes for IPv4, 16 for IPv6. */
export interface IpAddress {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
}

/** An IP address and a port, as a runtime reports a datagram's peer. */
export interface SocketAddress {
  /** The textual IP, without brackets ("10.0.0.1", "2001:db8::1"). */
  readonly ip: string;
  readonly port: number;
  readonly family: 4 | 6;
}

const V4_PART = /^(0|[1-9]\d{0,2})$/;

/** Parses a dotted-quad IPv4 address, or returns null. Leading zeros are refused (they read as octal elsewhere). */
export function parseIpv4(text: string): IpAddress | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!V4_PART.test(parts[i])) return null;
    const n = Number(parts[i]);
    if (n > 255) return null;
    bytes[i] = n;
  }
  return { family: 4, bytes };
}

const HEXTET = /^[0-9a-fA-F]{1,4}$/;

/** Parses an IPv6 address (with "::" compression and an optional trailing dotted quad), or returns null. */
export function parseIpv6(text: string): IpAddress | null {
  // A zone index ("fe80::1%eth0") names an interface, not an address: refuse it here.
  if (text.length === 0 || text.length > 45 || text.includes("%")) return null;
  const bytes = new Uint8Array(16);
  let head = text;
  let tailV4: IpAddress | null = null;
  const lastColon = text.lastIndexOf(":");
  if (text.indexOf(".", lastColon) !== -1) {
    tailV4 = parseIpv4(text.slice(lastColon + 1));
    if (tailV4 === null) return null;
    head = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = head.split("::");
  if (halves.length > 2) return null;
  const left = halves[0] === "" ? [] : halves[0].split(":");
  const right = halves.length === 2 ? (halves[1] === "" ? [] : halves[1].split(":")) : [];
  const groups = left.length + right.length;
  if (halves.length === 1 ? groups !== 8 : groups > 7) return null;
  const all = [...left, ...new Array<string>(8 - groups).fill("0"), ...right];
  for (let i = 0; i < 8; i++) {
    if (!HEXTET.test(all[i])) return null;
    const n = parseInt(all[i], 16);
    bytes[i * 2] = n >> 8;
    bytes[i * 2 + 1] = n & 0xff;
  }
  if (tailV4 !== null) bytes.set(tailV4.bytes, 12);
  return { family: 6, bytes };
}

/** Parses an IPv4 or IPv6 address (IPv6 may be bracketed), or returns null. */
export function parseIp(text: string): IpAddress | null {
  if (text.startsWith("[") && text.endsWith("]")) return parseIpv6(text.slice(1, -1));
  return text.includes(":") ? parseIpv6(text) : parseIpv4(text);
}

/**
 * True when the 16 bytes at `off` are an IPv4-mapped IPv6 address (::ffff:a.b.c.d, RFC 4291 2.5.5.2): an
 * IPv4 client of a dual-stack socket. The one definition of "mapped": every other unmapping (text, words,
 * CIDR blocks, sockaddr bytes in the native driver) goes through it or `unmappedIpText`/`isIpv4MappedWords`.
 */
export function isIpv4Mapped(bytes: Uint8Array, off = 0): boolean {
  if (bytes[off + 10] !== 0xff || bytes[off + 11] !== 0xff) return false;
  for (let i = 0; i < 10; i++) if (bytes[off + i] !== 0) return false;
  return true;
}

/** `isIpv4Mapped` over an address read as four network-order words (core/ip_words.ts). */
export function isIpv4MappedWords(words: Uint32Array): boolean {
  return words[0] === 0 && words[1] === 0 && words[2] === 0xffff;
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d), or the address unchanged. */
export function unmapIpv4(ip: IpAddress): IpAddress {
  if (ip.family !== 6 || !isIpv4Mapped(ip.bytes)) return ip;
  return { family: 4, bytes: ip.bytes.slice(12, 16) };
}

/**
 * The text of an IP with an IPv4-mapped address (any spelling: "::ffff:10.0.0.1", "::FFFF:a00:1",
 * "0:0:0:0:0:ffff:10.0.0.1") as its dotted IPv4 form; any other text unchanged. Control path: it may parse.
 */
export function unmappedIpText(text: string): string {
  // The cheap answers first: IPv4 text, and IPv6 text that cannot spell ffff.
  if (!text.includes(":") || !/ffff/i.test(text)) return text;
  const ip = parseIpv6(text);
  return ip !== null && isIpv4Mapped(ip.bytes) ? formatIp(unmapIpv4(ip)) : text;
}

/** True when two IP texts name the same client (an IPv4 address and its mapped form are the same). */
export function sameIp(a: string, b: string): boolean {
  return a === b || unmappedIpText(a) === unmappedIpText(b);
}

/**
 * A block of IPv4-mapped addresses (::ffff:0:0/96 and longer) as the IPv4 block it covers
 * ("::ffff:10.0.0.0/104" → 10.0.0.0/8); any other block unchanged. Clients of a dual-stack socket are
 * matched as IPv4 (their words unmap), so a mapped ban or deny block must be IPv4 to ever hold one.
 */
export function unmapCidr(block: Cidr): Cidr {
  if (block.ip.family !== 6 || block.prefix < 96 || !isIpv4Mapped(block.ip.bytes)) return block;
  return { ip: unmapIpv4(block.ip), prefix: block.prefix - 96 };
}

/** Formats an address canonically (RFC 5952 for IPv6: lowercase, longest zero run compressed). */
export function formatIp(ip: IpAddress): string {
  const b = ip.bytes;
  if (ip.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/** Parses "host:port" or "[v6]:port" with a numeric IP host. Returns the address or a reason it is invalid. */
export function parseSocketAddress(text: string): SocketAddress | string {
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close === -1 || text[close + 1] !== ":") return `"${text}" is not [IPv6]:port`;
    host = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon === -1) return `"${text}" has no port (expected ip:port)`;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) return `"${text}": write an IPv6 address in brackets, as [${host}]:${portText}`;
  }
  const ip = parseIp(host);
  if (ip === null) return `"${host}" is not an IP address`;
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return `"${portText}" is not a port (0-65535)`;
  return { ip: formatIp(ip), port: Number(portText), family: ip.family };
}

/** Formats a socket address as "ip:port", bracketing IPv6. */
export function formatSocketAddress(addr: SocketAddress): string {
  return addr.family === 6 ? `[${addr.ip}]:${addr.port}` : `${addr.ip}:${addr.port}`;
}

/** What kind of address an IP is, for source policies and backend checks. */
export type AddressClass = "unspecified" | "multicast" | "broadcast" | "loopback" | "unicast";

/** Classifies an address (IPv4-mapped IPv6 is classified as the IPv4 inside it). */
export function classifyIp(ip: IpAddress): AddressClass {
  const u = unmapIpv4(ip);
  const b = u.bytes;
  if (u.family === 4) {
    if (b[0] === 0) return "unspecified"; // 0.0.0.0/8: "this network", never a valid source
    if (b[0] >= 224 && b[0] <= 239) return "multicast";
    if (b[0] === 255 && b[1] === 255 && b[2] === 255 && b[3] === 255) return "broadcast";
    if (b[0] === 127) return "loopback";
    return "unicast";
  }
  if (b[0] === 0xff) return "multicast";
  let zero = true;
  for (let i = 0; i < 15; i++) if (b[i] !== 0) zero = false;
  if (zero && b[15] === 0) return "unspecified";
  if (zero && b[15] === 1) return "loopback";
  return "unicast";
}

/** A CIDR block ("10.0.0.0/8", "2001:db8::/32"). */
export interface Cidr {
  readonly ip: IpAddress;
  readonly prefix: number;
}

/** Parses a CIDR block (a bare address means a single host), or returns a reason it is invalid. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf("/");
  const ipText = slash === -1 ? text : text.slice(0, slash);
  const ip = parseIp(ipText);
  if (ip === null) return `"${ipText}" is not an IP address`;
  const max = ip.family === 4 ? 32 : 128;
  if (slash === -1) return { ip, prefix: max };
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
    return `"${prefixText}" is not a prefix length (0-${max})`;
  }
  return { ip, prefix: Number(prefixText) };
}

/** True when the address lies inside the block (IPv4-mapped IPv6 addresses match IPv4 blocks). */
export function cidrContains(block: Cidr, address: IpAddress): boolean {
  const ip = address.family === block.ip.family ? address : unmapIpv4(address);
  if (ip.family !== block.ip.family) return false;
  const full = block.prefix >> 3;
  for (let i = 0; i < full; i++) if (ip.bytes[i] !== block.ip.bytes[i]) return false;
  const rest = block.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (ip.bytes[full] & mask) === (block.ip.bytes[full] & mask);
}
