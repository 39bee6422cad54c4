/**
 * The native driver's pool of idle connected upstream sockets, per backend: a flow that closed because
 * every datagram it forwarded had its `responses` replies hands its socket here instead of closing it, and
 * the next flow to the same backend takes it, so a one-flow-per-query workload (DNS) skips socket,
 * setsockopt, connect, epoll_ctl, getsockopt and close per flow (measured: 8 syscalls per flow down to 3).
 *
 * The risk is a late duplicate: a backend that answers one datagram more often than `responses` says, or
 * later than the flow lived, would have that reply read on the socket's next flow and sent to its client.
 * The guards:
 *
 * - only flows closed by `responses` give their socket back (every expected reply arrived; flows closed by
 *   idle deadlines, drains, aborts or operators still have replies owed, so their sockets go to the
 *   late-reply window and close, as before);
 * - a quarantine of `POOL_QUARANTINE_MS` (the late-reply window's length) before a socket is handed on:
 *   it stays in the epoll set meanwhile and what arrives is read and counted `late` against the flow that
 *   closed, exactly as in the late-reply window;
 * - when taken, the socket's receive queue is drained (counted `late` the same way), so nothing already
 *   queued can reach the new flow.
 *
 * What is left: a duplicate later than the quarantine reaches the socket's next flow (without the pool it
 * would reach a closed socket). `reuse_upstream = false` on a cluster turns the pool off.
 *
 * Bounded: `POOL_MAX` sockets in all (past it a closing flow's socket takes the late-reply window's path);
 * a socket unused `POOL_IDLE_MS` past its quarantine is closed, and so is every socket of a backend that is
 * no longer up or no longer configured (checked by a sweep every `SWEEP_MS` while the pool is not empty).
 * FIFO per backend in a ring that only grows: putting and taking allocate nothing once it has grown.
 *
 * @module
 */

import type { Backend } from "../../../core/backend.ts";
import type { NativeFlow } from "./native_records.ts";
import { LATE_WINDOW_MS } from "../late_window.ts";

/** How long a returned socket waits (still read, replies counted `late`) before another flow may take it. */
export const POOL_QUARANTINE_MS = LATE_WINDOW_MS;
/** Most idle sockets held across every backend. 4096 holds a full quarantine up to ~40k flows/s. */
export const POOL_MAX = 4096;
/** A socket past its quarantine and not taken for this long is closed (the pool follows the load down). */
export const POOL_IDLE_MS = 2000;
/** How often the pool checks its backends and idle sockets while it holds any. */
export const SWEEP_MS = 250;

/** What the pool needs from the driver. */
export interface PoolHost {
  /** Whether `backend` of cluster `cluster` still takes new flows (up, and still configured). */
  usable(backend: Backend, cluster: string): boolean;
  /**
   * Reads what waits on `nf`'s socket (replies to its closed flow: counted `late`). False when the socket
   * must not be reused (an error other than "nothing queued").
   */
  drain(nf: NativeFlow): boolean;
  /** Closes `nf`'s socket for good. */
  release(nf: NativeFlow): void;
  /** The clock, in ms. */
  clock(): number;
}

/** One backend's idle sockets, oldest first, with when each came back. */
class Ring {
  items: (NativeFlow | undefined)[] = new Array(16).fill(undefined);
  at = new Float64Array(16);
  head = 0;
  size = 0;

  constructor(readonly cluster: string) {}

  push(nf: NativeFlow, now: number): void {
    if (this.size === this.items.length) this.#grow();
    const i = (this.head + this.size) & (this.items.length - 1);
    this.items[i] = nf;
    this.at[i] = now;
    this.size++;
  }

  shift(): NativeFlow {
    const nf = this.items[this.head] as NativeFlow;
    this.items[this.head] = undefined;
    this.head = (this.head + 1) & (this.items.length - 1);
    this.size--;
    return nf;
  }

  /** When the oldest came back. */
  get oldest(): number {
    return this.at[this.head];
  }

  #grow(): void {
    const n = this.items.length;
    const items: (NativeFlow | undefined)[] = new Array(n * 2).fill(undefined);
    const at = new Float64Array(n * 2);
    for (let k = 0; k < n; k++) {
      const j = (this.head + k) & (n - 1);
      items[k] = this.items[j];
      at[k] = this.at[j];
    }
    this.items = items;
    this.at = at;
    this.head = 0;
  }
}

