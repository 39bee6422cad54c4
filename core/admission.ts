/**
 * Admission of new UDP flows (the checks in the order core/README.md lists them, the backend choice, the
 * table entry) and what UDP and TCP admission share: the descriptor budget, the balancer call that reports
 * fail-open episodes, and flow and connection ids. Control path: it may allocate.
 *
 * @module
 */

import type { SocketAddress } from "./address.ts";
import type { Backend } from "./backend.ts";
import type { Choice, Cluster } from "./cluster.ts";
import type { Connection } from "./connection.ts";
import type { CoreHealth } from "./core_health.ts";
import { Drop } from "./drops.ts";
import type { EventQueue } from "./event_queue.ts";
import { FD_PER_CONNECTION, FD_PER_FLOW, FD_REARM, fits } from "./fd_budget.ts";
import { Flow, FlowState } from "./flow.ts";
import type { FlowLifecycle } from "./flow_lifecycle.ts";
import type { Listener } from "./listener.ts";
import { encodeProxyV2 } from "./proxy_v2.ts";
import { Rng } from "./rng.ts";
import { affinityHash, stickyBackend } from "./affinity.ts";
import { admissionGuard, type ProtectionState } from "./admission_guard.ts";

/** The parts of a core admission reads and fills. */
export interface AdmissionState {
  readonly protection: ProtectionState;
  readonly health: CoreHealth;
  readonly lifecycle: FlowLifecycle;
  readonly connections: Set<Connection>;
  readonly events: EventQueue;
  /** The flow limit of listeners whose max_flows is 0. */
  readonly autoMaxFlows: number;
  /** Whether the whole core is draining. */
  draining(): boolean;
}

/** Admits new flows of one core. */
export class Admission {
  readonly #s: AdmissionState;
  readonly #rng: Rng;
  readonly #fdBudget: number;
  /** A budget refusal was reported and usage has not fallen back below FD_REARM of it since. */
  #fdWarned = false;
  #nextId = 1;

  /** Admission over `state`, its random choices seeded by `seed`, within `fdBudget` descriptors. */
  constructor(state: AdmissionState, seed: number, fdBudget: number) {
    this.#s = state;
    this.#rng = new Rng(seed);
    this.#fdBudget = fdBudget;
  }

  /** The next flow or connection id. */
  nextId(): number {
    return this.#nextId++;
  }

  /** Whether the descriptor budget has room for `cost` more; reports the start of a refusal episode once. */
  descriptorsFor(cost: number): boolean {
    const budget = this.#fdBudget;
    if (budget === Infinity) return true;
    const inUse = this.#s.lifecycle.flows.size * FD_PER_FLOW + this.#s.connections.size * FD_PER_CONNECTION;
    if (fits(inUse, cost, budget)) {
      if (this.#fdWarned && inUse + cost <= budget * FD_REARM) this.#fdWarned = false;
      return true;
    }
    if (!this.#fdWarned) {
      this.#fdWarned = true;
      this.#s.events.push({ kind: "fd_limit", budget });
    }
    return false;
  }

  /** Asks the cluster for a backend, reporting the start of a fail-open episode once. */
  choose(cluster: Cluster, keyHash: number, now: number): Choice | null {
    const wasFailingOpen = cluster.failingOpen;
    const choice = cluster.choose(keyHash, this.#rng, now);
    if (choice !== null && choice.failOpen && !wasFailingOpen) {
      cluster.failingOpen = true;
      this.#s.events.push({ kind: "fail_open", cluster: cluster.config.name });
    }
    return choice;
  }

  /**
   * A first datagram from a client `listener` has no flow for: the guards, the budget, the caps, the source
   * policy and the balancer, in that order. Returns the Drop code, or the new flow: AwaitingBackend (the
   * datagram held, a `resolve` queued) or Established with its backend, its datagram not yet forwarded.
   */
  admit(
    listener: Listener,
    cluster: Cluster,
    ports: Map<number, Flow> | undefined,
    ip: string,
    port: number,
    data: Uint8Array,
    now: number,
  ): Flow | Drop {
    const s = this.#s;
    const drops = listener.counters.drops;
    const guarded = admissionGuard(s.protection, listener, ip, data, now);
    if (guarded !== null) return guarded;
    const limit = listener.config.maxFlows > 0 ? listener.config.maxFlows : s.autoMaxFlows;
    const draining = s.draining() || listener.draining;
    // The process-wide descriptor budget first: with max_flows = 0 a listener's limit is that budget.
    if (!draining && !this.descriptorsFor(FD_PER_FLOW)) {
      drops.fd_limit++;
      return Drop.Shed;
    }
    if (draining || listener.flows >= limit) {
      drops.shed++;
      s.protection.top.drops.add(ip, 1);
      return Drop.Shed;
    }
    if (listener.sources.check(ip, port) !== "ok") {
      drops.invalid++;
      return Drop.Invalid;
    }
    s.protection.top.flows.add(ip, 1);
    const knobs = cluster.config;
    if (now >= s.health.expiry) s.health.tick(now);
    let backend: Backend | null = null;
    if (knobs.balancer !== "external") {
      backend = knobs.affinity === "ip" ? stickyBackend(ports, cluster) : null;
      if (backend === null) {
        const choice = this.choose(cluster, affinityHash(knobs, ip, port), now);
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
    s.lifecycle.flows.add(flow);
    if (backend === null) {
      flow.state = FlowState.AwaitingBackend;
      this.holdPending(flow, data, now);
      s.events.push({ kind: "resolve", flow });
    } else this.establish(flow, backend);
    return flow;
  }

  /** Pins `flow` to `backend`: Established, counted, its PROXY header made. The caller queues `open`. */
  establish(flow: Flow, backend: Backend): void {
    flow.backend = backend;
    flow.quality.link(backend.quality);
    flow.state = FlowState.Established;
    backend.flows++;
    backend.counters.flowsTotal++;
    if (flow.knobs.proxyProtocol !== "off") {
      const client: SocketAddress = {
        ip: flow.clientIp,
        port: flow.clientPort,
        family: flow.clientIp.includes(":") ? 6 : 4,
      };
      flow.proxyHeader = encodeProxyV2(client, flow.listener.localAddress, "dgram");
    }
  }

  /** Keeps a copy of the newest datagram of a flow awaiting its backend (one slot). */
  holdPending(flow: Flow, data: Uint8Array, now: number): void {
    if (flow.pending !== null) {
      flow.listener.counters.drops.pending_replaced++;
      flow.quality.onDrop();
    }
    // A copy: the shell reuses its receive buffer for the next datagram.
    flow.pending = data.slice();
    flow.lastClientAt = now;
  }
}
