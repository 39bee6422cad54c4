/**
 * The parts a relay core is built of, wired together once when it is made: the health verdicts, the flow
 * lifecycle, admission, TCP admission's view of the core and the operator actions' targets, plus its empty
 * edge-protection state. Kept out of relay_core.ts, which holds the inputs; RelayCore passes in its tables,
 * its event queue and the few calls that lead back into it (`CoreCallbacks`), so nothing here imports it.
 *
 * Pure: construction only, never on the forwarding path.
 *
 * @module
 */

import type { Cluster } from "./cluster.ts";
import type { Connection } from "./connection.ts";
import { CoreHealth } from "./core_health.ts";
import { DEFAULT_AUTO_MAX_FLOWS, type RelayCoreOptions } from "./core_options.ts";
import type { EventQueue } from "./event_queue.ts";
import { FlowLifecycle } from "./flow_lifecycle.ts";
import { Admission } from "./admission.ts";
import { endConnectionIn, type TcpAdmissionHost } from "./tcp_admission.ts";
import type { OperatorTargets } from "./operator_actions.ts";
import type { ProtectionState } from "./admission_guard.ts";
import { BanTable } from "./ban_table.ts";
import { TopTalkers } from "./heavy_hitters.ts";
import type { Listener } from "./listener.ts";
import type { CloseReason } from "./reasons.ts";

/** The calls the parts make back into their core. */
export interface CoreCallbacks {
  /** Closes every flow and connection pinned to backend `key` of `cluster` (a health verdict's teardown). */
  closeBackendFlows(key: string, cluster: string, reason: CloseReason): number;
  /** Forgets a removed listener with nothing left on it. */
  forgetListener(listener: Listener): void;
  /** True when the whole core is draining. */
  draining(): boolean;
}

/** A core's parts, made once by `coreParts`. */
export interface CoreParts {
  /** Health verdicts: probes, passive failures and the windows' expiry (core/core_health.ts). */
  readonly health: CoreHealth;
  /** Live flows, their deadlines and their teardown (core/flow_lifecycle.ts). */
  readonly life: FlowLifecycle;
  /** New flows (core/admission.ts). */
  readonly admission: Admission;
  /** The view TCP admission (core/tcp_admission.ts) has of the core. */
  readonly tcp: TcpAdmissionHost;
  /** What the operator actions (core/operator_actions.ts) close, and how. */
  readonly targets: OperatorTargets;
}

/** A core's empty edge-protection state, shared by every listener: bans, top talkers, pending auto-bans. */
export function protectionState(): ProtectionState {
  return { bans: new BanTable(), top: new TopTalkers(64, 0), autoBans: [], autoBanCount: 0 };
}

/**
 * Wires the parts of a core over its `clusters`, `events`, `protection` and TCP `connections`, with
 * `options` (seed, descriptor budget, automatic max_flows, passive report) and the calls `back` into it.
 */
export function coreParts(
  clusters: ReadonlyMap<string, Cluster>,
  events: EventQueue,
  protection: ProtectionState,
  connections: Set<Connection>,
  options: RelayCoreOptions,
  back: CoreCallbacks,
): CoreParts {
  const health = new CoreHealth(
    clusters,
    (e) => events.push(e),
    back.closeBackendFlows,
    options.reportPassive,
  );
  const life = new FlowLifecycle(events, health, protection, back.forgetListener);
  const autoMaxFlows = options.autoMaxFlows ?? DEFAULT_AUTO_MAX_FLOWS;
  const state = {
    protection,
    health,
    lifecycle: life,
    connections,
    events,
    autoMaxFlows,
    draining: back.draining,
  };
  const admission = new Admission(state, options.seed, options.descriptorBudget ?? Infinity);
  const tcp: TcpAdmissionHost = {
    ...state,
    descriptorsFor: (cost) => admission.descriptorsFor(cost),
    choose: (cluster, keyHash, now) => admission.choose(cluster, keyHash, now),
    nextId: () => admission.nextId(),
    forgetListener: back.forgetListener,
  };
  const targets: OperatorTargets = {
    flows: life.flows,
    connections,
    closeFlow: (flow, reason) => life.close(flow, reason),
    // The shell closes the sockets on `connection_closed`. The time only matters for refused and timed-out
    // connects, which operator actions never are.
    closeConnection: (conn, end) => {
      if (!endConnectionIn(tcp, conn, end, 0)) return false;
      events.push({ kind: "connection_closed", connection: conn });
      return true;
    },
  };
  return { health, life, admission, tcp, targets };
}
