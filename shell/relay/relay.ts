/**
 * A running relay: one RelayCore, the loop that owns its events and time (core_loop.ts), its UDP and TCP
 * drivers over one runtime's sockets, and the operations the CLI and the admin API need (apply a new
 * config, drain, shut down within a grace period).
 *
 * @module
 */

import { formatSocketAddress, type SocketAddress } from "../../core/address.ts";
import { type BackendDelta, withBackendDeltas } from "../../core/backend_delta.ts";
import type { Listener } from "../../core/listener.ts";
import { RelayCore } from "../../core/relay_core.ts";
import type { Datapath, FerryConfig, ListenerConfig } from "../../core/types.ts";
import { TcpRelay } from "../datapath/tcp_relay.ts";
import type { TcpSockets } from "../datapath/tcp_sockets.ts";
import { HealthProber, type ProbeTarget } from "./health_probes.ts";
import { UdpRelay, type UdpRelayHooks } from "../datapath/udp_relay.ts";
import { type Clock, CoreLoop } from "./core_loop.ts";
import type { UdpSockets } from "../datapath/udp_sockets.ts";
import type { Libc } from "../datapath/native/ffi.ts";
import { type NativeListenerStats, NativeUdp } from "../datapath/native/native_udp.ts";
import { procUdpDrops } from "../datapath/proc_udp_drops.ts";
import { chooseDatapath, type DatapathChoice, requestedDatapath } from "../datapath/native/select.ts";
import { FlowRecorder } from "../records/recorder.ts";

/** The runtime pieces a relay runs on. */
export interface Platform {
  /** "bun" or "deno". */
  readonly runtime: string;
  readonly udp: UdpSockets;
  readonly tcp: TcpSockets;
  readonly clock: Clock;
}

/** Options of a relay. */
export interface RelayOptions {
  /** Seed of the core's random choices; hash-based choices use each cluster's hash_seed instead. */
  readonly seed: number;
  /** The flow limit for listeners with max_flows = 0. */
  readonly autoMaxFlows?: number;
  /** Descriptors this relay's flows and connections may hold together (core/fd_budget.ts). */
  readonly descriptorBudget?: number;
  /** Bind listeners with SO_REUSEPORT (several workers on one port). */
  readonly reusePort?: boolean;
  readonly hooks?: UdpRelayHooks;
  /** A failure inside the native data path's loop (a bug: it is reported, and the loop carries on). */
  readonly nativeError?: (error: unknown) => void;
  /** The relay worker this relay is (relay.workers > 1), for its session records. */
  readonly worker?: number;
  /**
   * Set on relay workers: the main thread owns backend health (shell/workers/shared_health.ts). This relay
   * then runs no probes and sends its passive failures here; the verdicts come back to `core.adoptHealth`.
   */
  readonly reportPassive?: (cluster: string, backend: string, error: string) => void;
}

/** What a relay whose health is owned elsewhere probes: nothing. */
const NO_PROBES: ProbeTarget = { clusters: () => [], probeResult: () => {} };

/** How a UDP listener is served, for logs and the status endpoint. */
export interface ListenerDatapath extends DatapathChoice {
  /** The native path's socket facts (granted buffer sizes, receive-queue drops), when it serves it. */
  readonly native: NativeListenerStats | null;
}

function sameBinding(a: ListenerConfig, b: ListenerConfig): boolean {
  return a.protocol === b.protocol && a.address.ip === b.address.ip && a.address.port === b.address.port;
}

/** One relay. */
export class Relay {
  readonly core: RelayCore;
  /** The one consumer of the core's events and owner of its timer; the resolver is set on it. */
  readonly loop: CoreLoop;
  readonly udp: UdpRelay;
  readonly tcp: TcpRelay;
  readonly health: HealthProber;
  /** Session records and flow histograms, fed as flows and connections end. */
  readonly records: FlowRecorder;
  readonly platform: Platform;
  readonly #reusePort: boolean;
  readonly #options: RelayOptions;
  /** The native UDP driver, made on the first listener that runs on it. */
  #native: NativeUdp | null = null;
  readonly #datapaths = new WeakMap<Listener, DatapathChoice>();
  #config: FerryConfig;

  private constructor(config: FerryConfig, platform: Platform, options: RelayOptions) {
    this.#config = config;
    this.platform = platform;
    this.#reusePort = options.reusePort ?? false;
    this.#options = options;
    this.core = new RelayCore(config, {
      seed: options.seed,
      autoMaxFlows: options.autoMaxFlows,
      descriptorBudget: options.descriptorBudget,
      reportPassive: options.reportPassive,
    });
    this.loop = new CoreLoop(this.core, platform.clock, options.hooks);
    this.udp = new UdpRelay(this.loop, platform.udp, options.hooks);
    this.tcp = new TcpRelay(this.loop, platform.tcp);
    this.records = new FlowRecorder(config.records, platform.clock, { worker: options.worker });
    this.records.watch(() => this.core.flows(), () => this.core.connections());
    this.loop.setFlowClosed((flow) => this.records.flowClosed(flow));
    this.tcp.setConnectionEnded((conn, end, header) => this.records.connectionEnded(conn, end, header));
    this.health = new HealthProber(
      options.reportPassive === undefined ? this.core : NO_PROBES,
      platform.udp,
      platform.tcp,
      platform.clock,
      options.seed,
    );
  }

