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
 * The core loop (shell/relay/core_loop.ts) is the one consumer of the core's events and owner of the
 * deadline timer: it hands this driver the events of its listeners and their flows (`CoreDriver`).
 *
 * @module
 */

import { KernelFilters } from "./kernel_filter.ts";
import {
  NativeFlow,
  NativeListener,
  type NativeListenerStats,
  type NativeUdpOptions,
} from "./native_records.ts";
import type { SocketAddress } from "../../../core/address.ts";
import { type Flow, FlowState } from "../../../core/flow.ts";
import type { Listener } from "../../../core/listener.ts";
import type { RelayCore } from "../../../core/relay_core.ts";
import type { UdpRelayHooks } from "../udp_relay.ts";
import type { Clock, CoreDriver, CoreLoop, DriverEvent } from "../../relay/core_loop.ts";
import { LateWindow } from "../late_window.ts";
import { ReplyTx } from "./reply_tx.ts";
import { ReplyRx, ROUNDS } from "./reply_rx.ts";
import { UpstreamTx } from "./upstream_tx.ts";
import { listenerStats } from "./listener_stats.ts";
import { ScratchIo } from "./scratch_io.ts";
import { Batches } from "./batches.ts";
import { EpollLoop, LISTENER_TAG, WAKE_TAG } from "./epoll_loop.ts";
import { Errno, ErrnoCounts, NativeError } from "./errno.ts";
import type { Libc } from "./ffi.ts";
import { MMSGHDR, MSG_DONTWAIT, MSGHDR, RECV_CONTROL, SOCKADDR_MAX } from "./layout.ts";
import { clientName, type ControlSeen, replyPktinfo, scanControl } from "./peers.ts";
import { ClientLookup } from "./client_lookup.ts";
import { openUpstreamSocket, type Scratch } from "./sockets.ts";
import { type ListenerOpenContext, openNativeListener } from "./listener_open.ts";
import { backendUsable, UpstreamPool } from "./upstream_pool.ts";

/** The driver's options, knobs and stats, declared in native_records.ts; re-exported for existing importers. */
export {
  DEFAULT_SOCKET_BUFFER,
  type NativeListenerKnobs,
  type NativeListenerStats,
  type NativeUdpOptions,
} from "./native_records.ts";

/** Drives the native UDP listeners of one RelayCore. */
export class NativeUdp implements CoreDriver {
  readonly #core: RelayCore;
  /** The core loop: the one consumer of the core's events. */
  readonly #events: CoreLoop;
  readonly #libc: Libc;
  readonly #clock: Clock;
  readonly #hooks: UdpRelayHooks;
  readonly #pktinfo: "auto" | "always" | "never";
  readonly #onError: ((error: unknown) => void) | undefined;
  readonly #gso: boolean;
  /** `Batches.packReplies`' predicate, made once. */
  readonly #canGso = (flow: unknown) => !((flow as Flow).handle as NativeFlow).noGso;
  readonly #bound = new Map<Listener, NativeListener>();
  #slots: (NativeListener | null)[] = [];
  #byFd: (NativeFlow | undefined)[] = [];
  /** The scratch area and its one-datagram paths (shell/datapath/native/scratch_io.ts). */
  readonly #io: ScratchIo;
  readonly #scratch: Scratch;
  /** Whether `nf`'s socket is still this driver's (made once for `ScratchIo.drainOrphan`). */
  readonly #ours = (nf: NativeFlow): boolean => this.#byFd[nf.fd] === nf;
  /** The core loop's drain, bound once. */
  readonly #drainNow = (): void => this.#events.drain();
  readonly #loop: EpollLoop;
  /** What `bind` passes to listener_open.ts, made once. */
  readonly #binding: ListenerOpenContext;
  #stopped = false;
  /** A run of consecutive datagrams of one flow waiting to go upstream in one call. */
  #runFlow: NativeFlow | null = null;
  #runB: Batches | null = null;
  #runStart = 0;
  #runEnd = 0;
  /** The batch and sockaddr offset of the datagram being admitted (its `open` copies the client's name). */
  #rxB: Batches | null = null;
  #rxName = 0;
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
  /** The replies' way in and out (shell/datapath/native/reply_rx.ts, reply_tx.ts). */
  readonly #rx: ReplyRx;
  /** The client datagrams' way up (shell/datapath/native/upstream_tx.ts). */
  readonly #up: UpstreamTx;
  /** Idle connected upstream sockets of flows closed by `responses`, per backend (upstream_pool.ts). */
  readonly pool: UpstreamPool;

