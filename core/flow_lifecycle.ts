/**
 * How UDP flows end: the live set, the deadline heap, detaching a flow at its `requests` cap, closing
 * (with its `closed` event), timeouts, and charging the top-talker summaries. RelayCore owns one and
 * delegates its teardown and time inputs here.
 *
 * @module
 */

import { DeadlineHeap } from "./deadlines.ts";
import { type Flow, FlowState } from "./flow.ts";
import type { Listener } from "./listener.ts";
import type { CloseReason } from "./reasons.ts";
import type { CoreHealth } from "./core_health.ts";
import type { EventQueue } from "./event_queue.ts";
import type { ProtectionState } from "./admission_guard.ts";
import type { TopTalkers } from "./heavy_hitters.ts";

/** The live flows of a core and their deadlines. */
export class FlowLifecycle {
  /** Every live flow (not Closed). */
  readonly flows = new Set<Flow>();
  readonly #heap = new DeadlineHeap<Flow>();
  readonly #events: EventQueue;
  readonly #health: CoreHealth;
  readonly #protection: ProtectionState;
  readonly #forgetListener: (l: Listener) => void;

  /** Teardown over `events` (closed), `health` (its windows' expiry) and `protection` (top talkers). */
  constructor(
    events: EventQueue,
    health: CoreHealth,
    protection: ProtectionState,
    forgetListener: (l: Listener) => void,
  ) {
    this.#events = events;
    this.#health = health;
    this.#protection = protection;
    this.#forgetListener = forgetListener;
  }

  /** (Re)schedules a flow at its current deadline; older heap entries of it go stale. */
  schedule(flow: Flow): void {
    flow.timerGen++;
    const at = flow.deadline();
    if (at !== Infinity) this.#heap.push(at, flow);
  }

  /** The `requests` cap was reached: out of the table (the client's next datagram is a new flow), Closing. */
  detach(flow: Flow, now: number): void {
    this.#unlink(flow);
    flow.state = FlowState.Closing;
    flow.closingAt = now;
    this.schedule(flow);
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
    const top = this.#protection.top;
    top.datagrams.add(flow.clientIp, d);
    top.bytes.add(flow.clientIp, q.bytesIn - flow.topBytes);
    flow.topDatagrams = q.datagramsIn;
    flow.topBytes = q.bytesIn;
  }

  /** The top-talker summaries, charged with every live flow's traffic so far (an admin call). */
  topTalkers(): TopTalkers {
    for (const flow of this.flows) this.#chargeTop(flow);
    return this.#protection.top;
  }

  /** Closes a flow for `reason` and queues its `closed` event. False if it was already closed. */
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
    this.flows.delete(flow);
    // A closed flow's heap entry keeps it reachable until its old deadline: compact once stale entries
    // outnumber live flows, so memory follows live flows, not the close rate times the timeout.
    if (this.#heap.size > 2 * this.flows.size + 1024) this.#heap.compact();
    this.#events.push({ kind: "closed", flow });
    if (listener.removed && listener.flows === 0) this.#forgetListener(listener);
    return true;
  }

  /** The earliest time `onTimeout` has work (a flow's deadline, or a passive health window's end). */
  nextDeadline(): number {
    const flows = this.#heap.peek();
    const health = this.#health.expiry;
    return flows < health ? flows : health;
  }

  /** Closes every flow due at `now` and ends the passive health windows that are over. */
  onTimeout(now: number): void {
    this.#health.tick(now);
    let flow: Flow | undefined;
    while ((flow = this.#heap.popDue(now)) !== undefined) {
      const at = flow.deadline();
      if (at <= now) this.close(flow, flow.state === FlowState.Closing ? "requests" : "idle");
      else this.#heap.push(at, flow); // still the live entry: its generation did not move
    }
  }

  /** Entries in the deadline heap, stale ones included. */
  get timerEntries(): number {
    return this.#heap.size;
  }
}
