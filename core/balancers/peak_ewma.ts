/**
 * Peak EWMA with power of two choices, as Finagle's and Linkerd's latency-aware balancers do for requests:
 * draw two backends by weight, keep the one with the lower cost = peak EWMA latency × (active flows + 1) /
 * weight. The latency is the backend's peak EWMA (core/backend_quality.ts): it jumps up with a slow
 * sample, falls smoothly with fast ones, and decays towards zero while the backend gets no samples, so a
 * backend that was slow and so lost its traffic becomes cheap again with time, gets flows and re-measures.
 *
 * A backend with no latency figure yet (cost 0) cannot be compared by latency: then the pair is settled
 * by flows per weight, as power_of_two does, so a new backend gets its share and its first samples.
 *
 * @module
 */

import type { Candidate } from "./balancer.ts";
import { PowerOfTwoBalancer } from "./power_of_two.ts";

/** Power of two choices scored by peak EWMA latency × (flows + 1) / weight. */
export class PeakEwmaBalancer extends PowerOfTwoBalancer {
  /** True when `x` should win over `y`: the lower latency cost, or fewer flows per weight without one. */
  override better(x: Candidate, y: Candidate, now: number): boolean {
    const cx = x.quality?.peakCost(now) ?? 0;
    const cy = y.quality?.peakCost(now) ?? 0;
    if (cx > 0 && cy > 0) return cx * (x.flows + 1) * y.weight < cy * (y.flows + 1) * x.weight;
    return super.better(x, y, now);
  }
}
