/**
 * Every C struct layout and constant the native data path hands to the kernel, in one place: Linux on
 * x86_64 and aarch64 (LP64, little-endian), glibc's definitions. tests/native_layout.test.ts checks each
 * offset against a C compiler's `offsetof`/`sizeof` when one is installed, and round-trips the encoders.
 *
 * Nothing here touches memory beyond the DataView/Uint8Array it is given: callers pass views over memory
 * that libc allocated (see ffi.ts), never over the JavaScript heap.
 *
 * @module
 */

import { formatIp, isIpv4Mapped, parseIp, type SocketAddress } from "../../../core/address.ts";

// ---- constants (asm-generic values: identical on x86_64 and aarch64) ---------------------------------------

/** Address families. */
export const AF_INET = 2, AF_INET6 = 10;
/** socket(2) type and flags. */
export const SOCK_DGRAM = 2, SOCK_NONBLOCK = 0x800, SOCK_CLOEXEC = 0x80000;
/** Option levels. */
export const SOL_SOCKET = 1, IPPROTO_IP = 0, IPPROTO_IPV6 = 41, SOL_UDP = 17;
/** SOL_SOCKET options. */
export const SO_REUSEADDR = 2, SO_SNDBUF = 7, SO_RCVBUF = 8, SO_REUSEPORT = 15, SO_RXQ_OVFL = 40;
/** IPPROTO_IP options: IP_PKTINFO both asks for the cmsg on receive and is the cmsg type on send. */
export const IP_PKTINFO = 8;
/** IPPROTO_IPV6 options. IPV6_RECVPKTINFO asks for IPV6_PKTINFO cmsgs on receive. */
export const IPV6_V6ONLY = 26, IPV6_RECVPKTINFO = 49, IPV6_PKTINFO = 50;
/** SOL_UDP options (GSO/GRO). */
export const UDP_SEGMENT = 103, UDP_GRO = 104;
/** send/recv flags. MSG_TRUNC in recv flags makes the kernel report a datagram's real length. */
export const MSG_CTRUNC = 0x8, MSG_TRUNC = 0x20, MSG_DONTWAIT = 0x40;
/** epoll. */
export const EPOLLIN = 0x1, EPOLLERR = 0x8, EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CLOEXEC = 0x80000;
/** eventfd flags. */
export const EFD_CLOEXEC = 0x80000, EFD_NONBLOCK = 0x800;

// ---- struct layouts ------------------------------------------------------------------------------------------

/** Pointers and size_t are 8 bytes (LP64). */
export const PTR = 8;

/**
 * struct iovec { void *iov_base; size_t iov_len; } — 16 bytes.
 */
export const IOVEC = { size: 16, base: 0, len: 8 } as const;

/**
 * struct msghdr — 56 bytes: msg_name @0 (ptr), msg_namelen @8 (u32, 4 bytes padding), msg_iov @16 (ptr),
 * msg_iovlen @24 (size_t), msg_control @32 (ptr), msg_controllen @40 (size_t), msg_flags @48 (i32),
 * 4 bytes tail padding.
 */
export const MSGHDR = {
  size: 56,
  name: 0,
  namelen: 8,
  iov: 16,
  iovlen: 24,
  control: 32,
  controllen: 40,
  flags: 48,
} as const;

/** struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; } — 64 bytes, msg_len @56. */
export const MMSGHDR = { size: 64, hdr: 0, len: 56 } as const;

/** struct sockaddr_in — 16 bytes: family @0 (u16 host order), port @2 (network order), addr @4, zero @8. */
export const SOCKADDR_IN = { size: 16, family: 0, port: 2, addr: 4 } as const;

/**
 * struct sockaddr_in6 — 28 bytes: family @0, port @2 (network order), flowinfo @4, addr @8 (16 bytes),
 * scope_id @24.
 */
export const SOCKADDR_IN6 = { size: 28, family: 0, port: 2, flowinfo: 4, addr: 8, scopeId: 24 } as const;

/** Room for either sockaddr: every name slot is this large. */
export const SOCKADDR_MAX = 28;

/**
 * struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; } — 16 bytes, data @16. cmsg_len counts
 * the header and the data; consecutive cmsgs start at 8-byte aligned offsets (CMSG_ALIGN).
 */
export const CMSGHDR = { size: 16, len: 0, level: 8, type: 12, data: 16 } as const;

/** struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst; struct in_addr ipi_addr; } — 12 bytes. */
export const IN_PKTINFO = { size: 12, ifindex: 0, specDst: 4, addr: 8 } as const;

/** struct in6_pktinfo { struct in6_addr ipi6_addr; unsigned int ipi6_ifindex; } — 20 bytes. */
export const IN6_PKTINFO = { size: 20, addr: 0, ifindex: 16 } as const;

/** A CPU architecture as the runtimes name it, reduced to the two Linux ones the native path supports. */
export type NativeArch = "x86_64" | "aarch64";

/**
 * struct epoll_event { uint32_t events; epoll_data_t data; } — packed on x86_64 (12 bytes, data @4), naturally
 * aligned elsewhere (aarch64: 16 bytes, data @8). The data word carries a 32-bit tag (little-endian low half).
 */
export function epollEventLayout(arch: NativeArch): { readonly size: number; readonly data: number } {
  return arch === "x86_64" ? { size: 12, data: 4 } : { size: 16, data: 8 };
}

