/**
 * The one owner of a core's events and time: the only caller of `poll()` and `onTimeout()`, and the holder
 * of the only timer. Each event goes to the data path that bound the event's listener (the runtime UDP,
 * native UDP and TCP drivers are peers behind `CoreDriver`); the rest (health, fail-open, descriptor budget)
 * goes to the hooks. The loop runs the external resolver too, so that protocol is written once.
 *
 * Nobody has to remember to drain: the core wakes the loop whenever an event lands in its empty queue and
 * the loop drains at the next microtask. A driver still drains at once (`drain()`) where it must act before
 * its next step: after `fromClient` admitted a flow (its `open` comes before its first datagram goes out),
 * and after a receive batch (so closed flows' sockets are let go in the same turn).
 *
 * @module
 */

import type { SocketAddress } from "../../core/address.ts";
import type { Flow } from "../../core/flow.ts";
import type { HealthChange } from "../../core/health.ts";
import type { Listener } from "../../core/listener.ts";
import type { CoreEvent, RelayCore } from "../../core/relay_core.ts";

/** A monotonic clock in milliseconds. */
export type Clock = () => number;

/** Resolves a flow's backend for `external` clusters (Redis routing); null = no answer. */
export type Resolver = (flow: Flow) => Promise<SocketAddress | null>;

/** The events that concern one data path: its listeners' and their flows'. */
export type DriverEvent = Extract<CoreEvent, { kind: "open" | "closed" | "listener_done" }>;

/** A data path serving some listeners of one core (UdpRelay, NativeUdp, TcpRelay). */
export interface CoreDriver {
  /**
   * An event of a listener this driver bound, or of one of its flows: `open` (open the flow's upstream and
   * send its held datagram), `closed` (let its upstream go, after the late-reply window), `listener_done`
   * (close the removed listener's socket).
   */
  onEvent(e: DriverEvent): void;
}

/** What the loop reports upward (logged by the owner; once per transition or episode). */
export interface CoreLoopHooks {
  /** A backend's health status changed. */
  health?(cluster: string, backend: string, change: HealthChange): void;
  /** A cluster with no usable backend started failing open. */
  failOpen?(cluster: string): void;
  /** The descriptor budget started refusing new flows and connections. */
  fdLimit?(budget: number): void;
}

/** Drains one core's events to its drivers and keeps its one deadline armed. */
export class CoreLoop {
  /** The core this loop drives. */
  readonly core: RelayCore;
  /** The clock every input's `now` comes from. */
  readonly clock: Clock;
  readonly #hooks: CoreLoopHooks;
  /** The driver of each listener ever bound: a closed flow of an unbound listener still finds its path. */
  readonly #routes = new WeakMap<Listener, CoreDriver>();
  #resolver: Resolver | null = null;
  #onFlowClosed: ((flow: Flow) => void) | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #armedAt = Infinity;
  #draining = false;
  #scheduled = false;
  #stopped = false;
  /** The microtask drain, made once. */
  readonly #drainSoon = (): void => {
    this.#scheduled = false;
    this.drain();
  };
  /** The timer's body, made once. */
  readonly #fire = (): void => {
    this.#timer = null;
    this.#armedAt = Infinity;
    this.core.onTimeout(this.clock());
    this.drain();
  };

  /** The loop of `core`, on `clock`; it takes the core's wake-up call. */
  constructor(core: RelayCore, clock: Clock, hooks: CoreLoopHooks = {}) {
    this.core = core;
    this.clock = clock;
    this.#hooks = hooks;
    core.setWake(() => {
      if (this.#scheduled || this.#stopped) return;
      this.#scheduled = true;
      queueMicrotask(this.#drainSoon);
    });
  }

  /** Sends the events of `listener` and its flows to `driver` (a driver calls it when it binds one). */
  route(listener: Listener, driver: CoreDriver): void {
    this.#routes.set(listener, driver);
  }

  /** Sets the resolver for flows of `external` clusters. Without one they fall back to the cluster's backends. */
  setResolver(resolver: Resolver | null): void {
    this.#resolver = resolver;
  }

  /** Told of every closed flow, whichever data path served it (session records, flow histograms). */
  setFlowClosed(handler: (flow: Flow) => void): void {
    this.#onFlowClosed = handler;
  }

  /**
   * Acts on every queued event, then re-arms the timer. Safe to call any time: a call from inside a drain
   * (an event's handler made more) returns at once, the running drain takes the new events too.
   */
  drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    const core = this.core;
    try {
      for (let e = core.poll(); e !== undefined; e = core.poll()) this.#act(e);
    } finally {
      this.#draining = false;
    }
    this.#rearm();
  }

  #act(e: CoreEvent): void {
    switch (e.kind) {
      case "closed":
        this.#onFlowClosed?.(e.flow);
        this.#routes.get(e.flow.listener)?.onEvent(e);
        return;
      case "open": {
        const driver = this.#routes.get(e.flow.listener);
        if (driver !== undefined) driver.onEvent(e);
        else this.core.close(e.flow, "aborted"); // no data path holds its listener: nothing can send it
        return;
      }
      case "listener_done":
        this.#routes.get(e.listener)?.onEvent(e);
        return;
      case "resolve":
        return this.#resolve(e.flow);
      case "health":
        return this.#hooks.health?.(e.cluster, e.backend.key, e.change);
      case "fail_open":
        return this.#hooks.failOpen?.(e.cluster);
      case "fd_limit":
        return this.#hooks.fdLimit?.(e.budget);
    }
  }

  /** Runs the resolver for a flow awaiting its backend; the answer's `open` goes to the flow's driver. */
  #resolve(flow: Flow): void {
    const resolver = this.#resolver;
    if (resolver === null) return this.#resolved(flow, null);
    resolver(flow).then((a) => this.#resolved(flow, a), () => this.#resolved(flow, null));
  }

  #resolved(flow: Flow, address: SocketAddress | null): void {
    if (this.#stopped) return;
    this.core.resolved(flow, address, this.clock());
    this.drain();
  }

  /** Arms the one timer at the core's next deadline, when that moved earlier (a later one is re-read on firing). */
  #rearm(): void {
    if (this.#stopped) return;
    const at = this.core.nextDeadline();
    if (at >= this.#armedAt) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#armedAt = at;
    this.#timer = at === Infinity ? null : setTimeout(this.#fire, Math.max(0, Math.ceil(at - this.clock())));
  }

  /** Stops the timer, the wake-ups and resolutions still under way. The drivers stop on their own. */
  stop(): void {
    this.#stopped = true;
    this.core.setWake(null);
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