  /** Starts a relay on `config`: binds every listener, or closes what it bound and throws. */
  static async start(config: FerryConfig, platform: Platform, options: RelayOptions): Promise<Relay> {
    const relay = new Relay(config, platform, options);
    try {
      for (const l of relay.core.listeners()) await relay.#bind(l, config.relay.datapath);
    } catch (e) {
      relay.stop();
      throw e;
    }
    relay.health.sync();
    return relay;
  }

  /** The config running now. */
  get config(): FerryConfig {
    return this.#config;
  }

  /** Binds a listener; a UDP one on the data path its `datapath` (or the relay's, `global`) picks. */
  async #bind(l: Listener, global: Datapath): Promise<SocketAddress> {
    if (l.config.protocol !== "udp") return await this.tcp.bind(l, this.#reusePort);
    const choice = await chooseDatapath(requestedDatapath(l.config.datapath, global));
    const { libc, ...shown } = choice;
    const address = libc === undefined
      ? await this.udp.bind(l, this.#reusePort)
      : await this.#nativeDriver(libc).bind(l, this.#reusePort);
    this.#datapaths.set(l, shown);
    return address;
  }

  /**
   * `#bind`, retried briefly while the address is in use: a socket closed just before (a removed listener's)
   * may let go of its port a moment later (Deno drops it once its pending receive is cancelled).
   */
  async #bindSoon(l: Listener, global: Datapath): Promise<SocketAddress> {
    for (const wait of [0, 5, 20, 50]) {
      try {
        return await this.#bind(l, global);
      } catch (e) {
        if (!/in use|EADDRINUSE/i.test(String((e as Error)?.message ?? e))) throw e;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    return await this.#bind(l, global);
  }

  #nativeDriver(libc: Libc): NativeUdp {
    if (this.#native === null) {
      const o = this.#options;
      this.#native = new NativeUdp(this.loop, libc, o.hooks, { onError: o.nativeError });
    }
    return this.#native;
  }

  #unbindUdp(l: Listener): void {
    this.#native?.unbind(l); // whichever path bound it: the other has nothing to close
    this.udp.unbind(l);
  }

  /** The address a listener is bound to (the kernel's port when 0 was asked). */
  address(name: string): SocketAddress | undefined {
    const l = this.core.listener(name);
    if (l === undefined) return undefined;
    return l.config.protocol === "udp" ? this.udp.local(l) ?? this.#native?.local(l) : this.tcp.local(l);
  }

