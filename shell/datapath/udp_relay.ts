/**
 * The UDP driver: binds listeners, feeds datagrams into the core, opens and closes upstream sockets as the
 * core admits and closes flows, and keeps the core's single deadline armed. Runtime-neutral: a `UdpSockets`
 * adapter does the syscalls, so Bun and Deno drive the core identically.
 *
 * Forwarding on an established flow allocates nothing here: a flow's link (its upstream socket and its
 * client's peer reference) is made once, when the flow is admitted.
 *
 * @module
 */

import type { SocketAddress } from "../../core/address.ts";
import { type Flow, FlowState } from "../../core/flow.ts";
import { isUdpListener, type Listener } from "../../core/listener.ts";
import type { HealthChange } from "../../core/health.ts";
import { type CoreEvent, eventListener, type RelayCore } from "../../core/relay_core.ts";
import { type ListenerSocket, Sent, type UdpSockets, type UpstreamSocket } from "./udp_sockets.ts";
import { LateWindow } from "./late_window.ts";

/** A monotonic clock in milliseconds. */
export type Clock = () => number;

/** Resolves a flow's backend for `external` clusters (Redis routing); null = no answer. */
export type Resolver = (flow: Flow) => Promise<SocketAddress | null>;

/** A flow's shell-side resources. */
class FlowLink {
  up: UpstreamSocket | null = null;
  /** Datagrams waiting while the upstream socket opens (copies). */
  queue: Uint8Array[] | null = [];
  closed = false;
  constructor(readonly flow: Flow, readonly socket: ListenerSocket, readonly peer: unknown) {}
}

/** Errors the driver reports upward (logged by the owner; never per datagram at the default level). */
export interface UdpRelayHooks {
  /** An upstream socket could not be opened. */
  upstreamFailed?(flow: Flow, error: unknown): void;
  /** A backend's health status changed (once per transition). */
  health?(cluster: string, backend: string, change: HealthChange): void;
  /** A cluster with no usable backend started failing open (once per episode). */
  failOpen?(cluster: string): void;
  /** The descriptor budget started refusing new flows and connections (once per episode). */
  fdLimit?(budget: number): void;
}

/**
 * Another data path serving some UDP listeners of the same core (the native one, shell/datapath/native/): this
 * driver stays the one consumer of the core's events and owner of the deadline timer, and hands it the
 * events of its listeners and their flows.
 */
export interface UdpPath {
  /** Whether `listener` (and its flows) belong to that path. */
  owns(listener: Listener): boolean;
  /** A "closed", "resolve" or "listener_done" event of one of its listeners or flows. */
  event(e: CoreEvent): void;
  /** The resolver for flows of `external` clusters. */
  setResolver(resolver: Resolver | null): void;
}

/** Drives one RelayCore's UDP listeners over one runtime's sockets. */
export class UdpRelay {
  readonly #core: RelayCore;
  readonly #sockets: UdpSockets;
  readonly #clock: Clock;
  readonly #hooks: UdpRelayHooks;
  /** Keyed by the core's listener object: a reload may replace a listener of the same name. */
  readonly #bound = new Map<Listener, ListenerSocket>();
  #resolver: Resolver | null = null;
  #path: UdpPath | null = null;
  #onListenerDone: ((listener: Listener) => void) | null = null;
  #onFlowClosed: ((flow: Flow) => void) | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #armedAt = Infinity;
  #stopped = false;
  /** Closed flows' upstream sockets, still read for a while so late replies are counted (late_window.ts). */
  readonly #late: LateWindow<FlowLink>;

  /** A driver for `core` over `sockets`. */
  constructor(core: RelayCore, sockets: UdpSockets, clock: Clock, hooks: UdpRelayHooks = {}) {
    this.#core = core;
    this.#sockets = sockets;
    this.#clock = clock;
    this.#hooks = hooks;
    this.#late = new LateWindow((link) => link.up?.close(), clock);
  }

  /** Who closes removed TCP listeners (the core's events arrive here, the TCP relay owns those sockets). */
  setListenerDone(handler: (listener: Listener) => void): void {
    this.#onListenerDone = handler;
  }

  /** Told of every closed flow, whichever data path served it (session records, flow histograms). */
  setFlowClosed(handler: (flow: Flow) => void): void {
    this.#onFlowClosed = handler;
  }

  /** Sets the resolver for flows of `external` clusters. Without one they fall back to the cluster's backends. */
  setResolver(resolver: Resolver | null): void {
    this.#resolver = resolver;
    this.#path?.setResolver(resolver);
  }

