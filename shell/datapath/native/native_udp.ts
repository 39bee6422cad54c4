/**
 * The native UDP driver (Linux): the same core, driven the same way as `UdpRelay` drives it (the same
 * admission calls, events and counters), over libc sockets batched with recvmmsg/sendmmsg:
 *
 * - a listener readable → recvmmsg of up to a batch → `core.fromClient` per datagram → the datagram goes
 *   out on its flow's connected upstream socket straight from the receive slot (consecutive datagrams of
 *   one flow together: one UDP GSO sendmsg when equal-sized, else one sendmmsg; a PROXY header as a
 *   second iovec, never a copy);
 * - an upstream readable → recvmmsg into the listener's reply slots → `core.fromBackend` per reply →
 *   one sendmmsg per listener at the end of the round (consecutive replies to one client as one GSO
 *   message), with a PKTINFO cmsg on wildcard listeners so each reply leaves from the address its client
 *   wrote to;
 * - every failed syscall is counted by errno (`errors`) and, where it costs a datagram, reported to the
 *   core (`sendFailed`, `replyTruncated`) exactly where the runtime driver reports it.
 *
 * The runtime `UdpRelay` of the same relay stays the one consumer of the core's events and owner of the
 * deadline timer: it hands the events of native listeners' flows to this driver (`UdpPath`), and this
 * driver calls its `pump` after changing the core.
 *
 * @module
 */

import { KernelFilters } from "./kernel_filter.ts";
import {
  DEFAULT_SOCKET_BUFFER,
  NativeFlow,
  NativeListener,
  type NativeListenerKnobs,
  type NativeListenerStats,
  type NativeUdpOptions,
} from "./native_records.ts";
import type { SocketAddress } from "../../../core/address.ts";
import { type Flow, FlowState } from "../../../core/flow.ts";
import type { Listener } from "../../../core/listener.ts";
import type { CoreEvent, RelayCore } from "../../../core/relay_core.ts";
import type { ListenerConfig } from "../../../core/types.ts";
import type { Clock, Resolver, UdpPath, UdpRelayHooks } from "../udp_relay.ts";
import { LateWindow } from "../late_window.ts";
import { ReplyTx } from "./reply_tx.ts";
import { ScratchIo } from "./scratch_io.ts";
import { Batches } from "./batches.ts";
import { EpollLoop, LISTENER_TAG, WAKE_TAG } from "./epoll_loop.ts";
import { Errno, ErrnoCounts, NativeError } from "./errno.ts";
import type { Libc, Ptr } from "./ffi.ts";
import {
  IOVEC,
  MMSGHDR,
  MSG_DONTWAIT,
  MSG_TRUNC,
  MSGHDR,
  RECV_CONTROL,
  SEND_CONTROL,
  SOCKADDR_MAX,
  writeSockaddr,
} from "./layout.ts";
import { type ControlSeen, replyPktinfo, scanControl } from "./peers.ts";
import { ClientLookup } from "./client_lookup.ts";
import { isWildcard, openListenerSocket, openUpstreamSocket, type Scratch } from "./sockets.ts";

/** The driver's options, knobs and stats, declared in native_records.ts; re-exported for existing importers. */
export {
  DEFAULT_SOCKET_BUFFER,
  type NativeListenerKnobs,
  type NativeListenerStats,
  type NativeUdpOptions,
} from "./native_records.ts";

/** Rounds of recvmmsg per readiness event, so one busy socket cannot starve the others. */
const ROUNDS = 4;