  /**
   * How a UDP listener is served: native or runtime, what was asked, why "auto" fell back, and on the
   * native path what the kernel granted (SO_RCVBUF/SO_SNDBUF) and the receive-queue drops (SO_RXQ_OVFL).
   * Undefined for TCP and unbound listeners.
   */
  datapath(name: string): ListenerDatapath | undefined {
    const l = this.core.listener(name);
    const choice = l === undefined ? undefined : this.#datapaths.get(l);
    if (l === undefined || choice === undefined) return undefined;
    return { ...choice, native: this.#native?.stats(l) ?? null };
  }

  /**
   * Kernel receive-queue drops at a UDP listener's socket, read now: the native path's own count, or for
   * a runtime-path listener what /proc/net/udp says of its socket (the runtime APIs tell nothing); null
   * when unknown (not Linux, or SO_REUSEPORT sockets sharing the port).
   */
  rxqOverflows(name: string): number | null {
    const dp = this.datapath(name);
    if (dp === undefined) return null;
    if (dp.native !== null) return dp.native.rxqOverflows;
    const local = this.address(name);
    return local === undefined || this.#reusePort ? null : procUdpDrops(local);
  }

  /**
   * The native path's own counters, for metrics (null when no listener runs on it): failed syscalls by call
   * and errno (e.g. "send:ECONNREFUSED": 3), and the datagrams that rode as extra UDP GSO segments.
   */
  nativeCounters(): { errors: Record<string, number>; gsoSaved: { up: number; down: number } } | null {
    const n = this.#native;
    return n === null ? null : { errors: n.errors.snapshot(), gsoSaved: { ...n.gsoSaved } };
  }

  /**
   * Applies a validated config. Listeners whose address or protocol changed are replaced (the old one
   * drains on its socket, the new one binds); new ones bind. If any bind fails, the previous config is
   * restored and the error thrown: a reload either happens whole or not at all.
   */
  async apply(next: FerryConfig): Promise<void> {
    const prev = this.#config;
    const before = new Map([...this.core.listeners()].map((l) => [l.config.name, l]));
    // Live listeners and their drain state, for a rollback (draining removed ones stay as they are).
    const live = [...before.values()].filter((l) => !l.removed).map((l) => [l, l.draining] as const);
    for (const lc of next.listeners) {
      const old = before.get(lc.name);
      if (old !== undefined && !sameBinding(old.config, lc)) this.core.removeListener(lc.name);
    }
    this.core.applyConfig(next);
    // Now, not at the next microtask: the sockets of listeners removed with no flows close before their
    // addresses are bound again.
    this.loop.drain();
    const fresh = [...this.core.listeners()].filter((l) => before.get(l.config.name) !== l);
    const bound: Listener[] = [];
    try {
      for (const l of fresh) {
        await this.#bindSoon(l, next.relay.datapath);
        bound.push(l);
      }
    } catch (e) {
      const lost = await this.#rollback(prev, fresh, bound, live);
      if (lost.length === 0) throw e;
      throw new Error(`${e instanceof Error ? e.message : e}; rolling back, ${lost.join("; ")}`, {
        cause: e,
      });
    }
    this.#config = next;
    this.records.configure(next.records);
    this.health.sync();
  }

  /**
   * Applies a change of backends only (core/backend_delta.ts): the named clusters get their new lists and
   * only their balancers rebuild; listeners, other clusters and their probes are left as they are.
   */
  applyBackends(deltas: readonly BackendDelta[]): void {
    const next = withBackendDeltas(this.#config, deltas);
    const changed = new Set(deltas.map((d) => d.cluster));
    for (const c of next.clusters) if (changed.has(c.name)) this.core.setCluster(c);
    this.#config = next;
    this.health.sync(changed);
  }

  /**
   * Undoes a failed `apply`: closes what it bound, brings the previously live listener objects back
   * (with their sockets, flows and counters) and re-binds those whose socket it had already closed.
   * Returns what could not be re-bound ("listener l: EADDRINUSE"), for the error the caller reports.
   */
  async #rollback(
    prev: FerryConfig,
    fresh: Listener[],
    bound: Listener[],
    live: (readonly [Listener, boolean])[],
  ): Promise<string[]> {
    for (const l of bound) l.config.protocol === "udp" ? this.#unbindUdp(l) : this.tcp.unbind(l);
    for (const l of fresh) this.core.removeListener(l.config.name);
    for (const [l, draining] of live) {
      if (this.core.listener(l.config.name) !== l || l.removed) this.core.restoreListener(l, draining);
    }
    this.core.applyConfig(prev);
    this.loop.drain(); // as in apply: close before re-binding
    const lost: string[] = [];
    for (const [l] of live) {
      if (this.address(l.config.name) !== undefined) continue;
      try {
        await this.#bindSoon(l, prev.relay.datapath);
      } catch (e) {
        lost.push(`listener ${l.config.name} could not be re-bound: ${e instanceof Error ? e.message : e}`);
      }
    }
    return lost;
  }

  /** Stops admitting new flows and connections (on one listener, or everywhere). */
  drain(listener?: string): void {
    this.core.drain(listener);
  }

  /** Undoes a listener's drain (or every listener's; not a shutdown's). False if there is no such listener. */
  undrain(listener?: string): boolean {
    return this.core.undrain(listener);
  }

  /** Live UDP flows plus open TCP connections. */
  get active(): number {
    return this.core.flowCount + this.tcp.active;
  }

  /**
   * Graceful shutdown: drain, let flows and connections run for up to `graceMs`, then close what is left
   * (reason "drain") and every socket. Resolves when done.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.drain();
    const deadline = this.platform.clock() + graceMs;
    while (this.active > 0 && this.platform.clock() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(100, Math.max(1, deadline - this.platform.clock()))));
    }
    this.core.closeAll("drain");
    this.tcp.closeAll("drain");
    this.loop.drain(); // the closed flows' sockets, before everything stops
    this.stop();
  }

  /** Closes every socket and timer at once. */
  stop(): void {
    this.records.close();
    this.health.stop();
    this.loop.stop();
    this.udp.stop();
    this.#native?.stop();
    this.tcp.stop();
  }

  /** "udp 127.0.0.1:7000" lines of what is bound, for logs. */
  describe(): string[] {
    return [...this.core.listeners()].map((l) => {
      const a = this.address(l.config.name);
      return `${l.config.name}: ${l.config.protocol} ${
        a ? formatSocketAddress(a) : "(unbound)"
      } → ${l.config.cluster}`;
    });
  }
}
