/**
 * The runtime UDP driver: binds listeners, feeds datagrams into the core, and opens and closes upstream
 * sockets as the core's `open` and `closed` events say (shell/relay/core_loop.ts routes them here). Runtime-neutral: a `UdpSockets`
 * adapter does the syscalls, so Bun and Deno drive the core identically.
 *
 * Forwarding on an established flow allocates nothing here: a flow's link (its upstream socket and its
 * client's peer reference) is made once, when the flow is admitted.
 *
 * @module
 */

import type { SocketAddress } from "../../core/address.ts";
import { type Flow, FlowState } from "../../core/flow.ts";
import type { Listener } from "../../core/listener.ts";
import type { RelayCore } from "../../core/relay_core.ts";
import type { Clock, CoreDriver, CoreLoop, CoreLoopHooks, DriverEvent } from "../relay/core_loop.ts";
import { type ListenerSocket, Sent, type UdpSockets, type UpstreamSocket } from "./udp_sockets.ts";
import { LateWindow } from "./late_window.ts";

/** The clock and resolver types, declared in shell/relay/core_loop.ts; re-exported for existing importers. */
export type { Clock, Resolver } from "../relay/core_loop.ts";

/** A flow's shell-side resources. */
class FlowLink {
  up: UpstreamSocket | null = null;
  /** Datagrams waiting while the upstream socket opens (copies). */
  queue: Uint8Array[] | null = [];
  closed = false;
  constructor(readonly flow: Flow, readonly socket: ListenerSocket, readonly peer: unknown) {}
}

/** What the UDP drivers report upward (logged by the owner; never per datagram at the default level). */
export interface UdpRelayHooks extends CoreLoopHooks {
  /** An upstream socket could not be opened. */
  upstreamFailed?(flow: Flow, error: unknown): void;
}

/** Drives one RelayCore's UDP listeners over one runtime's sockets. */
export class UdpRelay implements CoreDriver {
  readonly #core: RelayCore;
  readonly #loop: CoreLoop;
  readonly #sockets: UdpSockets;
  readonly #clock: Clock;
  readonly #hooks: UdpRelayHooks;
  /** Keyed by the core's listener object: a reload may replace a listener of the same name. */
  readonly #bound = new Map<Listener, ListenerSocket>();
  /** Closed flows' upstream sockets, still read for a while so late replies are counted (late_window.ts). */
  readonly #late: LateWindow<FlowLink>;

  /** A driver for the core of `loop` over `sockets`. */
  constructor(loop: CoreLoop, sockets: UdpSockets, hooks: UdpRelayHooks = {}) {
    this.#core = loop.core;
    this.#loop = loop;
    this.#sockets = sockets;
    this.#clock = loop.clock;
    this.#hooks = hooks;
    this.#late = new LateWindow((link) => link.up?.close(), loop.clock);
  }