/** Drives the native UDP listeners of one RelayCore. */
export class NativeUdp implements UdpPath {
  readonly #core: RelayCore;
  readonly #libc: Libc;
  readonly #clock: Clock;
  readonly #hooks: UdpRelayHooks;
  readonly #pump: () => void;
  readonly #pktinfo: "auto" | "always" | "never";
  readonly #onError: ((error: unknown) => void) | undefined;
  readonly #gso: boolean;
  /** `Batches.packReplies`' predicate, made once. */
  readonly #canGso = (flow: unknown) => !((flow as Flow).handle as NativeFlow).noGso;
  readonly #bound = new Map<Listener, NativeListener>();
  /** Every listener this driver ever bound: their flows' events stay here after an unbind. */
  readonly #owned = new WeakSet<Listener>();
  #slots: (NativeListener | null)[] = [];
  #byFd: (NativeFlow | undefined)[] = [];
  /** The scratch area and its one-datagram paths (shell/datapath/native/scratch_io.ts). */
  readonly #io: ScratchIo;
  readonly #scratch: Scratch;
  /** Whether `nf`'s socket is still this driver's (made once for `ScratchIo.drainOrphan`). */
  readonly #ours = (nf: NativeFlow): boolean => this.#byFd[nf.fd] === nf;
  /** The pump, bound once. */
  readonly #pumpNow = (): void => this.#pump();
  readonly #loop: EpollLoop;
  #resolver: Resolver | null = null;
  #onListenerDone: ((listener: Listener) => void) | null = null;
  #stopped = false;
  readonly #dirty: NativeListener[] = [];
  /** A run of consecutive datagrams of one flow waiting to go upstream in one call. */
  #runFlow: NativeFlow | null = null;
  #runB: Batches | null = null;
  #runStart = 0;
  #runEnd = 0;
  /** A flow was opened since the last pump (its deadline may be the earliest). */
  #opened = false;
  /** Sockaddr → flow or refusal, without building the client's text (shell/datapath/native/client_lookup.ts). */
  readonly #lookup: ClientLookup;
  readonly #seen: ControlSeen = { overflows: -1, pktinfo: -1 };
  /** Failed syscalls by call and errno. */
  readonly errors: ErrnoCounts = new ErrnoCounts();
  /** Upstream sockets of live flows (closed flows' sockets in the late-reply window are `lingering`). */
  upstreams = 0;
  /** Closed flows' upstream sockets, still read for a while so late replies are counted (late_window.ts). */
  readonly #late: LateWindow<NativeFlow>;
  /** Datagrams that went out as extra segments of a UDP GSO send (syscalls saved), each way. */
  readonly gsoSaved = { up: 0, down: 0 };
  /** Kernel socket filters of the bound listeners (shell/datapath/native/kernel_filter.ts). */
  readonly kernelFilters: KernelFilters;
  /** The replies' way out (shell/datapath/native/reply_tx.ts). */
  readonly #tx: ReplyTx;

