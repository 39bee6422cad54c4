/**
 * The sans-io UDP relay core: admission, flow table, teardown, timers and reconfiguration.
 *
 * Inputs go in as method calls with the time as a parameter (`fromClient`, `fromBackend`, `onTimeout`,
 * `resolved`, `sendFailed`, the reconfiguration calls); outputs are return values and events the shell
 * polls (`poll`). The core owns no socket and reads no clock, so a simulation can drive it step by step.
 *
 * The forwarding path, `fromClient` and `fromBackend` on an established flow, allocates nothing, copies no
 * payload and builds no string: two Map lookups and a few counter updates.
 *
 * @module
 */

import { type SocketAddress } from "./address.ts";
import type { Backend } from "./backend.ts";
import { type Choice, Cluster } from "./cluster.ts";
import { DeadlineHeap } from "./deadlines.ts";
import { Flow, FlowState } from "./flow.ts";
import { Connection } from "./connection.ts";
import type { CloseReason, ConnectionEnd } from "./reasons.ts";
import { Drop } from "./drops.ts";
import { affinityHash, stickyBackend } from "./affinity.ts";
import { Listener } from "./listener.ts";
import { encodeProxyV2 } from "./proxy_v2.ts";
import { FD_PER_CONNECTION, FD_PER_FLOW, FD_REARM, fits } from "./fd_budget.ts";
import { Rng } from "./rng.ts";
import { CoreHealth, type PassiveReport } from "./core_health.ts";
import { externalBackend } from "./external_resolution.ts";
import { admitConnection, endConnectionIn, type TcpAdmissionHost } from "./tcp_admission.ts";
import {
  applyConfigTo,
  type CoreTables,
  removeClusterFrom,
  setClusterIn,
  setListenerIn,
} from "./reconfigure.ts";
import {
  closeAllFlows,
  closeBackendFlows as closeBackendFlowsOf,
  closeClientFlows,
  type CloseFlow,
} from "./operator_actions.ts";
import type { CoreEvent } from "./core_events.ts";
import type { BackendState, ClusterConfig, FerryConfig, ListenerConfig } from "./types.ts";
import { BanTable } from "./ban_table.ts";
import { TopTalkers } from "./heavy_hitters.ts";
import { admissionGuard, overEstablishedLimit, type ProtectionState } from "./admission_guard.ts";

/** The core's events, declared in core/core_events.ts; re-exported for the shells that import them here. */
export { type CoreEvent, eventListener } from "./core_events.ts";
/** The affinity hash, declared in core/affinity.ts; re-exported for existing importers. */
export { affinityHash } from "./affinity.ts";

/** Options a shell passes in. */
export interface RelayCoreOptions {
  /** Seed of the core's random choices (random and power_of_two balancers). */
  readonly seed: number;
  /** The flow limit of listeners whose max_flows is 0, e.g. derived from the file descriptor limit. */
  readonly autoMaxFlows?: number;
  /**
   * Descriptors this core's flows (1 each) and TCP connections (2 each) may hold together, across its
   * listeners (core/fd_budget.ts); unset = unbounded.
   */
  readonly descriptorBudget?: number;
  /**
   * Set when another owner keeps the health state (the main thread of relay workers): passive failures go
   * here instead of being judged by this core, and the owner's verdicts come back through `adoptHealth`.
   */
  readonly reportPassive?: PassiveReport;
}

/** Where a flow's count of expected replies stops growing (a flow that far ahead ends by its idle deadline). */
const MAX_OUTSTANDING = 2 ** 52;

/** The default flow limit for max_flows = 0 when the shell gives none. */
export const DEFAULT_AUTO_MAX_FLOWS = 10_000;

