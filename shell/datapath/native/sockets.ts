/**
 * Socket setup for the native data path (control path: runs per bind and per new flow, never per
 * datagram): listener sockets with their options, connected upstream sockets, and a scratch block of libc
 * memory for the small structs those calls take.
 *
 * @module
 */

import type { SocketAddress } from "../../../core/address.ts";
import { Errno, NativeError } from "./errno.ts";
import type { Libc, Memory, Ptr } from "./ffi.ts";
import {
  AF_INET,
  AF_INET6,
  IP_PKTINFO,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPV6_RECVPKTINFO,
  readSockaddr,
  SO_RCVBUF,
  SO_REUSEPORT,
  SO_RXQ_OVFL,
  SO_SNDBUF,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_SOCKET,
  SOL_UDP,
  UDP_SEGMENT,
  writeSockaddr,
} from "./layout.ts";

/** Offsets in the scratch block. */
const ADDR = 0, OPT = 64, LEN = 72;
/** SO_MEMINFO (Linux 4.6+): u32[9] of socket memory figures; index 8 is sk_drops, as SO_RXQ_OVFL reports. */
const SO_MEMINFO = 55, MEMINFO_BYTES = 36, MEMINFO_DROPS = 32;
/**
 * SO_RCVBUF asked for each flow's upstream socket: 1 MiB, so a stall of the data path's thread (a big
 * reload, a burst of admin requests) does not lose the replies that arrive meanwhile. The kernel caps it
 * at net.core.rmem_max (often 208 KiB); the buffer is a limit, not memory taken while empty.
 */
export const UPSTREAM_RECV_BUFFER = 1 << 20;
/** Bytes of scratch for control calls (the driver appends its own regions after it). */
export const SCRATCH_CONTROL = 128;

/** Libc memory and pointers for the small structs of socket setup calls. */
export class Scratch {
  readonly mem: Memory;
  readonly addr: Ptr;
  readonly opt: Ptr;
  readonly len: Ptr;

  /** Views `mem` (at least SCRATCH_CONTROL bytes) for setup calls. */
  constructor(readonly libc: Libc, mem: Memory) {
    this.mem = mem;
    this.addr = libc.ref(mem, ADDR, 28);
    this.opt = libc.ref(mem, OPT, 4);
    this.len = libc.ref(mem, LEN, 4);
  }

  /** Writes `a` as a sockaddr at the address slot; returns its length. */
  sockaddr(a: SocketAddress): number {
    return writeSockaddr(this.mem.u8, ADDR, a);
  }

  /** setsockopt of an int. Returns 0 or the errno. */
  setInt(fd: number, level: number, name: number, value: number): number {
    this.mem.dv.setInt32(OPT, value, true);
    return this.libc.setsockopt(fd, level, name, this.opt, 4) === 0 ? 0 : this.libc.errno();
  }

  /** getsockopt of an int, or -1 on failure. */
  getInt(fd: number, level: number, name: number): number {
    this.mem.dv.setUint32(LEN, 4, true);
    if (this.libc.getsockopt(fd, level, name, this.opt, this.len) !== 0) return -1;
    return this.mem.dv.getInt32(OPT, true);
  }

  /**
   * The kernel's count of datagrams dropped at `fd`'s receive queue (sk_drops, via SO_MEMINFO), read now,
   * or -1 where the kernel does not say. (SO_RXQ_OVFL tells the same count, but only with a datagram.)
   */
  drops(fd: number): number {
    this.mem.dv.setUint32(LEN, MEMINFO_BYTES, true);
    // The address slot (64 bytes) holds the 36-byte answer; no address call is in flight meanwhile.
    if (this.libc.getsockopt(fd, SOL_SOCKET, SO_MEMINFO, this.addr, this.len) !== 0) return -1;
    if (this.mem.dv.getUint32(LEN, true) < MEMINFO_BYTES) return -1;
    return this.mem.dv.getUint32(ADDR + MEMINFO_DROPS, true);
  }

  /** The address `fd` is bound to. */
  local(fd: number): SocketAddress | null {
    this.mem.dv.setUint32(LEN, 28, true);
    if (this.libc.getsockname(fd, this.addr, this.len) !== 0) return null;
    return readSockaddr(this.mem.u8, ADDR);
  }
}

/** Options of a native listener socket. */
export interface ListenerSocketOptions {
  readonly reusePort: boolean;
  /** SO_RCVBUF / SO_SNDBUF to ask for, in bytes (0 = the kernel's default). */
  readonly recvBuffer: number;
  readonly sendBuffer: number;
  /** Ask for the local address of each datagram, so replies leave from it. */
  readonly pktinfo: boolean;
}