  /**
   * A driver for `core` over `libc`. `pump` is the runtime driver's pump (the one consumer of the core's
   * events); hooks are the same as the runtime driver's.
   */
  constructor(
    core: RelayCore,
    libc: Libc,
    clock: Clock,
    pump: () => void,
    hooks: UdpRelayHooks = {},
    options: NativeUdpOptions = {},
  ) {
    this.#core = core;
    this.#libc = libc;
    this.#clock = clock;
    this.#pump = pump;
    this.#hooks = hooks;
    this.#pktinfo = options.pktinfo ?? "auto";
    this.#onError = options.onError;
    this.#gso = options.gso ?? true;
    this.#loop = new EpollLoop(libc, clock);
    this.kernelFilters = new KernelFilters(libc, core, clock, (fd) => this.#scratch.drops(fd));
    this.#lookup = new ClientLookup(core);
    this.#io = new ScratchIo(libc, core, clock, this.errors, (call, errno) => this.#recvError(call, errno));
    this.#scratch = this.#io.scratch;
    this.#late = new LateWindow((nf) => this.#release(nf), clock);
    this.#tx = new ReplyTx(libc, core, clock, this.errors, this.#canGso, this.gsoSaved);
  }

  // ---- the driver surface (as UdpRelay's) ----------------------------------------------------------------

  /** Unused here: removed UDP listeners are unbound by this driver; TCP ones never reach it. */
  setListenerDone(handler: (listener: Listener) => void): void {
    this.#onListenerDone = handler;
  }

  /** Sets the resolver for flows of `external` clusters. */
  setResolver(resolver: Resolver | null): void {
    this.#resolver = resolver;
  }

  /** Acts on the core's events (through the runtime driver, which routes this driver's events here). */
  pump(): void {
    this.#pump();
  }

  /** Binds the socket of a UDP listener of the core. Returns the bound address. */
  bind(listener: Listener, reusePort: boolean): Promise<SocketAddress> {
    if (this.#stopped) return Promise.reject(new Error("the native UDP driver is stopped"));
    const cfg = listener.config as ListenerConfig & NativeListenerKnobs;
    const pktinfo = this.#pktinfo === "always" || (this.#pktinfo === "auto" && isWildcard(cfg.address.ip));
    try {
      const info = openListenerSocket(this.#scratch, cfg.address, {
        reusePort,
        recvBuffer: cfg.recvBuffer ?? DEFAULT_SOCKET_BUFFER,
        sendBuffer: cfg.sendBuffer ?? DEFAULT_SOCKET_BUFFER,
        pktinfo,
      });
      let b: Batches;
      try {
        b = new Batches(this.#libc, cfg.maxDatagramSize, info.local.family);
      } catch (e) {
        this.#libc.close(info.fd);
        throw e;
      }
      let index = this.#slots.indexOf(null);
      if (index === -1) index = this.#slots.length;
      const nl = new NativeListener(listener, info, b, index, reusePort, this.#gso);
      const e = this.#loop.add(info.fd, LISTENER_TAG + index);
      if (e !== 0) {
        this.#libc.close(info.fd);
        b.free();
        throw new NativeError("epoll_ctl", e);
      }
      this.#slots[index] = nl;
      this.#bound.set(listener, nl);
      if (listener.flows > 0) this.#lookup.seed(nl, this.#core.flows());
      this.kernelFilters.add(listener, info.fd);
      this.#owned.add(listener);
      listener.localAddress = info.local;
      this.#loop.start({ dispatch: (n) => this.#dispatch(n), failed: (err) => this.#failed(err) });
      return Promise.resolve(info.local);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Closes a listener's socket now (its flows can no longer reply). */
  unbind(listener: Listener): void {
    const nl = this.#bound.get(listener);
    if (nl === undefined) return;
    this.#bound.delete(listener);
    this.kernelFilters.remove(listener);
    nl.closed = true;
    this.#libc.close(nl.info.fd);
    this.#slots[nl.index] = null;
    // A dispatch up the stack may still read its buffers: free them between rounds.
    this.#loop.later(() => nl.b.free());
  }

  /** The bound address of a listener, if bound. */
  local(listener: Listener): SocketAddress | undefined {
    return this.#bound.get(listener)?.info.local;
  }

  /** What the kernel granted a bound listener, and its drop counter. */
  stats(listener: Listener): NativeListenerStats | undefined {
    const nl = this.#bound.get(listener);
    if (nl === undefined) return undefined;
    const i = nl.info;
    const now = this.#scratch.drops(i.fd);
    let up = now < 0 ? -1 : nl.upstreamDropsClosed;
    for (const nf of this.#byFd) {
      if (up < 0) break;
      if (nf === undefined || nf.nl !== nl) continue;
      const d = this.#scratch.drops(nf.fd);
      if (d > 0) up += d;
    }
    return {
      local: i.local,
      recvBuffer: i.recvBuffer,
      sendBuffer: i.sendBuffer,
      rxqOverflows: now >= 0 ? Math.max(now, nl.rxqOverflows) : i.rxqOverflow ? nl.rxqOverflows : null,
      upstreamRxqOverflows: up < 0 ? null : up,
      pktinfo: i.pktinfo,
      reusePort: nl.reusePort,
      batch: nl.b.count,
      gso: nl.gso,
      kernelFilter: this.kernelFilters.status(listener) ?? null,
    };
  }

  /** Closed flows' upstream sockets still open for late replies. */
  get lingering(): number {
    return this.#late.size;
  }

  /** Rounds dispatched and times the loop slept off-thread (tests, diagnostics). */
  get loopStats(): { rounds: number; sleeps: number } {
    return { rounds: this.#loop.rounds, sleeps: this.#loop.sleeps };
  }

  /** Resolves once a stopped driver released everything (its loop left any off-thread wait). */
  get closed(): Promise<void> {
    return this.#loop.done;
  }

  /** Closes every socket. Flows are not closed in the core: the owner decides how they end. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.kernelFilters.stop();
    this.#late.releaseAll();
    const libc = this.#libc;
    for (const nf of this.#byFd) {
      if (nf === undefined) continue;
      nf.closed = true;
      libc.close(nf.fd);
    }
    this.#byFd = [];
    this.upstreams = 0;
    for (const nl of this.#bound.values()) {
      nl.closed = true;
      libc.close(nl.info.fd);
      this.#loop.later(() => nl.b.free());
    }
    this.#bound.clear();
    this.#slots = [];
    this.#loop.later(() => this.#io.free());
    this.#loop.stop();
  }

  // ---- events routed from the runtime driver (UdpPath) ---------------------------------------------------

  /** Whether `listener`'s flows and events belong to this driver. */
  owns(listener: Listener): boolean {
    return this.#owned.has(listener);
  }

  /** A core event of one of this driver's listeners or flows. */
  event(e: CoreEvent): void {
    if (e.kind === "closed") {
      const nl = this.#bound.get(e.flow.listener);
      if (nl !== undefined) this.#lookup.forget(nl, e.flow);
      const nf = e.flow.handle;
      if (nf instanceof NativeFlow) this.#closeFlow(nf);
    } else if (e.kind === "resolve") this.#resolve(e.flow);
    else if (e.kind === "listener_done") {
      if (e.listener.config.protocol === "udp") this.unbind(e.listener);
      else this.#onListenerDone?.(e.listener);
    }
  }

  #closeFlow(nf: NativeFlow): void {
    if (nf.closed) return;
    if (this.#runFlow === nf) this.#flushUp(this.#clock());
    nf.closed = true;
    if (this.#stopped) return;
    this.upstreams--;
    // The socket stays in epoll a while: replies still on their way are read and counted `late`.
    this.#late.add(nf, this.#clock());
  }

  /** Closes a closed flow's socket for good (its late-reply window ended). */
  #release(nf: NativeFlow): void {
    if (this.#byFd[nf.fd] !== nf) return; // stop() already closed it
    this.#byFd[nf.fd] = undefined;
    // The kernel's drops at this socket are counted before it goes (SO_MEMINFO).
    const drops = this.#scratch.drops(nf.fd);
    if (drops > 0) nf.nl.upstreamDropsClosed += drops;
    this.#libc.close(nf.fd);
  }

  // ---- the loop ------------------------------------------------------------------------------------------

  #dispatch(n: number): void {
    const loop = this.#loop;
    for (let e = 0; e < n; e++) {
      const tag = loop.tag(e);
      if (tag >= LISTENER_TAG) {
        const nl = this.#slots[tag - LISTENER_TAG];
        if (nl != null && !nl.closed) this.#onListener(nl);
      } else if (tag !== WAKE_TAG) {
        const nf = this.#byFd[tag];
        if (nf !== undefined) this.#onUpstream(nf);
      }
    }
    this.#flushReplies();
    if (this.#opened || this.#core.hasEvents) {
      this.#opened = false;
      this.#pump();
    }
  }

  #failed(error: unknown): void {
    this.errors.bump("loop");
    (this.#onError ?? console.error)(error);
  }

  // ---- client → backend ----------------------------------------------------------------------------------

  #onListener(nl: NativeListener): void {
    const libc = this.#libc;
    this.kernelFilters.refresh(nl.listener);
    if (nl.listener.config.maxDatagramSize >= nl.b.slot) this.#resize(nl);
    const b = nl.b;
    for (let round = 0; round < ROUNDS; round++) {
      b.resetRx(nl.lastRx, nl.nameLen);
      const n = libc.recvmmsg(nl.info.fd, b.rxMm, b.count, MSG_DONTWAIT);
      nl.lastRx = n > 0 ? n : 0;
      if (n <= 0) {
        if (n < 0) this.#recvError("recvmmsg", libc.errno());
        return;
      }
      const now = this.#clock();
      for (let i = 0; i < n; i++) this.#fromClient(nl, b, i, now);
      this.#flushUp(now);
      if (this.#opened || this.#core.hasEvents) {
        this.#opened = false;
        this.#pump();
      }
      if (nl.closed || n < b.count) return;
    }
  }

  #recvError(call: string, errno: number): void {
    if (errno !== Errno.EAGAIN && errno !== Errno.EINTR) this.errors.add(call, errno);
  }

  /** A bigger max_datagram_size after a reload: new buffers (the old are freed between rounds). */
  #resize(nl: NativeListener): void {
    this.#flushReplies();
    const old = nl.b;
    nl.b = new Batches(this.#libc, nl.listener.config.maxDatagramSize, nl.family);
    nl.lastRx = 0;
    this.#loop.later(() => old.free());
  }

  #fromClient(nl: NativeListener, b: Batches, i: number, now: number): void {
    const u8 = b.u8;
    const r = b.r;
    const len = b.dv.getUint32(r.rxMm + i * MMSGHDR.size + MMSGHDR.len, true);
    const name = r.rxName + i * SOCKADDR_MAX;
    const port = (u8[name + 2] << 8) | u8[name + 3];
    const m = r.rxMm + i * MMSGHDR.size;
    const clen = b.dv.getUint32(m + MSGHDR.controllen, true);
    let pkt = -1;
    if (clen > 0) {
      const seen = this.#seen;
      scanControl(b.dv, r.rxCtl + i * RECV_CONTROL, Math.min(clen, RECV_CONTROL), seen);
      if (seen.overflows >= 0) nl.rxqOverflows = seen.overflows;
      pkt = seen.pktinfo;
    }
    // Known flows by their sockaddr bytes, unknown clients screened string-free (client_lookup.ts).
    const f = this.#lookup.fromClient(nl, u8, name, port, b.rxView(i, len), now);
    if (typeof f === "number" || f.state === FlowState.AwaitingBackend) return;
    let nf = f.handle as NativeFlow | null;
    if (nf === null) {
      nf = this.#open(f, nl, u8.slice(name, name + nl.nameLen), now);
      if (nf === null) return;
    }
    if (pkt >= 0) nf.pkt = replyPktinfo(u8, b.dv, pkt, nf.pkt);
    if (f.headerDue) {
      this.#flushUp(now);
      b.setUpHeader(i, f.proxyHeader as Uint8Array, len);
      this.#sendUp(nf, b.upMm2, i, 1, now);
    } else if (this.#runFlow === nf && this.#runEnd === i && this.#runB === b) {
      b.setUpLen(i, len);
      this.#runEnd++;
    } else {
      this.#flushUp(now);
      b.setUpLen(i, len);
      this.#runFlow = nf;
      this.#runB = b;
      this.#runStart = i;
      this.#runEnd = i + 1;
    }
  }

  /** Sends the pending run of one flow's datagrams: one GSO sendmsg when it can, else sendmmsg. */
  #flushUp(now: number): void {
    const nf = this.#runFlow;
    if (nf === null) return;
    this.#runFlow = null;
    const b = this.#runB as Batches;
    let start = this.#runStart;
    let count = this.#runEnd - start;
    const seg = count > 1 && nf.nl.gso && !nf.noGso ? b.upSegment(start, count) : 0;
    if (seg > 0) {
      if (this.#libc.sendmsg(nf.fd, b.upGsoMsg(start, count, seg), 0) >= 0) {
        this.gsoSaved.up += count - 1;
        return;
      }
      const e = this.#libc.errno();
      if (e === Errno.ECONNREFUSED) {
        // As a plain send would: the refusal costs the first datagram; the rest go on.
        this.errors.add("send", e);
        this.#core.sendFailed(nf.flow, true, true, now);
        start++;
        count--;
      } else if (e === Errno.EAGAIN || e === Errno.ENOBUFS) {
        this.errors.add("send", e);
        for (let k = 0; k < count; k++) this.#core.sendFailed(nf.flow, true, false, now);
        return;
      } else {
        this.errors.add("send(gso)", e);
        nf.noGso = true;
      }
    }
    this.#sendUp(nf, b.upMm, start, count, now);
  }

  /** Sends `count` prepared up mmsghdrs from `refs[start]` on the flow's socket; counts every failure. */
  #sendUp(nf: NativeFlow, refs: readonly Ptr[], start: number, count: number, now: number): void {
    const libc = this.#libc;
    let off = 0;
    while (off < count) {
      const k = count - off === 1
        ? (libc.sendmsg(nf.fd, refs[start + off], 0) >= 0 ? 1 : -1)
        : libc.sendmmsg(nf.fd, refs[start + off], count - off, 0);
      if (k > 0) {
        off += k;
        continue;
      }
      const e = libc.errno();
      this.errors.add("send", e);
      this.#core.sendFailed(nf.flow, true, e === Errno.ECONNREFUSED, now);
      off++; // that datagram is lost; the next may go (a refusal is reported once)
    }
  }

  #open(f: Flow, nl: NativeListener, name: Uint8Array, now: number): NativeFlow | null {
    const address = (f.backend as NonNullable<Flow["backend"]>).address;
    const fd = openUpstreamSocket(this.#scratch, address);
    if (fd < 0) return this.#openFailed(f, "socket/connect", -fd, now);
    const e = this.#loop.add(fd, fd);
    if (e !== 0) {
      this.#libc.close(fd);
      return this.#openFailed(f, "epoll_ctl", e, now);
    }
    const nf = new NativeFlow(f, nl, fd, name);
    this.#byFd[fd] = nf;
    f.handle = nf;
    this.upstreams++;
    this.#opened = true;
    return nf;
  }

  /** As the runtime driver: an upstream that cannot open (EMFILE, ...) fails the flow. */
  #openFailed(f: Flow, call: string, errno: number, now: number): null {
    this.errors.add(call, errno);
    this.#hooks.upstreamFailed?.(f, new NativeError(call, errno));
    this.#core.sendFailed(f, true, false, now);
    this.#core.close(f, "aborted");
    return null;
  }

