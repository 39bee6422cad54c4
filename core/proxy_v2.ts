/**
 * PROXY protocol headers (HAProxy spec, v2 binary and v1 text): they tell a backend who the real client was,
 * since a relay's backend otherwise only ever sees the relay's own address.
 *
 * Pure. A header depends only on the flow's two endpoints, so a shell encodes it once when a flow is admitted
 * and reuses the bytes for every datagram that carries it.
 *
 * @module
 */

import { formatIp, type IpAddress, parseIp, type SocketAddress, unmapIpv4 } from "./address.ts";

// The 12-byte v2 signature; chosen by the spec so it can never start a valid v1 header or HTTP request.
// Kept private: an exported Uint8Array could be mutated by any importer.
const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** Which socket type the header describes: UDP datagrams or a TCP stream. */
export type ProxyTransport = "dgram" | "stream";

/** A decoded v2 header that carries addresses. `headerLength` is where the payload starts. */
export interface ProxyV2Addresses {
  readonly client: SocketAddress;
  readonly local: SocketAddress;
  readonly transport: ProxyTransport;
  readonly headerLength: number;
}

/** A decoded v2 header without usable addresses (AF_UNSPEC or LOCAL): the receiver uses the real endpoints. */
export interface ProxyV2Unspec {
  readonly unspec: true;
  readonly headerLength: number;
}

const HEADER_FIXED = 16;
const VER_CMD_PROXY = 0x21;
const VER_CMD_LOCAL = 0x20;

interface Pair {
  readonly src: IpAddress;
  readonly dst: IpAddress;
}

/**
 * The two addresses as one family, or null when they cannot share one. Mapped IPv4 is unmapped first so a v4
 * client seen through a dual-stack socket is described as v4; but when both sides were IPv6 to begin with and
 * only one unmaps, the original IPv6 pair is still exact, so it is kept rather than thrown away as UNSPEC.
 */
function pairOf(client: SocketAddress, local: SocketAddress): Pair | null {
  const src = parseIp(client.ip);
  const dst = parseIp(local.ip);
  // An unparsable address is a shell bug, but a relay must not crash a flow over it: fall back to UNSPEC.
  if (src === null || dst === null) return null;
  const usrc = unmapIpv4(src);
  const udst = unmapIpv4(dst);
  if (usrc.family === udst.family) return { src: usrc, dst: udst };
  if (src.family === 6 && dst.family === 6) return { src, dst };
  return null;
}

/**
 * Encodes a complete PROXY v2 header (command PROXY). Families that cannot be expressed together become
 * AF_UNSPEC with length 0, which the spec defines as "use the real connection endpoints".
 */
export function encodeProxyV2(
  client: SocketAddress,
  local: SocketAddress,
  transport: ProxyTransport,
): Uint8Array {
  const pair = pairOf(client, local);
  const addrLen = pair === null ? 0 : pair.src.family === 4 ? 12 : 36;
  const out = new Uint8Array(HEADER_FIXED + addrLen);
  out.set(SIGNATURE, 0);
  out[12] = VER_CMD_PROXY;
  if (pair === null) return out; // family byte and length stay 0
  const proto = transport === "dgram" ? 0x2 : 0x1;
  out[13] = ((pair.src.family === 4 ? 0x1 : 0x2) << 4) | proto;
  const view = new DataView(out.buffer);
  view.setUint16(14, addrLen);
  const size = pair.src.bytes.length;
  out.set(pair.src.bytes, 16);
  out.set(pair.dst.bytes, 16 + size);
  view.setUint16(16 + 2 * size, client.port);
  view.setUint16(18 + 2 * size, local.port);
  return out;
}

/**
 * Encodes a PROXY v1 text header, for TCP backends that only speak v1. Mixed families become
 * "PROXY UNKNOWN", which v1 receivers treat like v2's AF_UNSPEC.
 */
export function encodeProxyV1(client: SocketAddress, local: SocketAddress): Uint8Array {
  const pair = pairOf(client, local);
  const line = pair === null
    ? "PROXY UNKNOWN\r\n"
    : `PROXY TCP${pair.src.family} ${formatIp(pair.src)} ${
      formatIp(pair.dst)
    } ${client.port} ${local.port}\r\n`;
  return new TextEncoder().encode(line);
}

function socketAddress(bytes: Uint8Array, port: number, family: 4 | 6): SocketAddress {
  return { ip: formatIp({ family, bytes }), port, family };
}

/**
 * Decodes a PROXY v2 header at the start of `bytes` (for tests and tools; a relay only encodes). Returns a
 * reason string instead of throwing, since the input is whatever arrived on the wire. TLVs after the
 * addresses are skipped: `headerLength` covers them.
 */
export function decodeProxyV2(bytes: Uint8Array): ProxyV2Addresses | ProxyV2Unspec | string {
  if (bytes.length < HEADER_FIXED) return `truncated: ${bytes.length} bytes, a v2 header needs at least 16`;
  for (let i = 0; i < 12; i++) {
    if (bytes[i] !== SIGNATURE[i]) return "not a PROXY v2 header (bad signature)";
  }
  const verCmd = bytes[12];
  if (verCmd >> 4 !== 2) return `unsupported version ${verCmd >> 4}`;
  if (verCmd !== VER_CMD_PROXY && verCmd !== VER_CMD_LOCAL) return `unknown command ${verCmd & 0xf}`;
  const len = (bytes[14] << 8) | bytes[15];
  const headerLength = HEADER_FIXED + len;
  if (bytes.length < headerLength) return `truncated: header says ${headerLength} bytes, got ${bytes.length}`;
  const family = bytes[13] >> 4;
  // LOCAL (health checks from the proxy itself) and AF_UNSPEC both mean "no client addresses here".
  if (verCmd === VER_CMD_LOCAL || family === 0) return { unspec: true, headerLength };
  if (family !== 1 && family !== 2) return `unsupported address family ${family}`;
  const proto = bytes[13] & 0xf;
  if (proto !== 1 && proto !== 2) return `unsupported transport ${proto}`;
  const size = family === 1 ? 4 : 16;
  if (len < 2 * size + 4) return `address block too short: ${len} bytes for family ${family}`;
  const ipFamily = family === 1 ? 4 : 6;
  const portAt = HEADER_FIXED + 2 * size;
  return {
    client: socketAddress(bytes.slice(16, 16 + size), (bytes[portAt] << 8) | bytes[portAt + 1], ipFamily),
    local: socketAddress(
      bytes.slice(16 + size, portAt),
      (bytes[portAt + 2] << 8) | bytes[portAt + 3],
      ipFamily,
    ),
    transport: proto === 2 ? "dgram" : "stream",
    headerLength,
  };
}