/** A bound native listener socket and what the kernel granted. */
export interface ListenerSocketInfo {
  readonly fd: number;
  readonly local: SocketAddress;
  /** SO_RCVBUF / SO_SNDBUF as the kernel reports them (Linux doubles the asked size, capped by rmem_max). */
  readonly recvBuffer: number;
  readonly sendBuffer: number;
  /** Whether SO_RXQ_OVFL is on (the receive-queue drop counter arrives with datagrams). */
  readonly rxqOverflow: boolean;
  readonly pktinfo: boolean;
  /** Whether the kernel offers UDP GSO (UDP_SEGMENT, Linux 4.18+). */
  readonly gso: boolean;
}

/** Opens, configures and binds a nonblocking UDP listener socket. Throws a NativeError naming the call. */
export function openListenerSocket(
  s: Scratch,
  address: SocketAddress,
  o: ListenerSocketOptions,
): ListenerSocketInfo {
  const libc = s.libc;
  const fd = libc.socket(
    address.family === 4 ? AF_INET : AF_INET6,
    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
    0,
  );
  if (fd < 0) throw new NativeError("socket", libc.errno());
  const fail = (call: string, errno: number): never => {
    libc.close(fd);
    throw new NativeError(
      call,
      errno,
      `udp ${address.family === 6 ? `[${address.ip}]` : address.ip}:${address.port}`,
    );
  };
  let e: number;
  if (o.reusePort && (e = s.setInt(fd, SOL_SOCKET, SO_REUSEPORT, 1)) !== 0) {
    fail("setsockopt(SO_REUSEPORT)", e);
  }
  if (o.recvBuffer > 0 && (e = s.setInt(fd, SOL_SOCKET, SO_RCVBUF, o.recvBuffer)) !== 0) {
    fail("setsockopt(SO_RCVBUF)", e);
  }
  if (o.sendBuffer > 0 && (e = s.setInt(fd, SOL_SOCKET, SO_SNDBUF, o.sendBuffer)) !== 0) {
    fail("setsockopt(SO_SNDBUF)", e);
  }
  // The drop counter is best effort: a kernel without it still relays.
  const rxqOverflow = s.setInt(fd, SOL_SOCKET, SO_RXQ_OVFL, 1) === 0;
  if (o.pktinfo) {
    // IPv4 datagrams on a dual-stack IPv6 socket report IP_PKTINFO, so an IPv6 socket asks for both.
    if ((e = s.setInt(fd, IPPROTO_IP, IP_PKTINFO, 1)) !== 0 && address.family === 4) {
      fail("setsockopt(IP_PKTINFO)", e);
    }
    if (address.family === 6 && (e = s.setInt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)) !== 0) {
      fail("setsockopt(IPV6_RECVPKTINFO)", e);
    }
  }
  const len = s.sockaddr(address);
  if (libc.bind(fd, s.addr, len) !== 0) fail("bind", libc.errno());
  const local = s.local(fd);
  if (local === null) fail("getsockname", libc.errno());
  return {
    fd,
    local: { ip: address.ip, port: (local as SocketAddress).port, family: address.family },
    recvBuffer: s.getInt(fd, SOL_SOCKET, SO_RCVBUF),
    sendBuffer: s.getInt(fd, SOL_SOCKET, SO_SNDBUF),
    rxqOverflow,
    pktinfo: o.pktinfo,
    gso: s.getInt(fd, SOL_UDP, UDP_SEGMENT) >= 0,
  };
}

/**
 * Opens a nonblocking UDP socket connected to `backend`: the kernel then filters replies to that backend
 * and reports its ICMP port unreachable as ECONNREFUSED. Returns the fd, or -errno.
 */
export function openUpstreamSocket(s: Scratch, backend: SocketAddress): number {
  const libc = s.libc;
  const fd = libc.socket(
    backend.family === 4 ? AF_INET : AF_INET6,
    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
    0,
  );
  if (fd < 0) return -libc.errno();
  // Best effort: a refused size leaves the kernel's default.
  s.setInt(fd, SOL_SOCKET, SO_RCVBUF, UPSTREAM_RECV_BUFFER);
  const len = s.sockaddr(backend);
  if (libc.connect(fd, s.addr, len) !== 0) {
    const e = libc.errno();
    libc.close(fd);
    return -(e || Errno.EINVAL);
  }
  return fd;
}

/** True when `ip` is a wildcard address, where replies need PKTINFO to leave from the right address. */
export function isWildcard(ip: string): boolean {
  return ip === "0.0.0.0" || ip === "::";
}