/** The UDP relay core. */
export class RelayCore {
  readonly #rng: Rng;
  readonly #autoMaxFlows: number;
  readonly #fdBudget: number;
  /** A budget refusal was reported and usage has not fallen back below FD_REARM of it since. */
  #fdWarned = false;
  readonly #listeners = new Map<string, Listener>();
  readonly #clusters = new Map<string, Cluster>();
  /** The two maps, for reconfiguration (core/reconfigure.ts). */
  readonly #tables: CoreTables = { listeners: this.#listeners, clusters: this.#clusters };
  readonly #flows = new Set<Flow>();
  readonly #connections = new Set<Connection>();
  readonly #heap = new DeadlineHeap<Flow>();
  /** `close`, bound once for the operator actions (core/operator_actions.ts). */
  readonly #closeFlow: CloseFlow = (flow, reason) => this.close(flow, reason);
  #events: CoreEvent[] = [];
  #eventHead = 0;
  #nextId = 1;
  #draining = false;
  /** Health verdicts: probes, passive failures and the windows' expiry (core/core_health.ts). */
  readonly #health: CoreHealth;
  /** Edge protection shared by every listener: bans, top talkers, automatic bans not yet shared. */
  readonly protection: ProtectionState = {
    bans: new BanTable(),
    top: new TopTalkers(64, 0),
    autoBans: [],
    autoBanCount: 0,
  };
  /** The view TCP admission (core/tcp_admission.ts) has of this core. */
  readonly #tcp: TcpAdmissionHost;