  // ---- backend → client ----------------------------------------------------------------------------------

  #onUpstream(nf: NativeFlow): void {
    const nl = nf.nl;
    if (nl.closed || nf.closed) return this.#io.drainOrphan(nf, this.#ours, this.#pumpNow);
    const core = this.#core;
    const libc = this.#libc;
    const flow = nf.flow;
    const max = nl.listener.config.maxDatagramSize;
    for (let round = 0; round < ROUNDS && !nf.closed && !nl.closed; round++) {
      const b = nl.b;
      if (b.txCount === b.count) this.#tx.flush(nl);
      const start = b.txCount;
      const room = b.count - start;
      const n = libc.recvmmsg(nf.fd, b.urxMm[start], room, MSG_DONTWAIT | MSG_TRUNC);
      if (n <= 0) {
        if (n === 0) return;
        const e = libc.errno();
        this.#recvError("recv", e);
        if (e !== Errno.ECONNREFUSED) return;
        // The backend's port was unreachable (ICMP): counted against it, as the runtime path does; queued
        // replies may still follow, so read on.
        core.sendFailed(flow, true, true, this.#clock());
        if (core.hasEvents) this.#pump();
        continue;
      }
      const now = this.#clock();
      const dv = b.dv;
      let at = start;
      for (let j = 0; j < n; j++) {
        const slot = start + j;
        const len = dv.getUint32(b.r.urxMm + slot * MMSGHDR.size + MMSGHDR.len, true);
        if (len > max) {
          core.replyTruncated(flow);
          continue;
        }
        // The reply sits in tx slot `slot` (recvmmsg wrote it there): the core reads it in place.
        if (!core.fromBackend(flow, len, now, b.u8, b.r.txData + slot * b.slot)) continue;
        if (at !== slot) {
          const from = b.r.txData + slot * b.slot;
          b.u8.copyWithin(b.r.txData + at * b.slot, from, from + len);
        }
        this.#queueReply(nl, b, at, nf, len);
        at++;
        // Replies read after the one that closed the flow reach `fromBackend` above: counted as late.
      }
      b.txCount = at;
      if (at > start && !nl.dirty) {
        nl.dirty = true;
        this.#dirty.push(nl);
      }
      if (core.hasEvents) this.#pump();
      if (n < room) return;
    }
  }

