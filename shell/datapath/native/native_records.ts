/**
 * The native UDP driver's records and options: what it keeps per bound listener and per flow, its
 * options, the per-listener knobs it reads, and the stats it reports (shell/datapath/native/native_udp.ts drives
 * them).
 *
 * @module
 */

import type { SocketAddress } from "../../../core/address.ts";
import type { Flow } from "../../../core/flow.ts";
import type { Listener } from "../../../core/listener.ts";
import type { Batches } from "./batches.ts";
import type { KernelFilterStatus } from "./kernel_filter.ts";
import { FlowIndex } from "./flow_index.ts";
import { SOCKADDR_IN, SOCKADDR_IN6 } from "./layout.ts";
import type { ListenerSocketInfo } from "./sockets.ts";

/**
 * Knobs only the native path reads; `core/config.ts` may add them to ListenerConfig: SO_RCVBUF/SO_SNDBUF
 * in bytes, 0 = the kernel's default, unset = DEFAULT_SOCKET_BUFFER.
 */
export interface NativeListenerKnobs {
  readonly recvBuffer?: number;
  readonly sendBuffer?: number;
}

/**
 * SO_RCVBUF/SO_SNDBUF asked for when the config says nothing: 4 MiB, as the benchmark's C relay does. The
 * kernel caps it at net.core.rmem_max/wmem_max (often 208 KiB, where this changes nothing); where those
 * allow it, it absorbs bursts the default queue drops (measured: 1200 B, 16 × 8 in flight, the default
 * queue lost ~250 datagrams in 5 s).
 */
export const DEFAULT_SOCKET_BUFFER = 4 << 20;

/** Options of the driver. */
export interface NativeUdpOptions {
  /** PKTINFO on replies: on wildcard listeners only ("auto", the default), on every listener, or never. */
  readonly pktinfo?: "auto" | "always" | "never";
  /**
   * UDP GSO where the kernel offers it (default true): a run of one flow's equal-sized datagrams goes out
   * in one sendmsg, upstream and back to the client. Measured on loopback: ~12% less relay CPU per round
   * trip. A flow whose GSO send the kernel refuses (say, segments above the path MTU) stops using it.
   */
  readonly gso?: boolean;
  /** A failure inside the loop (a bug): reported here, and the loop carries on. Default: console.error. */
  readonly onError?: (error: unknown) => void;
}

/** What the status endpoint and metrics show of a native listener. */
export interface NativeListenerStats {
  readonly local: SocketAddress;
  /** SO_RCVBUF / SO_SNDBUF the kernel granted (bytes, as getsockopt reports them). */
  readonly recvBuffer: number;
  readonly sendBuffer: number;
  /**
   * Datagrams the kernel dropped because the receive queue was full, read when asked (SO_MEMINFO; where
   * that is missing, what SO_RXQ_OVFL said with the last datagram), or null if the kernel tells neither.
   */
  readonly rxqOverflows: number | null;
  /**
   * Replies the kernel dropped at the upstream sockets of this listener's flows (their receive queues were
   * full: the data path's thread stalled), live flows read when asked plus closed ones; null if unknown.
   */
  readonly upstreamRxqOverflows: number | null;
  /** Whether replies carry PKTINFO (leave from the address the datagram arrived on). */
  readonly pktinfo: boolean;
  readonly reusePort: boolean;
  /** Datagrams per recvmmsg/sendmmsg. */
  readonly batch: number;
  /** Whether runs of one flow's datagrams go out as UDP GSO sends. */
  readonly gso: boolean;
  /** The kernel socket filter attached (edge protection), or null. */
  readonly kernelFilter: KernelFilterStatus | null;
}

/** A listener bound by this driver. */
export class NativeListener {
  closed = false;
  /** SO_RXQ_OVFL: the kernel's cumulative count, as the last datagram carrying it said. */
  rxqOverflows = 0;
  /** rx slots the last recvmmsg used (their lengths need resetting). */
  lastRx = 0;
  /** Has replies queued in its tx slots. */
  dirty = false;
  /** Kernel drops at the upstream sockets of its flows already closed (read at each close). */
  upstreamDropsClosed = 0;
  /** Its attached flows by client sockaddr (shell/datapath/native/flow_index.ts). */
  readonly flows = new FlowIndex();
  readonly family: 4 | 6;
  readonly nameLen: number;
  /** GSO is on for this listener's flows (asked for, and the kernel has it). */
  readonly gso: boolean;

  /** A listener bound on `info`, with its batches `b`, in epoll slot `index`. */
  constructor(
    readonly listener: Listener,
    readonly info: ListenerSocketInfo,
    public b: Batches,
    readonly index: number,
    readonly reusePort: boolean,
    gso: boolean,
  ) {
    this.gso = gso && info.gso;
    this.family = info.local.family;
    this.nameLen = this.family === 4 ? SOCKADDR_IN.size : SOCKADDR_IN6.size;
  }
}

/** A flow's native resources: its connected upstream socket and its client's sockaddr. */
export class NativeFlow {
  closed = false;
  /** The PKTINFO cmsg its replies carry (listeners with PKTINFO), built from its datagrams' local address. */
  pkt: Uint8Array | null = null;
  /** The kernel refused a GSO send of this flow: send its datagrams one by one. */
  noGso = false;
  /** A flow's upstream socket `fd` on listener `nl`; `name` is its client's sockaddr. */
  constructor(
    readonly flow: Flow,
    readonly nl: NativeListener,
    readonly fd: number,
    readonly name: Uint8Array,
  ) {}
}