  /** A core running `config`. */
  constructor(config: FerryConfig, options: RelayCoreOptions) {
    this.#rng = new Rng(options.seed);
    this.#health = new CoreHealth(
      this.#clusters,
      (e) => this.#push(e),
      (key, cluster, reason) => this.closeBackendFlows(key, cluster, reason),
      options.reportPassive,
    );
    this.#autoMaxFlows = options.autoMaxFlows ?? DEFAULT_AUTO_MAX_FLOWS;
    this.#tcp = {
      protection: this.protection,
      health: this.#health,
      connections: this.#connections,
      autoMaxFlows: this.#autoMaxFlows,
      draining: () => this.#draining,
      descriptorsFor: (cost) => this.#descriptorsFor(cost),
      choose: (cluster, keyHash, now) => this.#choose(cluster, keyHash, now),
      nextId: () => this.#nextId++,
      forgetListener: (l) => this.#forgetListener(l),
    };
    this.#fdBudget = options.descriptorBudget ?? Infinity;
    this.applyConfig(config);
  }

  // ---- the forwarding path -------------------------------------------------------------------------------

  /**
   * A client datagram arrived on `listener` from `ip`:`port`. Returns the flow to forward it on, or a `Drop`
   * code. A returned flow in state Established: send `data` (prefixed by `proxyHeader` when `headerDue`)
   * to its backend, opening the upstream first if `handle` is null. A flow in AwaitingBackend has buffered
   * a copy: send nothing. Afterwards, `poll` for events.
   */
  fromClient(listener: Listener, ip: string, port: number, data: Uint8Array, now: number): Flow | Drop {
    const size = data.byteLength;
    const drops = listener.counters.drops;
    if (size > listener.config.maxDatagramSize) {
      drops.truncated++;
      return Drop.Truncated;
    }
    const cluster = listener.cluster;
    if (cluster === null || (cluster.backends.length === 0 && cluster.config.balancer !== "external")) {
      drops.no_backend++;
      return Drop.NoBackend;
    }
    if (size === 0) {
      drops.invalid++;
      return Drop.Invalid;
    }
    const ports = listener.table.get(ip);
    const known = ports === undefined ? undefined : ports.get(port);
    if (known !== undefined) {
      const p = listener.protection;
      if (
        p !== null && p.chargesEstablished &&
        overEstablishedLimit(this.protection, listener, p, ip, size, now)
      ) {
        return Drop.RateLimited;
      }
      if (known.state === FlowState.Established) return this.#forwardClient(known, size, now, data);
      this.#holdPending(known, data, now);
      return known;
    }
    return this.#admit(listener, cluster, ports, ip, port, data, now);
  }

  /**
   * A backend reply of `size` bytes arrived on `flow`'s upstream. Returns true when the shell should send
   * it to the client (from the listener socket), false to drop it (the flow is gone, counted as `late`). May
   * close the flow (every forwarded datagram had its `responses` replies): forward first, then `poll`.
   * `data` from offset `at` is the reply's payload (no copy: the shell's receive buffer), read only when the
   * cluster names a sequence number.
   */
  fromBackend(flow: Flow, size: number, now: number, data?: Uint8Array, at = 0): boolean {
    const state = flow.state;
    if (state !== FlowState.Established && state !== FlowState.Closing) {
      flow.listener.counters.drops.late++;
      return false;
    }
    const c = flow.listener.counters;
    const guard = flow.listener.protection;
    if (guard !== null && guard.amplifies(flow.requests, flow.quality.bytesIn, flow.quality.bytesOut, size)) {
      c.drops.amplified++;
      return false;
    }
    c.datagramsOut++;
    c.bytesOut += size;
    const b = (flow.backend as Backend).counters;
    b.datagramsFrom++;
    b.bytesFrom += size;
    flow.quality.onBackend(size, now, data, at);
    flow.lastBackendAt = now;
    flow.responses++;
    // `responses` is per forwarded datagram (as nginx's proxy_responses): pipelined queries all get answers.
    if (flow.knobs.responses > 0 && --flow.outstanding <= 0) this.close(flow, "responses");
    return true;
  }

  /**
   * A send failed in the shell: towards the backend (`toBackend`) or back to the client. `refused` marks an
   * ICMP port unreachable (ECONNREFUSED), counted against the backend it came from.
   */
  sendFailed(flow: Flow, toBackend: boolean, refused: boolean, now: number): void {
    flow.listener.counters.drops.send_error++;
    flow.quality.onDrop();
    const b = flow.backend;
    if (b !== null && toBackend) {
      b.counters.sendErrors++;
      if (refused) {
        b.counters.refusals++;
        this.#health.passiveFailure(flow.knobs.name, b, "refused (ICMP port unreachable)", now);
      }
    }
  }

  // ---- backend health ------------------------------------------------------------------------------------

  /**
   * An active probe of backend `key` in `cluster` finished: `error` is null on success. Transitions are
   * applied at once (and reported as a "health" event).
   */
  probeResult(cluster: string, key: string, error: string | null, now: number): void {
    this.#health.probeResult(cluster, key, error, now);
  }

  /**
   * Another owner of the health state (see {@link RelayCoreOptions.reportPassive}) decided backend `key`
   * of `cluster` is now `status`: balancing follows at once; no "health" event (the owner logged it).
   */
  adoptHealth(cluster: string, key: string, status: "up" | "down", now: number): void {
    this.#health.adopt(cluster, key, status, now);
  }

  /** Ends passive health windows that are over. Admission does it by itself; the shell may call it on a timer. */
  healthTick(now: number): void {
    this.#health.tick(now);
  }

  /** A backend reply the shell could not take whole (larger than the flow's receive buffer): dropped. */
  replyTruncated(flow: Flow): void {
    flow.listener.counters.drops.truncated++;
    flow.quality.onDrop();
  }

  #forwardClient(flow: Flow, size: number, now: number, data: Uint8Array): Flow {
    const c = flow.listener.counters;
    c.datagramsIn++;
    c.bytesIn += size;
    const b = (flow.backend as Backend).counters;
    b.datagramsTo++;
    b.bytesTo += size;
    flow.quality.onClient(size, now, data);
    flow.lastClientAt = now;
    const n = ++flow.requests;
    const knobs = flow.knobs;
    flow.headerDue = flow.proxyHeader !== null && (n === 1 || knobs.proxyProtocol === "every");
    // Saturates far below 2^53, so the count stays an exact integer however long the flow lives.
    if (knobs.responses > 0 && flow.outstanding < MAX_OUTSTANDING) flow.outstanding += knobs.responses;
    if (knobs.requests > 0 && n >= knobs.requests) this.#detach(flow, now);
    return flow;
  }

  // ---- admission (control path: may allocate) ------------------------------------------------------------

  #admit(
    listener: Listener,
    cluster: Cluster,
    ports: Map<number, Flow> | undefined,
    ip: string,
    port: number,
    data: Uint8Array,
    now: number,
  ): Flow | Drop {
    const drops = listener.counters.drops;
    const guarded = admissionGuard(this.protection, listener, ip, data, now);
    if (guarded !== null) return guarded;
    const limit = listener.config.maxFlows > 0 ? listener.config.maxFlows : this.#autoMaxFlows;
    // The process-wide descriptor budget first: with max_flows = 0 a listener's limit is that budget.
    if (!this.#draining && !listener.draining && !this.#descriptorsFor(FD_PER_FLOW)) {
      drops.fd_limit++;
      return Drop.Shed;
    }
    if (this.#draining || listener.draining || listener.flows >= limit) {
      drops.shed++;
      this.protection.top.drops.add(ip, 1);
      return Drop.Shed;
    }
    if (listener.sources.check(ip, port) !== "ok") {
      drops.invalid++;
      return Drop.Invalid;
    }
    this.protection.top.flows.add(ip, 1);
    const knobs = cluster.config;
    if (now >= this.#health.expiry) this.healthTick(now);
    let backend: Backend | null = null;
    if (knobs.balancer !== "external") {
      backend = knobs.affinity === "ip" ? stickyBackend(ports, cluster) : null;
      if (backend === null) {
        const choice = this.#choose(cluster, affinityHash(knobs, ip, port), now);
        if (choice === null) {
          drops.no_backend++;
          return Drop.NoBackend;
        }
        backend = choice.backend;
      }
    }
    const flow = new Flow(this.#nextId++, listener, ip, port, knobs, now);
    if (ports === undefined) {
      ports = new Map();
      listener.table.set(ip, ports);
    }
    ports.set(port, flow);
    listener.flows++;
    listener.counters.flowsCreated++;
    this.#flows.add(flow);
    if (backend === null) {
      flow.state = FlowState.AwaitingBackend;
      this.#holdPending(flow, data, now);
      this.#push({ kind: "resolve", flow });
    } else {
      this.#establish(flow, backend);
      this.#forwardClient(flow, data.byteLength, now, data);
    }
    this.#schedule(flow);
    return flow;
  }

  /** Whether the descriptor budget has room for `cost` more; reports the start of a refusal episode once. */
  #descriptorsFor(cost: number): boolean {
    const budget = this.#fdBudget;
    if (budget === Infinity) return true;
    const inUse = this.#flows.size * FD_PER_FLOW + this.#connections.size * FD_PER_CONNECTION;
    if (fits(inUse, cost, budget)) {
      if (this.#fdWarned && inUse + cost <= budget * FD_REARM) this.#fdWarned = false;
      return true;
    }
    if (!this.#fdWarned) {
      this.#fdWarned = true;
      this.#push({ kind: "fd_limit", budget });
    }
    return false;
  }

  /** Asks the cluster for a backend, reporting the start of a fail-open episode once. */
  #choose(cluster: Cluster, keyHash: number, now: number): Choice | null {
    const wasFailingOpen = cluster.failingOpen;
    const choice = cluster.choose(keyHash, this.#rng, now);
    if (choice !== null && choice.failOpen && !wasFailingOpen) {
      cluster.failingOpen = true;
      this.#push({ kind: "fail_open", cluster: cluster.config.name });
    }
    return choice;
  }

  #establish(flow: Flow, backend: Backend): void {
    flow.backend = backend;
    flow.quality.link(backend.quality);
    flow.state = FlowState.Established;
    backend.flows++;
    backend.counters.flowsTotal++;
    if (flow.knobs.proxyProtocol !== "off") {
      const client: SocketAddress = {
        ip: flow.clientIp,
        port: flow.clientPort,
        family: familyOf(flow.clientIp),
      };
      flow.proxyHeader = encodeProxyV2(client, flow.listener.localAddress, "dgram");
    }
  }

  #holdPending(flow: Flow, data: Uint8Array, now: number): void {
    if (flow.pending !== null) {
      flow.listener.counters.drops.pending_replaced++;
      flow.quality.onDrop();
    }
    // A copy: the shell reuses its receive buffer for the next datagram.
    flow.pending = data.slice();
    flow.lastClientAt = now;
  }

  /**
   * The shell resolved the backend of a flow in AwaitingBackend: `address`, or null when the resolver had
   * none (the cluster's own balancer is tried if it has backends, else the flow is aborted). Returns the
   * flow, now Established with its buffered datagram to send (take it with `takePending`), or null if the
   * flow is gone or could not be routed. An address that is no valid unicast destination is refused.
   */
  resolved(flow: Flow, address: SocketAddress | null, now: number): Flow | null {
    if (flow.state !== FlowState.AwaitingBackend) return null;
    // The cluster the flow was admitted under, not whatever the listener points at by now.
    const cluster = this.#clusters.get(flow.knobs.name) ?? null;
    // A valid answer always names a backend while the cluster exists; otherwise the cluster's own balancer.
    const backend = externalBackend(cluster, address) ??
      (cluster !== null && cluster.backends.length > 0
        ? this.#choose(cluster, affinityHash(flow.knobs, flow.clientIp, flow.clientPort), now)?.backend ??
          null
        : null);
    if (backend === null) {
      flow.listener.counters.drops.no_backend++;
      this.close(flow, "aborted");
      return null;
    }
    this.#establish(flow, backend);
    if (flow.pending !== null) this.#forwardClient(flow, flow.pending.byteLength, now, flow.pending);
    this.#schedule(flow);
    return flow;
  }

  /** Takes the datagram buffered while a flow awaited its backend (null if none). */
  takePending(flow: Flow): Uint8Array | null {
    const p = flow.pending;
    flow.pending = null;
    return p;
  }

  // ---- TCP admission -------------------------------------------------------------------------------------

  /**
   * A TCP client connected to `listener`. Admits it like a new flow (draining or at max_flows → Shed,
   * source policy → Invalid, no backend → NoBackend) and pins a backend, or returns the Drop code; the
   * shell then connects to `connection.backend` and calls `endConnection` when either side is done.
   */
  openConnection(listener: Listener, ip: string, port: number, now: number): Connection | Drop {
    return admitConnection(this.#tcp, listener, ip, port, now);
  }

  /**
   * A TCP connection ended. Idempotent: returns false if it had already ended. A refused or timed-out
   * backend connect counts as a passive health failure.
   */
  endConnection(conn: Connection, end: ConnectionEnd, now: number): boolean {
    return endConnectionIn(this.#tcp, conn, end, now);
  }

  /** Every open TCP connection. */
  connections(): IterableIterator<Connection> {
    return this.#connections.values();
  }

  // ---- teardown ------------------------------------------------------------------------------------------

  #detach(flow: Flow, now: number): void {
    this.#unlink(flow);
    flow.state = FlowState.Closing;
    flow.closingAt = now;
    this.#schedule(flow);
  }

  #unlink(flow: Flow): void {
    const table = flow.listener.table;
    const ports = table.get(flow.clientIp);
    if (ports !== undefined && ports.get(flow.clientPort) === flow) {
      ports.delete(flow.clientPort);
      if (ports.size === 0) table.delete(flow.clientIp);
    }
  }

  /** Adds what `flow` forwarded since its last charge to the top-talker summaries (datagrams and bytes). */
  #chargeTop(flow: Flow): void {
    const q = flow.quality;
    const d = q.datagramsIn - flow.topDatagrams;
    if (d <= 0) return;
    const top = this.protection.top;
    top.datagrams.add(flow.clientIp, d);
    top.bytes.add(flow.clientIp, q.bytesIn - flow.topBytes);
    flow.topDatagrams = q.datagramsIn;
    flow.topBytes = q.bytesIn;
  }

  /**
   * The top-talker summaries, up to date: accepted datagrams and bytes are counted once, by each flow, and
   * charged here (and at close), so reading them walks the live flows (an admin call, not the data path).
   */
  topTalkers(): TopTalkers {
    for (const flow of this.#flows) this.#chargeTop(flow);
    return this.protection.top;
  }

  /** Closes a flow for `reason`. Idempotent: returns false if it was already closed. */
  close(flow: Flow, reason: CloseReason): boolean {
    if (flow.state === FlowState.Closed) return false;
    if (flow.state !== FlowState.Closing) this.#unlink(flow);
    const listener = flow.listener;
    listener.flows--;
    listener.counters.flowsClosed[reason]++;
    if (flow.backend !== null) flow.backend.flows--;
    flow.state = FlowState.Closed;
    flow.closeReason = reason;
    flow.pending = null;
    flow.timerGen++;
    this.#chargeTop(flow);
    this.#flows.delete(flow);
    // A closed flow's heap entry keeps it reachable until its old deadline: compact once stale entries
    // outnumber live flows, so memory follows live flows, not the close rate times the timeout.
    if (this.#heap.size > 2 * this.#flows.size + 1024) this.#heap.compact();
    this.#push({ kind: "closed", flow });
    if (listener.removed && listener.flows === 0) this.#forgetListener(listener);
    return true;
  }

  #schedule(flow: Flow): void {
    flow.timerGen++;
    const at = flow.deadline();
    if (at !== Infinity) this.#heap.push(at, flow);
  }

  /**
   * The earliest time `onTimeout` has work (a flow's deadline, or the end of a passive health window), or
   * Infinity. Always later than the `now` of the last onTimeout.
   */
  nextDeadline(): number {
    const flows = this.#heap.peek();
    return flows < this.#health.expiry ? flows : this.#health.expiry;
  }

  /** Closes every flow whose deadline is at or before `now`, and ends passive health windows that are over. */
  onTimeout(now: number): void {
    this.healthTick(now);
    let flow: Flow | undefined;
    while ((flow = this.#heap.popDue(now)) !== undefined) {
      const at = flow.deadline();
      if (at <= now) this.close(flow, flow.state === FlowState.Closing ? "requests" : "idle");
      else this.#heap.push(at, flow); // still the live entry: its generation did not move
    }
  }

  /** True when `poll` has something: a cheap check for the forwarding path. */
  get hasEvents(): boolean {
    return this.#eventHead < this.#events.length;
  }

  /** The next event for the shell, or undefined when there is none. */
  poll(): CoreEvent | undefined {
    if (this.#eventHead >= this.#events.length) return undefined;
    const e = this.#events[this.#eventHead++];
    if (this.#eventHead === this.#events.length) {
      this.#events.length = 0;
      this.#eventHead = 0;
    }
    return e;
  }

  #push(event: CoreEvent): void {
    this.#events.push(event);
  }

  // ---- operator actions ----------------------------------------------------------------------------------

  /**
   * Closes the flows of client `ip` (every port, or only `port`), on one listener or all, including flows
   * already detached by their requests cap. Returns how many closed.
   */
  disconnect(ip: string, port?: number, listenerName?: string, reason: CloseReason = "disconnected"): number {
    return closeClientFlows(this.#flows, this.#closeFlow, ip, port, listenerName, reason);
  }

  /** Closes every flow pinned to backend `key` of `cluster` (or of any cluster). Returns how many closed. */
  closeBackendFlows(key: string, cluster?: string, reason: CloseReason = "disconnected"): number {
    return closeBackendFlowsOf(this.#flows, this.#closeFlow, key, cluster, reason);
  }

  /** Closes every flow (of one listener, if named) for `reason`. Returns how many closed. */
  closeAll(reason: CloseReason, listenerName?: string): number {
    return closeAllFlows(this.#flows, this.#closeFlow, reason, listenerName);
  }

  /** Stops admitting new flows, on one listener or everywhere. Existing flows run to their teardown. */
  drain(listenerName?: string): void {
    if (listenerName === undefined) this.#draining = true;
    else {
      const l = this.#listeners.get(listenerName);
      if (l !== undefined) l.draining = true;
    }
  }

  /** True when the whole core is draining. */
  get draining(): boolean {
    return this.#draining;
  }

  // ---- reconfiguration -----------------------------------------------------------------------------------

  /**
   * Applies a whole validated config. Clusters and listeners are matched by name: kept ones are
   * reconfigured (flows keep the knobs they were admitted under), new ones added, missing clusters dropped
   * (their flows keep running on their pinned backends) and missing listeners drained, then forgotten
   * once their last flow closes (a `listener_done` event).
   */
  applyConfig(config: FerryConfig): void {
    applyConfigTo(this.#tables, config, (lc) => this.setListener(lc), (name) => this.removeListener(name));
  }

  /**
   * Adds a listener or replaces one's config (limits and policy apply to new flows). A removed listener
   * still draining on the same protocol and address is taken back whole (its socket and its flows), so
   * undoing a removal never has to bind an address the relay still holds.
   */
  setListener(config: ListenerConfig): Listener {
    return setListenerIn(this.#tables, config);
  }

  /**
   * Puts a listener object back under its name, live (a shell rolling back a failed reconfiguration:
   * the object keeps its socket, flows and counters). `draining` is what it was before.
   */
  restoreListener(l: Listener, draining: boolean): void {
    l.removed = false;
    l.draining = draining;
    this.#listeners.set(l.config.name, l);
  }

  /** Removes a listener: it drains, and is forgotten once its last flow closes. */
  removeListener(name: string): boolean {
    const l = this.#listeners.get(name);
    if (l === undefined || l.removed) return false;
    l.removed = true;
    l.draining = true;
    if (l.flows === 0) this.#forgetListener(l);
    return true;
  }

  #forgetListener(l: Listener): void {
    if (this.#listeners.get(l.config.name) === l) this.#listeners.delete(l.config.name);
    this.#push({ kind: "listener_done", listener: l });
  }

  /** Adds a cluster or replaces one's knobs and backends; listeners naming it pick it up. */
  setCluster(config: ClusterConfig): Cluster {
    return setClusterIn(this.#tables, config);
  }

  /** Removes a cluster; its listeners drop new datagrams as NoBackend, pinned flows keep their backend. */
  removeCluster(name: string): boolean {
    return removeClusterFrom(this.#tables, name);
  }

  /** Sets a backend's state; only `up` backends take new flows. Returns false if there is no such backend. */
  setBackendState(cluster: string, key: string, state: BackendState): boolean {
    return this.#clusters.get(cluster)?.setState(key, state) ?? false;
  }

  // ---- reading -------------------------------------------------------------------------------------------

  /** A listener by name (the shell keeps it for the forwarding path). */
  listener(name: string): Listener | undefined {
    return this.#listeners.get(name);
  }

  /** Every listener. */
  listeners(): IterableIterator<Listener> {
    return this.#listeners.values();
  }

  /** A cluster by name. */
  cluster(name: string): Cluster | undefined {
    return this.#clusters.get(name);
  }

  /** Every cluster. */
  clusters(): IterableIterator<Cluster> {
    return this.#clusters.values();
  }

  /** Every live flow (not Closed). */
  flows(): IterableIterator<Flow> {
    return this.#flows.values();
  }

  /** Entries in the deadline heap, stale ones included (bounded by about twice the live flows). */
  get timerEntries(): number {
    return this.#heap.size;
  }

  /** Number of live flows. */
  get flowCount(): number {
    return this.#flows.size;
  }
}

function familyOf(ip: string): 4 | 6 {
  return ip.includes(":") ? 6 : 4;
}
