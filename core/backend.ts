/**
 * A backend as the core tracks it: address, weight, state and counters. One object per address lives as
 * long as some cluster or flow refers to it, so a reconfiguration that keeps an address keeps its counters,
 * its state and its live-flow count.
 *
 * @module
 */

import { formatSocketAddress, type SocketAddress } from "./address.ts";
import type { Candidate } from "./balancers/balancer.ts";
import type { BackendState } from "./types.ts";
import { BackendHealth } from "./health.ts";
import { BackendQuality } from "./backend_quality.ts";
import { type BackendCounters, newBackendCounters } from "./backend_counters.ts";

/** Per-backend counters, declared in the leaf core/backend_counters.ts; re-exported for existing importers. */
export type { BackendCounters } from "./backend_counters.ts";

/** One backend. */
export class Backend implements Candidate {
  /** Canonical "ip:port" (IPv6 bracketed): the identity balancers hash and reconfiguration matches on. */
  readonly key: string;
  readonly address: SocketAddress;
  weight: number;
  /** The state the config (or an operator) gives it. */
  adminState: BackendState;
  /** What probes and passive detection say. */
  readonly health: BackendHealth;
  /** The effective state: the admin state, or down when health says so. Only `up` takes new flows. */
  state: BackendState;
  /** Live flows pinned here now. */
  flows = 0;
  /** Latency, unanswered requests and sequence loss over its flows (fed by them as they measure). */
  readonly quality = new BackendQuality();
  /** Its counters, as core/backend_counters.ts declares them. */
  readonly counters: BackendCounters = newBackendCounters();

  /** A backend at `address`; `weight` >= 1; `now` starts its health record. */
  constructor(address: SocketAddress, weight: number, adminState: BackendState, now = 0) {
    this.key = formatSocketAddress(address);
    this.address = address;
    this.weight = weight;
    this.adminState = adminState;
    this.state = adminState;
    this.health = new BackendHealth(now);
  }

  /** Recomputes the effective state; returns true when it changed. */
  refresh(): boolean {
    const next = this.adminState !== "up" ? this.adminState : this.health.status === "down" ? "down" : "up";
    if (next === this.state) return false;
    this.state = next;
    return true;
  }

  /** True when the backend may take new flows. */
  get usable(): boolean {
    return this.state === "up";
  }
}