/** CMSG_ALIGN: rounds up to the 8-byte alignment of cmsghdr. */
export function cmsgAlign(n: number): number {
  return (n + 7) & ~7;
}

/** CMSG_SPACE(n): the bytes a cmsg with n data bytes takes in a control buffer. */
export function cmsgSpace(n: number): number {
  return CMSGHDR.size + cmsgAlign(n);
}

/** CMSG_LEN(n): the cmsg_len value of a cmsg with n data bytes. */
export function cmsgLen(n: number): number {
  return CMSGHDR.size + n;
}

/** Control buffer room per received datagram: SO_RXQ_OVFL (u32) and one PKTINFO (the IPv6 one is larger). */
export const RECV_CONTROL = cmsgSpace(4) + cmsgSpace(IN6_PKTINFO.size);

/** Control buffer room per sent reply message: one PKTINFO cmsg and one UDP_SEGMENT (u16) cmsg. */
export const SEND_CONTROL = cmsgSpace(IN6_PKTINFO.size) + cmsgSpace(2);

/** Most segments in one UDP GSO send (the kernel's UDP_MAX_SEGMENTS is 64 or more). */
export const GSO_MAX_SEGMENTS = 64;
/** Most payload bytes in one UDP GSO send: one IPv4 datagram's worth (65535 - 20 - 8). */
export const GSO_MAX_BYTES = 65_507;

// ---- encoders ------------------------------------------------------------------------------------------------

/** Writes a 64-bit pointer or size (below 2^53) little-endian. */
export function setU64(dv: DataView, off: number, value: number): void {
  dv.setUint32(off, value >>> 0, true);
  dv.setUint32(off + 4, Math.floor(value / 0x1_0000_0000), true);
}

/** Reads a 64-bit little-endian value that is below 2^53. */
export function getU64(dv: DataView, off: number): number {
  return dv.getUint32(off + 4, true) * 0x1_0000_0000 + dv.getUint32(off, true);
}

/** Fills a struct msghdr (msg_flags cleared). Pointers are addresses (numbers); 0 is NULL. */
export function writeMsghdr(
  dv: DataView,
  off: number,
  name: number,
  namelen: number,
  iov: number,
  iovlen: number,
  control: number,
  controllen: number,
): void {
  setU64(dv, off + MSGHDR.name, name);
  dv.setUint32(off + MSGHDR.namelen, namelen, true);
  dv.setUint32(off + MSGHDR.namelen + 4, 0, true);
  setU64(dv, off + MSGHDR.iov, iov);
  setU64(dv, off + MSGHDR.iovlen, iovlen);
  setU64(dv, off + MSGHDR.control, control);
  setU64(dv, off + MSGHDR.controllen, controllen);
  dv.setInt32(off + MSGHDR.flags, 0, true);
  dv.setInt32(off + MSGHDR.flags + 4, 0, true);
}

/** Fills a struct iovec. */
export function writeIovec(dv: DataView, off: number, base: number, len: number): void {
  setU64(dv, off + IOVEC.base, base);
  setU64(dv, off + IOVEC.len, len);
}

/** Writes a sockaddr_in or sockaddr_in6 (zeroing its padding). Returns its length. */
export function writeSockaddr(u8: Uint8Array, off: number, addr: SocketAddress): number {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const size = addr.family === 4 ? SOCKADDR_IN.size : SOCKADDR_IN6.size;
  u8.fill(0, off, off + size);
  dv.setUint16(off, addr.family === 4 ? AF_INET : AF_INET6, true);
  dv.setUint16(off + 2, addr.port, false);
  const ip = parseIp(addr.ip);
  if (ip === null || ip.family !== addr.family) {
    throw new Error(`not an IPv${addr.family} address: ${addr.ip}`);
  }
  u8.set(ip.bytes, off + (addr.family === 4 ? SOCKADDR_IN.addr : SOCKADDR_IN6.addr));
  return size;
}

/** Formats 16 address bytes: IPv4-mapped as "::ffff:a.b.c.d" (as the runtimes report them), else RFC 5952. */
export function formatIpv6(u8: Uint8Array, off: number): string {
  if (isIpv4Mapped(u8, off)) return `::ffff:${u8[off + 12]}.${u8[off + 13]}.${u8[off + 14]}.${u8[off + 15]}`;
  return formatIp({ family: 6, bytes: u8.subarray(off, off + 16) });
}

/** Reads a sockaddr_in/in6 (control path: allocates). Returns null for another family. */
export function readSockaddr(u8: Uint8Array, off: number): SocketAddress | null {
  const family = u8[off] | (u8[off + 1] << 8);
  const port = (u8[off + 2] << 8) | u8[off + 3];
  if (family === AF_INET) {
    return { ip: `${u8[off + 4]}.${u8[off + 5]}.${u8[off + 6]}.${u8[off + 7]}`, port, family: 4 };
  }
  if (family === AF_INET6) return { ip: formatIpv6(u8, off + SOCKADDR_IN6.addr), port, family: 6 };
  return null;
}

/** Writes one cmsg header at `off`; returns the offset of its data. */
export function writeCmsgHeader(
  dv: DataView,
  off: number,
  level: number,
  type: number,
  dataLen: number,
): number {
  setU64(dv, off + CMSGHDR.len, cmsgLen(dataLen));
  dv.setInt32(off + CMSGHDR.level, level, true);
  dv.setInt32(off + CMSGHDR.type, type, true);
  return off + CMSGHDR.data;
}
