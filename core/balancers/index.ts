/**
 * Builds a cluster's balancer by name. The shell and the core name balancers in config; this is the one
 * place that maps a name to a class, so adding a balancer touches one switch.
 *
 * @module
 */

import type { BalancerKind } from "../types.ts";
import type { Balancer } from "./balancer.ts";
import { LeastFlowsBalancer } from "./least_flows.ts";
import { MaglevBalancer } from "./maglev.ts";
import { PeakEwmaBalancer } from "./peak_ewma.ts";
import { PowerOfTwoBalancer } from "./power_of_two.ts";
import { RandomBalancer } from "./random.ts";
import { RendezvousBalancer } from "./rendezvous.ts";
import { RoundRobinBalancer } from "./round_robin.ts";

export type { Balancer, Candidate } from "./balancer.ts";
export { DEFAULT_MAGLEV_TABLE_SIZE, isPrime } from "./maglev.ts";

/** The cluster settings a balancer may depend on. */
export interface BalancerOptions {
  /** Seed of the hash balancers; instances with equal seeds choose alike. */
  readonly hashSeed: number;
  /** Maglev table size; must be prime (maglev throws a RangeError otherwise). */
  readonly maglevTableSize: number;
}

/**
 * A fresh balancer of `kind`. Each cluster needs its own instance, since balancers keep per-version state.
 * `external` is excluded: the shell resolves those picks asynchronously, outside the core.
 */
export function createBalancer(kind: Exclude<BalancerKind, "external">, opts: BalancerOptions): Balancer {
  switch (kind) {
    case "round_robin":
      return new RoundRobinBalancer();
    case "random":
      return new RandomBalancer();
    case "least_flows":
      return new LeastFlowsBalancer();
    case "power_of_two":
      return new PowerOfTwoBalancer();
    case "rendezvous":
      return new RendezvousBalancer(opts.hashSeed);
    case "maglev":
      return new MaglevBalancer(opts.hashSeed, opts.maglevTableSize);
    case "peak_ewma":
      return new PeakEwmaBalancer();
    default: {
      // Config validation should make this unreachable; a clear error beats returning undefined.
      const unknown: never = kind;
      throw new RangeError(`unknown balancer: ${String(unknown)}`);
    }
  }
}
