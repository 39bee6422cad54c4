/**
 * A relay core, sans-io: admission, the flow table, teardown, timers and reconfiguration for UDP flows,
 * and admission and accounting of TCP connections.
 *
 * Inputs go in as method calls with the time as a parameter (`fromClient`, `fromBackend`, `onTimeout`,
 * `resolved`, `sendFailed`, the reconfiguration calls); outputs are return values and the events the shell
 * polls (`poll`), among them `open` (open a flow's upstream). The core owns no socket and reads no clock, so
 * a simulation can drive it step by step. core/README.md is the contract a shell implements.
 *
 * The forwarding path, `fromClient` and `fromBackend` on an established flow, allocates nothing, copies no
 * payload and builds no string: two Map lookups and a few counter updates.
 *
 * @module
 */

import { type SocketAddress } from "./address.ts";
import type { Backend } from "./backend.ts";
import { type Flow, FlowState } from "./flow.ts";
import type { Connection } from "./connection.ts";
import type { CloseReason, ConnectionEnd } from "./reasons.ts";
import { Drop } from "./drops.ts";
import type { Listener, UdpListener } from "./listener.ts";
import { refusal } from "./admission_order.ts";
import type { Cluster } from "./cluster.ts";
import { FD_PER_FLOW } from "./fd_budget.ts";
import { type IpFamily, readIp } from "./ip_words.ts";
import type { RelayCoreOptions } from "./core_options.ts";
import { resolvedBackend } from "./external_resolution.ts";
import { admitConnection, countConnectionBytes, endConnectionIn } from "./tcp_admission.ts";
import { NamedTables } from "./named_tables.ts";
import { closeAllFlows, closeBackend, disconnectClient, drainListener } from "./operator_actions.ts";
import type { CoreEvent } from "./core_events.ts";
import type { FerryConfig } from "./types.ts";
import type { TopTalkers } from "./heavy_hitters.ts";
import { overEstablishedLimit, type ProtectionState } from "./admission_guard.ts";
import { EventQueue } from "./event_queue.ts";
import type { FlowLifecycle } from "./flow_lifecycle.ts";
import type { Admission } from "./admission.ts";
import type { Direction, SendFailure } from "./send_failure.ts";
import * as failure from "./failure_inputs.ts";
import { earlyDrop, notUdp } from "./datagram_checks.ts";
import { type CoreParts, coreParts, protectionState } from "./core_parts.ts";

/** The core's events, declared in core/core_events.ts; re-exported for the shells that import them here. */
export { type CoreEvent, eventListener } from "./core_events.ts";
/** The affinity hash, declared in core/affinity.ts; re-exported for existing importers. */
export { affinityHash } from "./affinity.ts";
/** The options a shell passes in, declared in core/core_options.ts. */
export { DEFAULT_AUTO_MAX_FLOWS, type RelayCoreOptions } from "./core_options.ts";
/** The send-failure words, declared in core/send_failure.ts; re-exported for the shells. */
export type { Direction, SendFailure } from "./send_failure.ts";

/** Where a flow's count of expected replies stops growing (a flow that far ahead ends by its idle deadline). */
const MAX_OUTSTANDING = 2 ** 52;

/** A relay core: UDP flows and TCP connections of one set of listeners and clusters. */
export class RelayCore extends NamedTables {
  readonly #connections = new Set<Connection>();
  readonly #events = new EventQueue();
  /** Scratch words of a client's address during admission (synchronous: one at a time). */
  readonly #words = new Uint32Array(4);
  #draining = false;
  /** Edge protection shared by every listener: bans, top talkers, automatic bans not yet shared. */
  readonly protection: ProtectionState = protectionState();
  /** The core's parts, wired in core/core_parts.ts: health, lifecycle, admission, TCP's view, operator targets. */
  readonly #parts: CoreParts;
  // Two parts again as fields of their own: the forwarding path reaches them with one load fewer.
  readonly #life: FlowLifecycle;
  readonly #admission: Admission;