  #queueReply(nl: NativeListener, b: Batches, at: number, nf: NativeFlow, len: number): void {
    const r = b.r;
    b.dv.setUint32(r.txIov + at * IOVEC.size + IOVEC.len, len, true);
    b.txLen[at] = len;
    b.u8.set(nf.name, r.txName + at * SOCKADDR_MAX);
    const pkt = nl.info.pktinfo ? nf.pkt : null;
    if (pkt !== null) b.u8.set(pkt, r.txCtl + at * SEND_CONTROL);
    b.txPktLen[at] = pkt === null ? 0 : pkt.byteLength;
    b.txFlow[at] = nf.flow;
  }

  #flushReplies(): void {
    const dirty = this.#dirty;
    for (let i = 0; i < dirty.length; i++) {
      const nl = dirty[i];
      nl.dirty = false;
      this.#tx.flush(nl);
    }
    dirty.length = 0;
  }

  // ---- external resolution -------------------------------------------------------------------------------

  #resolve(flow: Flow): void {
    const done = (address: SocketAddress | null) => {
      if (this.#stopped) return;
      const core = this.#core;
      const now = this.#clock();
      const f = core.resolved(flow, address, now);
      if (f !== null) {
        const nl = this.#bound.get(f.listener);
        const pending = core.takePending(f);
        if (nl !== undefined && !nl.closed) {
          const name = new Uint8Array(SOCKADDR_MAX);
          writeSockaddr(name, 0, { ip: f.clientIp, port: f.clientPort, family: nl.family });
          const nf = this.#open(f, nl, name.subarray(0, nl.nameLen), now);
          if (nf !== null && pending !== null) {
            this.#io.sendCopy(nf, f.headerDue ? f.proxyHeader : null, pending, now);
          }
        } else core.close(f, "aborted");
      }
      this.#opened = false;
      this.#pump();
    };
    const resolver = this.#resolver;
    if (resolver === null) return done(null);
    resolver(flow).then(done, () => done(null));
  }
}
