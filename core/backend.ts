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

/** Per-backend counters; plain numbers, incremented on the forwarding path. */
export interface BackendCounters {
  /** Flows ever pinned to this backend. */
  flowsTotal: number;
  /** Client datagrams and payload bytes sent towards this backend. */
  datagramsTo: number;
  bytesTo: number;
  /** Replies and payload bytes received from this backend. */
  datagramsFrom: number;
  bytesFrom: number;
  /** Sends to this backend that failed (reported by the shell). */
  sendErrors: number;
  /** ICMP port unreachable (ECONNREFUSED) seen on this backend's flow sockets. */
  refusals: number;
}

/** One backend. */
export class Backend implements Candidate {
  /** Canonical "ip:port" (IPv6 bracketed): the identity balancers hash and reconfiguration matches on. */
  readonly key: string;
  readonly address: SocketAddress;
  weight: number;
  state: BackendState;
  /** Live flows pinned here now. */
  flows = 0;
  readonly counters: BackendCounters = {
    flowsTotal: 0,
    datagramsTo: 0,
    bytesTo: 0,
    datagramsFrom: 0,
    bytesFrom: 0,
    sendErrors: 0,
    refusals: 0,
  };

  /** A backend at `address`; `weight` >= 1. */
  constructor(address: SocketAddress, weight: number, state: BackendState) {
    this.key = formatSocketAddress(address);
    this.address = address;
    this.weight = weight;
    this.state = state;
  }

  /** True when the backend may take new flows. */
  get usable(): boolean {
    return this.state === "up";
  }
}