  /** A core running `config`. */
  constructor(config: FerryConfig, options: RelayCoreOptions) {
    super();
    const parts = this.#parts = coreParts(
      this.clusterMap,
      this.#events,
      this.protection,
      this.#connections,
      options,
      {
        closeBackendFlows: (key, cluster, reason) => this.closeBackendFlows(key, cluster, reason),
        forgetListener: (l) => this.forgetListener(l),
        draining: () => this.#draining,
      },
    );
    this.#life = parts.life;
    this.#admission = parts.admission;
    this.applyConfig(config);
  }

  // ---- the forwarding path -------------------------------------------------------------------------------

  /**
   * A client datagram arrived on `listener` from `ip`:`port`. Returns the flow to forward it on, or a `Drop`
   * code. A new flow queues `open` first: act on the events, then, if the flow is Established (or Closing,
   * this datagram having reached its `requests` cap), send `data` to its backend, prefixed by `proxyHeader`
   * when `headerDue`. A flow in AwaitingBackend has buffered a copy: send nothing.
   */
  fromClient(listener: Listener, ip: string, port: number, data: Uint8Array, now: number): Flow | Drop {
    const early = earlyDrop(listener, data);
    if (early !== null) return early;
    const ports = listener.table.get(ip);
    const known = ports === undefined ? undefined : ports.get(port);
    if (known !== undefined) return this.#known(known, data, now);
    // The words only when a ban or a limit will read them: the source policy reads the text here.
    const words = this.#words;
    const family = this.protection.bans.size > 0 || listener.protection !== null ? readIp(ip, words) : 0;
    const refused = notUdp(listener) ??
      refusal(this.#admission.order, listener, family, words, ip, port, data, FD_PER_FLOW, now);
    if (refused !== null) return refused;
    return this.#admit(listener as UdpListener, ports, ip, port, data, now);
  }

  /**
   * `fromClient` for a flow the shell found by itself (the native driver's index over sockaddr bytes) and
   * that is still attached (Established or AwaitingBackend): the same checks and effects, without the
   * lookup by text. Allocation-free.
   */
  forwardFlow(flow: Flow, data: Uint8Array, now: number): Flow | Drop {
    const early = earlyDrop(flow.listener, data);
    return early !== null ? early : this.#known(flow, data, now);
  }

  /**
   * Pre-admission for a shell that finds attached flows by itself: a datagram from a client it knows no
   * flow of, its address read into `words` (core/ip_words.ts `readIpBytes`). Runs every check `fromClient`
   * runs before it allocates a flow (size, cluster, bans, limits, first-datagram filter, descriptor budget,
   * drain, max_flows, source policy: core/admission_order.ts), counts a refusal and returns its Drop code;
   * or null when the client is admissible: the shell then builds its text and calls `admitScreened`, which
   * checks nothing again. No string, event or object on a refusal (an automatic ban is the exception).
   */
  screen(
    listener: Listener,
    family: IpFamily,
    words: Uint32Array,
    port: number,
    data: Uint8Array,
    now: number,
  ): Drop | null {
    const early = earlyDrop(listener, data);
    if (early !== null) return early;
    return notUdp(listener) ??
      refusal(this.#admission.order, listener, family, words, null, port, data, FD_PER_FLOW, now);
  }

  /** Admits a client `screen` found admissible for this very datagram (nothing in between). */
  admitScreened(listener: Listener, ip: string, port: number, data: Uint8Array, now: number): Flow | Drop {
    const ports = listener.table.get(ip);
    const known = ports === undefined ? undefined : ports.get(port);
    if (known !== undefined) return this.#known(known, data, now); // the shell's index missed it: still right
    return this.#admit(listener as UdpListener, ports, ip, port, data, now);
  }

  /** A datagram of an attached flow. */
  #known(known: Flow, data: Uint8Array, now: number): Flow | Drop {
    const listener = known.listener;
    const p = listener.protection;
    if (
      p !== null && p.chargesEstablished &&
      overEstablishedLimit(this.protection, listener, p, known.clientIp, data.byteLength, now)
    ) {
      return Drop.RateLimited;
    }
    if (known.state === FlowState.Established) return this.#forwardClient(known, data.byteLength, now, data);
    this.#admission.holdPending(known, data, now);
    return known;
  }

  /** A screened client's new flow: the balancer, the table entry, its `open`, its first datagram. */
  #admit(
    listener: UdpListener,
    ports: Map<number, Flow> | undefined,
    ip: string,
    port: number,
    data: Uint8Array,
    now: number,
  ): Flow | Drop {
    const flow = this.#admission.admit(listener, listener.cluster as Cluster, ports, ip, port, data, now);
    if (typeof flow === "number") return flow;
    if (flow.state === FlowState.Established) {
      this.#events.push({ kind: "open", flow, held: null, withHeader: false });
      this.#forwardClient(flow, data.byteLength, now, data);
    }
    this.#life.schedule(flow);
    return flow;
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
   * A send of `flow` failed in the shell, going `direction`, for `cause`. Counts `send_error`; towards the
   * backend also the backend's `sendErrors`, and a refusal its `refusals` and a passive health failure.
   */
  sendFailed(flow: Flow, direction: Direction, cause: SendFailure, now: number): void {
    failure.sendFailed(this.#parts.health, flow, direction, cause, now);
  }

  /**
   * The shell could not open `flow`'s upstream (EMFILE, a socket error): its datagram is lost (a failed
   * send towards the backend) and the flow is aborted.
   */
  upstreamFailed(flow: Flow, now: number): void {
    failure.upstreamFailed(this.#parts.health, this.#life, flow, now);
  }

  /**
   * A send from `listener`'s socket failed where the shell cannot tell the flow (the runtime reports it
   * later, from the socket): `refused` counts `clientUnreachable` (the client's port is gone), `error`
   * counts `send_error`.
   */
  listenerSendFailed(listener: Listener, cause: SendFailure): void {
    failure.listenerSendFailed(listener, cause);
  }

  /** A backend reply the shell could not take whole (larger than the flow's receive buffer): dropped. */
  replyTruncated(flow: Flow): void {
    failure.replyTruncated(flow);
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
    if (knobs.requests > 0 && n >= knobs.requests) this.#life.detach(flow, now);
    return flow;
  }

  // ---- backend health ------------------------------------------------------------------------------------

  /**
   * An active probe of backend `key` in `cluster` finished: `error` is null on success. Transitions are
   * applied at once (and reported as a "health" event).
   */
  probeResult(cluster: string, key: string, error: string | null, now: number): void {
    this.#parts.health.probeResult(cluster, key, error, now);
  }

  /**
   * Another owner of the health state (see {@link RelayCoreOptions.reportPassive}) decided backend `key`
   * of `cluster` is now `status`: balancing follows at once; no "health" event (the owner logged it).
   */
  adoptHealth(cluster: string, key: string, status: "up" | "down", now: number): void {
    this.#parts.health.adopt(cluster, key, status, now);
  }

  /** Ends passive health windows that are over. Admission does it by itself; the shell may call it on a timer. */
  healthTick(now: number): void {
    this.#parts.health.tick(now);
  }

  // ---- external resolution -------------------------------------------------------------------------------

  /**
   * The shell resolved the backend of a flow in AwaitingBackend: `address`, or null when the resolver had
   * none (the cluster's own balancer is tried if it has backends, else the flow is aborted). Returns the
   * flow, now Established, with an `open` event queued that carries its buffered datagram; or null if the
   * flow is gone or could not be routed. An address that is no valid unicast destination is refused.
   */
  resolved(flow: Flow, address: SocketAddress | null, now: number): Flow | null {
    if (flow.state !== FlowState.AwaitingBackend) return null;
    const backend = resolvedBackend(this.clusterMap, address, this.#admission, flow, now);
    if (backend === null) {
      flow.listener.counters.drops.no_backend++;
      this.close(flow, "aborted");
      return null;
    }
    this.#admission.establish(flow, backend);
    const held = flow.pending;
    flow.pending = null;
    if (held !== null) this.#forwardClient(flow, held.byteLength, now, held);
    this.#events.push({ kind: "open", flow, held, withHeader: held !== null && flow.headerDue });
    this.#life.schedule(flow);
    return flow;
  }

  // ---- TCP -----------------------------------------------------------------------------------------------

  /**
   * A TCP client connected to `listener`. Admits it like a new flow (draining or at max_flows → Shed,
   * source policy → Invalid, no backend → NoBackend) and pins a backend, or returns the Drop code; the
   * shell then connects to `connection.backend` and calls `endConnection` when either side is done.
   */
  openConnection(listener: Listener, ip: string, port: number, now: number): Connection | Drop {
    return admitConnection(this.#parts.tcp, listener, ip, port, now);
  }

  /** `n` bytes of `conn` were moved `direction` (counted on the connection, its listener and its backend). */
  connectionBytes(conn: Connection, direction: Direction, n: number): void {
    countConnectionBytes(conn, direction, n);
  }

  /**
   * A TCP connection ended. Idempotent: returns false if it had already ended. A refused or timed-out
   * backend connect counts as a passive health failure.
   */
  endConnection(conn: Connection, end: ConnectionEnd, now: number): boolean {
    return endConnectionIn(this.#parts.tcp, conn, end, now);
  }

  /** Every open TCP connection. */
  connections(): IterableIterator<Connection> {
    return this.#connections.values();
  }

  // ---- teardown, time and events -------------------------------------------------------------------------

  /**
   * The top-talker summaries, up to date: accepted datagrams and bytes are counted once, by each flow, and
   * charged here (and at close), so reading them walks the live flows (an admin call, not the data path).
   */
  topTalkers(): TopTalkers {
    return this.#life.topTalkers();
  }

  /** Closes a flow for `reason`. Idempotent: returns false if it was already closed. */
  close(flow: Flow, reason: CloseReason): boolean {
    return this.#life.close(flow, reason);
  }

  /**
   * The earliest time `onTimeout` has work (a flow's deadline, or the end of a passive health window), or
   * Infinity. Always later than the `now` of the last onTimeout.
   */
  nextDeadline(): number {
    return this.#life.nextDeadline();
  }

  /** Closes every flow whose deadline is at or before `now`, and ends passive health windows that are over. */
  onTimeout(now: number): void {
    this.#life.onTimeout(now);
  }

  /** True when `poll` has something: a cheap check for the forwarding path. */
  get hasEvents(): boolean {
    return this.#events.has;
  }

  /** The next event for the shell, or undefined when there is none. */
  poll(): CoreEvent | undefined {
    return this.#events.poll();
  }

  /**
   * Calls `wake` whenever an event lands in an empty queue, inside the input that queued it: the shell
   * schedules its drain there (e.g. a microtask) and never polls inside the call. Null stops it.
   */
  setWake(wake: (() => void) | null): void {
    this.#events.wake = wake;
  }

  // ---- operator actions ----------------------------------------------------------------------------------

  /**
   * Closes the flows and TCP connections of client `ip` (every port, or only `port`), on one listener or
   * all, including flows already detached by their requests cap. Returns how many closed.
   */
  disconnect(ip: string, port?: number, listenerName?: string, reason: CloseReason = "disconnected"): number {
    return disconnectClient(this.#parts.targets, ip, port, listenerName, reason);
  }

  /** Closes every flow and connection pinned to backend `key` of `cluster` (or any). Returns how many. */
  closeBackendFlows(key: string, cluster?: string, reason: CloseReason = "disconnected"): number {
    return closeBackend(this.#parts.targets, key, cluster, reason);
  }

  /** Closes every flow (of one listener, if named) for `reason`. Returns how many closed. */
  closeAll(reason: CloseReason, listenerName?: string): number {
    return closeAllFlows(this.#parts.targets.flows, this.#parts.targets.closeFlow, reason, listenerName);
  }

  /** Stops admitting new flows, on one listener or everywhere. Existing flows run to their teardown. */
  drain(listenerName?: string): void {
    if (listenerName === undefined) this.#draining = true;
    else drainListener(this.listenerMap, listenerName);
  }

  /** True when the whole core is draining. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Forgets a removed listener with nothing left on it, and queues `listener_done`. */
  protected override forgetListener(l: Listener): void {
    if (this.listenerMap.get(l.config.name) === l) this.listenerMap.delete(l.config.name);
    this.#events.push({ kind: "listener_done", listener: l });
  }

  /** Every live flow (not Closed). */
  flows(): IterableIterator<Flow> {
    return this.#life.flows.values();
  }

  /** Entries in the deadline heap, stale ones included (bounded by about twice the live flows). */
  get timerEntries(): number {
    return this.#life.timerEntries;
  }

  /** Number of live flows. */
  get flowCount(): number {
    return this.#life.flows.size;
  }
}