/** Idle connected upstream sockets per backend (see the module doc for the guard against late replies). */
export class UpstreamPool {
  readonly #host: PoolHost;
  readonly #max: number;
  readonly #quarantine: number;
  readonly #idle: number;
  readonly #rings = new Map<Backend, Ring>();
  #size = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  /** Sockets handed to a new flow, sockets returned, and those closed by the sweep or a full pool. */
  readonly stats = { reused: 0, returned: 0, closed: 0, full: 0 };

  /** A pool over `host`; the bounds and times are parameters for tests. */
  constructor(
    host: PoolHost,
    max = POOL_MAX,
    quarantineMs = POOL_QUARANTINE_MS,
    idleMs = POOL_IDLE_MS,
  ) {
    this.#host = host;
    this.#max = max;
    this.#quarantine = quarantineMs;
    this.#idle = idleMs;
  }

  /** Idle sockets held now. */
  get size(): number {
    return this.#size;
  }

  /** Idle sockets held for `backend`. */
  sizeOf(backend: Backend): number {
    return this.#rings.get(backend)?.size ?? 0;
  }

  /**
   * Takes `nf`'s socket (its flow just closed) if its flow may give it back: closed by `responses`, on a
   * cluster that allows reuse, to a backend that is up, with room in the pool. False: the caller keeps it.
   */
  put(nf: NativeFlow, now: number): boolean {
    const flow = nf.flow;
    const backend = flow.backend;
    if (flow.closeReason !== "responses" || backend === null || backend.state !== "up") return false;
    if (flow.knobs.reuseUpstream === false || this.#max <= 0) return false;
    if (this.#size >= this.#max) {
      this.stats.full++;
      return false;
    }
    let ring = this.#rings.get(backend);
    if (ring === undefined) {
      ring = new Ring(flow.knobs.name);
      this.#rings.set(backend, ring);
    }
    ring.push(nf, now);
    this.#size++;
    this.stats.returned++;
    if (this.#timer === null) this.#arm();
    return true;
  }

  /**
   * An idle socket to `backend` whose quarantine ended, drained, for a new flow (the returned NativeFlow is
   * the closed flow that owned it: the caller makes the new one on its fd). Null: open a new socket.
   */
  take(backend: Backend, now: number): NativeFlow | null {
    const ring = this.#rings.get(backend);
    if (ring === undefined) return null;
    const host = this.#host;
    while (ring.size > 0 && ring.oldest + this.#quarantine <= now) {
      const nf = ring.shift();
      this.#size--;
      if (host.drain(nf)) {
        this.stats.reused++;
        return nf;
      }
      this.stats.closed++;
      host.release(nf);
    }
    return null;
  }

  /** Closes the sockets of backends no longer usable and those idle too long past their quarantine. */
  sweep(now: number): void {
    const host = this.#host;
    const expiry = this.#quarantine + this.#idle;
    for (const [backend, ring] of this.#rings) {
      const gone = !host.usable(backend, ring.cluster);
      while (ring.size > 0 && (gone || ring.oldest + expiry <= now)) {
        this.#size--;
        this.stats.closed++;
        host.release(ring.shift());
      }
      if (ring.size === 0) this.#rings.delete(backend);
    }
  }

  /** Closes every socket of `backend` now (it went down or was removed). */
  drop(backend: Backend): void {
    const ring = this.#rings.get(backend);
    if (ring === undefined) return;
    this.#rings.delete(backend);
    while (ring.size > 0) {
      this.#size--;
      this.stats.closed++;
      this.#host.release(ring.shift());
    }
  }

  /** Closes everything (shutdown). */
  releaseAll(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    for (const backend of [...this.#rings.keys()]) this.drop(backend);
  }

  #arm(): void {
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.sweep(this.#host.clock());
      if (this.#size > 0) this.#arm();
    }, SWEEP_MS);
  }
}

/** The clusters a pool's host looks backends up in (the core's `cluster(name)`). */
export interface ClusterLookup {
  cluster(
    name: string,
  ): { readonly backends: readonly Backend[]; readonly external: ReadonlyMap<string, Backend> } | undefined;
}

/** Whether `backend` is up and still one of cluster `name`'s (configured, or resolved for it). */
export function backendUsable(core: ClusterLookup, backend: Backend, name: string): boolean {
  if (backend.state !== "up") return false;
  const c = core.cluster(name);
  return c !== undefined && (c.backends.includes(backend) || c.external.get(backend.key) === backend);
}