  /** A driver for the core of `loop` over `libc`; hooks are the same as the runtime driver's. */
  constructor(loop: CoreLoop, libc: Libc, hooks: UdpRelayHooks = {}, options: NativeUdpOptions = {}) {
    const core = loop.core;
    const clock = loop.clock;
    this.#core = core;
    this.#events = loop;
    this.#libc = libc;
    this.#clock = clock;
    this.#hooks = hooks;
    this.#pktinfo = options.pktinfo ?? "auto";
    this.#onError = options.onError;
    this.#gso = options.gso ?? true;
    this.#loop = new EpollLoop(libc, clock);
    this.kernelFilters = new KernelFilters(libc, core, clock, (fd) => this.#scratch.drops(fd));
    this.#lookup = new ClientLookup(core);
    this.#io = new ScratchIo(libc, core, clock, this.errors, (call, errno) => this.#recvError(call, errno));
    this.#scratch = this.#io.scratch;
    this.#binding = {
      libc,
      scratch: this.#scratch,
      loop: this.#loop,
      pktinfo: this.#pktinfo,
      gso: this.#gso,
    };
    this.#late = new LateWindow((nf) => this.#release(nf), clock);
    const tx = new ReplyTx(libc, core, clock, this.errors, this.#canGso, this.gsoSaved);
    this.#rx = new ReplyRx({
      libc,
      core,
      clock,
      tx,
      io: this.#io,
      ours: this.#ours,
      drain: this.#drainNow,
      recvError: (call, errno) => this.#recvError(call, errno),
    });
    this.#up = new UpstreamTx(libc, core, this.errors, this.gsoSaved);
    this.pool = new UpstreamPool({
      usable: (b, cluster) => backendUsable(core, b, cluster),
      drain: (nf) => (this.#io.drainOrphan(nf, this.#ours, this.#drainNow), this.#ours(nf)),
      release: (nf) => this.#release(nf),
      clock,
    });
  }

  // ---- the driver surface (as UdpRelay's) ----------------------------------------------------------------