  /** Binds the socket of a UDP listener of the core. Returns the bound address. */
  async bind(listener: Listener, reusePort: boolean): Promise<SocketAddress> {
    const core = this.#core;
    const socket = await this.#sockets.bindListener(listener.config.address, {
      reusePort,
      maxDatagramSize: listener.config.maxDatagramSize,
      sendFailed: () => core.listenerSendFailed(listener, "error"),
      clientUnreachable: () => core.listenerSendFailed(listener, "refused"),
    }, (data, ip, port) => this.#fromClient(listener, data, ip, port));
    listener.localAddress = socket.local;
    this.#bound.set(listener, socket);
    this.#loop.route(listener, this);
    return socket.local;
  }

  /** Closes a listener's socket now (its flows can no longer reply). */
  unbind(listener: Listener): void {
    this.#bound.get(listener)?.close();
    this.#bound.delete(listener);
  }

  /** The bound address of a listener, if bound. */
  local(listener: Listener): SocketAddress | undefined {
    return this.#bound.get(listener)?.local;
  }

  /** An event of one of this driver's listeners or flows (from the core loop). */
  onEvent(e: DriverEvent): void {
    if (e.kind === "open") {
      const flow = e.flow;
      const socket = this.#bound.get(flow.listener);
      // The listener's socket went while the flow awaited its backend: nothing can reply to its client.
      if (socket === undefined) return void this.#core.close(flow, "aborted");
      const link = this.#open(flow, socket);
      if (e.held !== null) this.#toBackend(flow, link, e.withHeader ? withHeader(flow, e.held) : e.held);
    } else if (e.kind === "closed") {
      const link = e.flow.handle;
      if (link instanceof FlowLink && !link.closed) {
        link.closed = true;
        link.queue = null;
        // Replies still on their way are read (and counted `late` by the core) until the window ends.
        if (link.up !== null) this.#late.add(link, this.#clock());
      }
    } else this.unbind(e.listener);
  }

  #fromClient(listener: Listener, data: Uint8Array, ip: string, port: number): void {
    const core = this.#core;
    const r = core.fromClient(listener, ip, port, data, this.#clock());
    if (typeof r === "number") return; // dropped and counted by the core
    if (core.hasEvents) this.#loop.drain(); // a new flow's `open` makes its link before the datagram goes
    const link = r.handle as FlowLink | null;
    if (link !== null && r.state !== FlowState.AwaitingBackend) {
      this.#toBackend(r, link, r.headerDue ? withHeader(r, data) : data);
    }
  }

  #toBackend(flow: Flow, link: FlowLink, payload: Uint8Array): void {
    if (link.up !== null) {
      const res = link.up.send(payload);
      if (res !== Sent.Ok) {
        this.#core.sendFailed(flow, "to_backend", res === Sent.Refused ? "refused" : "error", this.#clock());
      }
    } else if (link.queue !== null) {
      // The receive buffer is reused: keep a copy until the socket is open.
      link.queue.push(payload.slice());
    }
  }

  #open(flow: Flow, socket: ListenerSocket): FlowLink {
    const link = new FlowLink(flow, socket, socket.peer(flow.clientIp, flow.clientPort));
    flow.handle = link;
    const backend = flow.backend;
    if (backend === null) return link;
    const maxReply = flow.listener.config.maxDatagramSize;
    this.#sockets.openUpstream(backend.address, maxReply, {
      reply: (data) => this.#fromBackend(link, data),
      // Counted after the flow closed too (the socket is in its late-reply window).
      truncated: () => this.#core.replyTruncated(flow),
      error: (refused) => {
        if (!link.closed) {
          this.#core.sendFailed(flow, "to_backend", refused ? "refused" : "error", this.#clock());
        }
      },
    }).then((up) => {
      if (link.closed) return up.close();
      link.up = up;
      const queued = link.queue ?? [];
      link.queue = null;
      for (const d of queued) this.#toBackend(flow, link, d);
    }, (error) => {
      link.queue = null;
      this.#hooks.upstreamFailed?.(flow, error);
      this.#core.upstreamFailed(flow, this.#clock());
    });
    return link;
  }

  #fromBackend(link: FlowLink, data: Uint8Array): void {
    const core = this.#core;
    const flow = link.flow;
    // Not every runtime bounds what its upstream socket takes (Bun's has no receive size): check here.
    if (data.byteLength > flow.listener.config.maxDatagramSize) return core.replyTruncated(flow);
    if (!core.fromBackend(flow, data.byteLength, this.#clock(), data)) return;
    if (link.socket.sendTo(data, link.peer) !== Sent.Ok) {
      core.sendFailed(flow, "to_client", "error", this.#clock());
    }
    if (core.hasEvents) this.#loop.drain();
  }

  /** Closed flows' upstream sockets still open for late replies. */
  get lingering(): number {
    return this.#late.size;
  }

  /** Closes every socket. Flows are not closed in the core: the owner decides how they end. */
  stop(): void {
    this.#late.releaseAll();
    for (const flow of this.#core.flows()) {
      const link = flow.handle;
      if (link instanceof FlowLink) {
        link.closed = true;
        link.up?.close();
      }
    }
    for (const socket of this.#bound.values()) socket.close();
    this.#bound.clear();
  }
}

/**
 * `data` on `flow` with its PROXY header in front, in one datagram (the core said the header is due). On the runtime paths that is one copy per datagram carrying the
 * header ("first": once per flow; "every": each time); the native path sends the two parts with one
 * sendmsg and two iovecs instead.
 */
function withHeader(flow: Flow, data: Uint8Array): Uint8Array {
  const header = flow.proxyHeader as Uint8Array;
  const out = new Uint8Array(header.byteLength + data.byteLength);
  out.set(header, 0);
  out.set(data, header.byteLength);
  return out;
}