  /** Routes the events of another data path's listeners and flows to it (see UdpPath). */
  attach(path: UdpPath): void {
    this.#path = path;
    path.setResolver(this.#resolver);
  }

  /** Binds the socket of a UDP listener of the core. Returns the bound address. */
  async bind(listener: Listener, reusePort: boolean): Promise<SocketAddress> {
    const udp = isUdpListener(listener) ? listener.counters : null;
    const socket = await this.#sockets.bindListener(listener.config.address, {
      reusePort,
      maxDatagramSize: listener.config.maxDatagramSize,
      sendFailed: () => listener.counters.drops.send_error++,
      clientUnreachable: () => udp !== null && udp.clientUnreachable++,
    }, (data, ip, port) => this.#fromClient(listener, socket, data, ip, port));
    listener.localAddress = socket.local;
    this.#bound.set(listener, socket);
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

  #fromClient(listener: Listener, socket: ListenerSocket, data: Uint8Array, ip: string, port: number): void {
    const core = this.#core;
    const r = core.fromClient(listener, ip, port, data, this.#clock());
    if (typeof r === "number") return; // dropped and counted by the core
    if (r.state !== FlowState.AwaitingBackend) {
      let link = r.handle as FlowLink | null;
      if (link === null) link = this.#open(r, socket);
      this.#toBackend(r, link, payload(r, data));
    }
    if (core.hasEvents) this.pump();
  }

  #toBackend(flow: Flow, link: FlowLink, payload: Uint8Array): void {
    if (link.up !== null) {
      const res = link.up.send(payload);
      if (res !== Sent.Ok) this.#core.sendFailed(flow, true, res === Sent.Refused, this.#clock());
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
        if (!link.closed) this.#core.sendFailed(flow, true, refused, this.#clock());
      },
    }).then((up) => {
      if (link.closed) return up.close();
      link.up = up;
      const queued = link.queue ?? [];
      link.queue = null;
      for (const d of queued) this.#toBackend(flow, link, d);
      if (this.#core.hasEvents) this.pump();
    }, (error) => {
      link.queue = null;
      this.#hooks.upstreamFailed?.(flow, error);
      this.#core.sendFailed(flow, true, false, this.#clock());
      this.#core.close(flow, "aborted");
      this.pump();
    });
    this.#rearm();
    return link;
  }

  #fromBackend(link: FlowLink, data: Uint8Array): void {
    const core = this.#core;
    const flow = link.flow;
    // Not every runtime bounds what its upstream socket takes (Bun's has no receive size): check here.
    if (data.byteLength > flow.listener.config.maxDatagramSize) return core.replyTruncated(flow);
    if (!core.fromBackend(flow, data.byteLength, this.#clock(), data)) return;
    if (link.socket.sendTo(data, link.peer) !== Sent.Ok) core.sendFailed(flow, false, false, this.#clock());
    if (core.hasEvents) this.pump();
  }

  /**
   * Acts on the core's events: closes the sockets of closed flows, resolves external flows, closes the
   * sockets of removed listeners, and re-arms the deadline timer. Call it after any change made to the
   * core from outside the forwarding path (admin actions, reconfiguration).
   */
  pump(): void {
    const core = this.#core;
    const path = this.#path;
    for (let e = core.poll(); e !== undefined; e = core.poll()) {
      if (e.kind === "closed") this.#onFlowClosed?.(e.flow);
      const owner = path === null ? null : eventListener(e);
      if (path !== null && owner !== null && path.owns(owner)) {
        path.event(e);
      } else if (e.kind === "closed") {
        const link = e.flow.handle;
        if (link instanceof FlowLink && !link.closed) {
          link.closed = true;
          link.queue = null;
          // Replies still on their way are read (and counted `late` by the core) until the window ends.
          if (link.up !== null) this.#late.add(link, this.#clock());
        }
      } else if (e.kind === "resolve") this.#resolve(e.flow);
      else if (e.kind === "health") this.#hooks.health?.(e.cluster, e.backend.key, e.change);
      else if (e.kind === "fail_open") this.#hooks.failOpen?.(e.cluster);
      else if (e.kind === "fd_limit") this.#hooks.fdLimit?.(e.budget);
      else if (e.listener.config.protocol === "udp") this.unbind(e.listener);
      else this.#onListenerDone?.(e.listener);
    }
    this.#rearm();
  }

  #resolve(flow: Flow): void {
    const resolver = this.#resolver;
    const done = (address: SocketAddress | null) => {
      const f = this.#core.resolved(flow, address, this.#clock());
      if (f !== null) {
        const socket = this.#bound.get(f.listener);
        const pending = this.#core.takePending(f);
        if (socket !== undefined) {
          const link = this.#open(f, socket);
          if (pending !== null) {
            this.#toBackend(f, link, payload(f, pending));
          }
        } else this.#core.close(f, "aborted");
      }
      this.pump();
    };
    if (resolver === null) return done(null);
    resolver(flow).then(done, () => done(null));
  }

  #rearm(): void {
    if (this.#stopped) return;
    const at = this.#core.nextDeadline();
    if (at >= this.#armedAt) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#armedAt = at;
    if (at === Infinity) {
      this.#timer = null;
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#armedAt = Infinity;
      this.#core.onTimeout(this.#clock());
      this.pump();
    }, Math.max(0, Math.ceil(at - this.#clock())));
  }

  /** Closed flows' upstream sockets still open for late replies. */
  get lingering(): number {
    return this.#late.size;
  }

  /** Closes every socket and the timer. Flows are not closed in the core: the owner decides how they end. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
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
 * The datagram to send for `data` on `flow`: `data` itself, or, when the core says the PROXY header is due,
 * header and payload in one datagram. On the runtime paths that is one copy per datagram carrying the
 * header ("first": once per flow; "every": each time); the native path sends the two parts with one
 * sendmsg and two iovecs instead.
 */
function payload(flow: Flow, data: Uint8Array): Uint8Array {
  if (!flow.headerDue) return data;
  const header = flow.proxyHeader as Uint8Array;
  const out = new Uint8Array(header.byteLength + data.byteLength);
  out.set(header, 0);
  out.set(data, header.byteLength);
  return out;
}
