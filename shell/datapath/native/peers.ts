/**
 * What the native driver reads about a datagram's peers, on the forwarding path: the client address as
 * the text the core keys flows by (cached, so steady traffic builds no string), and the control messages
 * the kernel attached (the receive-queue drop counter, the local address the datagram arrived on), turned
 * into the PKTINFO cmsg the flow's replies carry. Also, off that path, the client sockaddr a new flow keeps
 * (`clientName`).
 *
 * @module
 */

import { isIpv4Mapped } from "../../../core/address.ts";
import {
  cmsgAlign,
  CMSGHDR,
  cmsgSpace,
  formatIpv6,
  IN6_PKTINFO,
  IN_PKTINFO,
  IP_PKTINFO,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPV6_PKTINFO,
  SO_RXQ_OVFL,
  SOCKADDR_MAX,
  SOL_SOCKET,
  writeCmsgHeader,
  writeSockaddr,
} from "./layout.ts";
import type { Flow } from "../../../core/flow.ts";
import type { Batches } from "./batches.ts";
import type { NativeListener } from "./native_records.ts";

/** Entries per cache before it starts over (bounds memory under address churn). */
const IP_CACHE_MAX = 65_536;

/** Client addresses as text, as the runtimes report them ("10.0.0.1", "::ffff:10.0.0.1", "2001:db8::1"). */
export class IpText {
  readonly #v4 = new Map<number, string>();
  readonly #v4mapped = new Map<number, string>();

  /** The 4 IPv4 bytes at `off`; `mapped` prefixes "::ffff:" (an IPv4 client of a dual-stack socket). */
  ipv4(u8: Uint8Array, off: number, mapped = false): string {
    const key = u8[off] * 0x100_0000 + ((u8[off + 1] << 16) | (u8[off + 2] << 8) | u8[off + 3]);
    const cache = mapped ? this.#v4mapped : this.#v4;
    let ip = cache.get(key);
    if (ip === undefined) {
      if (cache.size >= IP_CACHE_MAX) cache.clear();
      ip = `${mapped ? "::ffff:" : ""}${u8[off]}.${u8[off + 1]}.${u8[off + 2]}.${u8[off + 3]}`;
      cache.set(key, ip);
    }
    return ip;
  }

  /** The 16 IPv6 bytes at `off` (IPv4-mapped ones through the IPv4 cache). */
  ipv6(u8: Uint8Array, off: number): string {
    return isIpv4Mapped(u8, off) ? this.ipv4(u8, off + 12, true) : formatIpv6(u8, off);
  }
}

/** What a received datagram's control messages said. */
export interface ControlSeen {
  /** SO_RXQ_OVFL's cumulative drop count, or -1 when absent (the kernel sends it only once non-zero). */
  overflows: number;
  /** Offset of a PKTINFO cmsg (IP_PKTINFO or IPV6_PKTINFO), or -1. */
  pktinfo: number;
}

/**
 * Walks the control messages in `dv` from `at`, `len` bytes (the msg_controllen the kernel wrote, bounded
 * by the room given), into `out`. Stops at a malformed header rather than read past the room.
 */
export function scanControl(dv: DataView, at: number, len: number, out: ControlSeen): void {
  out.overflows = -1;
  out.pktinfo = -1;
  const end = at + len;
  while (at + CMSGHDR.size <= end) {
    // cmsg_len is a size_t: its high half is 0 for any length that fits the room.
    const clen = dv.getUint32(at + CMSGHDR.len, true);
    if (clen < CMSGHDR.size || at + clen > end) return;
    const level = dv.getInt32(at + CMSGHDR.level, true);
    const type = dv.getInt32(at + CMSGHDR.type, true);
    if (level === SOL_SOCKET && type === SO_RXQ_OVFL) out.overflows = dv.getUint32(at + CMSGHDR.data, true);
    else if (
      (level === IPPROTO_IP && type === IP_PKTINFO) || (level === IPPROTO_IPV6 && type === IPV6_PKTINFO)
    ) {
      out.pktinfo = at;
    }
    at += cmsgAlign(clen);
  }
}

/**
 * The PKTINFO cmsg a flow's replies carry, from the PKTINFO cmsg at `at` of a received datagram: the
 * source is the address the client wrote to (IPv4: ipi_spec_dst = the received ipi_addr, no interface
 * forced; IPv6: the same address and interface, which a link-local address needs). Returns `current`
 * when it already says that, so a steady flow allocates nothing.
 */
export function replyPktinfo(
  u8: Uint8Array,
  dv: DataView,
  at: number,
  current: Uint8Array | null,
): Uint8Array {
  const v4 = dv.getInt32(at + CMSGHDR.level, true) === IPPROTO_IP;
  const src = at + CMSGHDR.data + (v4 ? IN_PKTINFO.addr : IN6_PKTINFO.addr);
  const n = v4 ? 4 : 16;
  const size = cmsgSpace(v4 ? IN_PKTINFO.size : IN6_PKTINFO.size);
  if (current !== null && current.byteLength === size) {
    const dst = CMSGHDR.data + (v4 ? IN_PKTINFO.specDst : IN6_PKTINFO.addr);
    let same = true;
    for (let k = 0; k < n && same; k++) same = current[dst + k] === u8[src + k];
    if (same) return current;
  }
  const pkt = new Uint8Array(size);
  const out = new DataView(pkt.buffer);
  if (v4) {
    const data = writeCmsgHeader(out, 0, IPPROTO_IP, IP_PKTINFO, IN_PKTINFO.size);
    pkt.set(u8.subarray(src, src + 4), data + IN_PKTINFO.specDst);
  } else {
    const data = writeCmsgHeader(out, 0, IPPROTO_IPV6, IPV6_PKTINFO, IN6_PKTINFO.size);
    pkt.set(u8.subarray(src, src + 16), data + IN6_PKTINFO.addr);
    const ifindex = dv.getUint32(at + CMSGHDR.data + IN6_PKTINFO.ifindex, true);
    out.setUint32(data + IN6_PKTINFO.ifindex, ifindex, true);
  }
  return pkt;
}

/**
 * The client sockaddr of `f`, a flow of `nl` whose upstream opens (a copy its NativeFlow keeps): the receive
 * slot's bytes at `at` in `rx` when the flow is being admitted from that slot, else made from the flow's
 * address text (a flow resolved later, its slot long reused).
 */
export function clientName(f: Flow, nl: NativeListener, rx: Batches | null, at: number): Uint8Array {
  if (rx !== null) return rx.u8.slice(at, at + nl.nameLen);
  const name = new Uint8Array(SOCKADDR_MAX);
  writeSockaddr(name, 0, { ip: f.clientIp, port: f.clientPort, family: nl.family });
  return name.subarray(0, nl.nameLen);
}