  /** Binds the socket of a UDP listener of the core. Returns the bound address. */
  bind(listener: Listener, reusePort: boolean): Promise<SocketAddress> {
    if (this.#stopped) return Promise.reject(new Error("the native UDP driver is stopped"));
    try {
      let index = this.#slots.indexOf(null);
      if (index === -1) index = this.#slots.length;
      const nl = openNativeListener(this.#binding, listener, reusePort, index);
      this.#slots[index] = nl;
      this.#bound.set(listener, nl);
      if (listener.flows > 0) this.#lookup.seed(nl, this.#core.flows());
      this.kernelFilters.add(listener, nl.info.fd);
      this.#events.route(listener, this);
      listener.localAddress = nl.info.local;
      this.#loop.start({ dispatch: (n) => this.#dispatch(n), failed: (err) => this.#failed(err) });
      return Promise.resolve(nl.info.local);
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
    return listenerStats(nl, this.#scratch, this.#byFd, this.kernelFilters.status(listener) ?? null);
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
    this.pool.releaseAll();
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

  // ---- events from the core loop (CoreDriver) ------------------------------------------------------------

  /** An event of one of this driver's listeners or flows. */
  onEvent(e: DriverEvent): void {
    if (e.kind === "open") this.#opened(e.flow, e.held, e.withHeader);
    else if (e.kind === "closed") {
      const nl = this.#bound.get(e.flow.listener);
      if (nl !== undefined) this.#lookup.forget(nl, e.flow);
      const nf = e.flow.handle;
      if (nf instanceof NativeFlow) this.#closeFlow(nf);
    } else if (e.kind === "listener_done") this.unbind(e.listener);
  }

  /**
   * A flow is Established: its upstream socket opens, and its held datagram (after a resolution) goes out.
   * The client's sockaddr is the receive slot's when the flow is being admitted from it, else made from text.
   */
  #opened(f: Flow, held: Uint8Array | null, header: boolean): void {
    const nl = this.#bound.get(f.listener);
    // The listener's socket went while the flow awaited its backend: nothing can reply to its client.
    if (nl === undefined || nl.closed) return void this.#core.close(f, "aborted");
    const now = this.#clock();
    const nf = this.#open(f, nl, clientName(f, nl, this.#rxB, this.#rxName), now);
    if (nf !== null && held !== null) this.#io.sendCopy(nf, header ? f.proxyHeader : null, held, now);
  }

  #closeFlow(nf: NativeFlow): void {
    if (nf.closed) return;
    if (this.#runFlow === nf) this.#flushUp(this.#clock());
    nf.closed = true;
    if (this.#stopped) return;
    this.upstreams--;
    const now = this.#clock();
    // Every reply it expected came: the socket may serve a later flow (after a quarantine).
    if (this.pool.put(nf, now)) return;
    // The socket stays in epoll a while: replies still on their way are read and counted `late`.
    this.#late.add(nf, now);
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
        if (nf !== undefined) this.#rx.onUpstream(nf);
      }
    }
    this.#rx.flush();
    if (this.#core.hasEvents) this.#events.drain();
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
      if (this.#core.hasEvents) this.#events.drain();
      if (nl.closed || n < b.count) return;
    }
  }

  #recvError(call: string, errno: number): void {
    if (errno !== Errno.EAGAIN && errno !== Errno.EINTR) this.errors.add(call, errno);
  }

  /** A bigger max_datagram_size after a reload: new buffers (the old are freed between rounds). */
  #resize(nl: NativeListener): void {
    this.#rx.flush();
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
    if (this.#core.hasEvents) this.#admitted(b, name);
    const nf = f.handle as NativeFlow | null;
    if (nf === null) return; // its upstream could not open: the flow was aborted
    if (pkt >= 0) nf.pkt = replyPktinfo(u8, b.dv, pkt, nf.pkt);
    if (f.headerDue) {
      this.#flushUp(now);
      b.setUpHeader(i, f.proxyHeader as Uint8Array, len);
      this.#up.send(nf, b.upMm2, i, 1, now);
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

  /** Drains the events of the datagram at `name` in `b` now: a new flow's `open` comes before its datagram. */
  #admitted(b: Batches, name: number): void {
    this.#rxB = b;
    this.#rxName = name;
    try {
      this.#events.drain();
    } finally {
      this.#rxB = null;
    }
  }

  /** Sends the pending run of one flow's datagrams (shell/datapath/native/upstream_tx.ts). */
  #flushUp(now: number): void {
    const nf = this.#runFlow;
    if (nf === null) return;
    this.#runFlow = null;
    this.#up.sendRun(nf, this.#runB as Batches, this.#runStart, this.#runEnd - this.#runStart, now);
  }

  #open(f: Flow, nl: NativeListener, name: Uint8Array, now: number): NativeFlow | null {
    const backend = f.backend as NonNullable<Flow["backend"]>;
    // A pooled socket is connected to this backend and still in the epoll set under its fd.
    const fd = this.pool.take(backend, now)?.fd ?? openUpstreamSocket(this.#scratch, backend.address);
    if (fd < 0) return this.#openFailed(f, "socket/connect", -fd, now);
    const e = this.#byFd[fd] === undefined ? this.#loop.add(fd, fd) : 0;
    if (e !== 0) {
      this.#libc.close(fd);
      return this.#openFailed(f, "epoll_ctl", e, now);
    }
    const nf = new NativeFlow(f, nl, fd, name);
    this.#byFd[fd] = nf;
    f.handle = nf;
    this.upstreams++;
    return nf;
  }

  /** As the runtime driver: an upstream that cannot open (EMFILE, ...) fails the flow. */
  #openFailed(f: Flow, call: string, errno: number, now: number): null {
    this.errors.add(call, errno);
    this.#hooks.upstreamFailed?.(f, new NativeError(call, errno));
    this.#core.upstreamFailed(f, now);
    return null;
  }
}
