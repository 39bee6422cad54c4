/**
 * Quality figures of one backend, fed by its flows as they measure (no scan over flows, no allocation):
 *
 * - latency: every RTT sample a flow accepts (see core/quality.ts) also updates the backend's srtt and
 *   jitter with the same RFC 6298 estimator: srtt ← srtt + (sample − srtt)/8, rttvar ← rttvar +
 *   (|sample − srtt| − rttvar)/4.
 * - peak EWMA (the `peak_ewma` balancer's cost, after Finagle and Linkerd): a sample above the cost
 *   replaces it at once (peak); otherwise cost ← cost·w + sample·(1 − w) with w = e^(−Δt/τ), Δt the time
 *   since the last update and τ = `PEAK_EWMA_DECAY_MS`. Read at time t, the cost is decayed towards zero
 *   as if a 0 ms sample came then (Finagle's `get`), so a backend that stopped getting traffic after a bad
 *   patch looks cheaper with time and gets flows, and fresh samples, back.
 * - unanswered: the requests its flows judged answered or unanswered, in a window halved past
 *   `QUALITY_WINDOW` so recent behaviour dominates; totals are kept for counters.
 * - sequence: its flows' sequence counters summed per direction (see core/sequence.ts).
 *
 * @module
 */

import { SequenceCounts } from "./sequence.ts";

/** Decay time of the peak EWMA cost, in ms (Finagle's default decay time). */
export const PEAK_EWMA_DECAY_MS = 10_000;
/** Judged requests after which a backend's answered/unanswered window is halved. */
export const QUALITY_WINDOW = 4096;

/** One backend's quality figures. Fields are public for the hot path; treat them as read-only. */
export class BackendQuality {
  /** Smoothed RTT over its flows' accepted samples, in ms; NaN before the first. */
  srtt = NaN;
  /** RTT variation (jitter), ms. */
  rttvar = 0;
  /** RTT samples taken. */
  samples = 0;
  /** Peak EWMA cost in ms as of `peakAt`. */
  peak = 0;
  peakAt = 0;
  /** The recent window of judged requests. */
  answered = 0;
  unanswered = 0;
  /** Totals since start, for counters. */
  answeredTotal = 0;
  unansweredTotal = 0;
  /** Sequence counters, client → backend ("up") and backend → client ("down"). */
  readonly sequenceUp = new SequenceCounts();
  readonly sequenceDown = new SequenceCounts();

  /** An RTT sample of `sample` ms taken at `now` by one of its flows. */
  rtt(sample: number, now: number): void {
    this.samples++;
    if (this.srtt !== this.srtt) {
      this.srtt = sample;
      this.rttvar = sample / 2;
    } else {
      this.rttvar += (Math.abs(sample - this.srtt) - this.rttvar) / 4;
      this.srtt += (sample - this.srtt) / 8;
    }
    if (sample > this.peak) this.peak = sample;
    else {
      const w = decay(now > this.peakAt ? (now - this.peakAt) / PEAK_EWMA_DECAY_MS : 0);
      this.peak = this.peak * w + sample * (1 - w);
    }
    this.peakAt = now;
  }

  /** The peak EWMA cost at `now`, in ms: 0 before any sample, decayed towards 0 since the last. */
  peakCost(now: number): number {
    const dt = now - this.peakAt;
    return dt > 0 ? this.peak * decay(dt / PEAK_EWMA_DECAY_MS) : this.peak;
  }

  /** A flow judged one request answered. */
  onAnswered(): void {
    this.answeredTotal++;
    if (++this.answered + this.unanswered > QUALITY_WINDOW) this.#halve();
  }

  /** A flow judged `n` requests unanswered. */
  onUnanswered(n: number): void {
    this.unansweredTotal += n;
    if (this.answered + (this.unanswered += n) > QUALITY_WINDOW) this.#halve();
  }

  /** Unanswered over judged requests of the recent window, per-mille. */
  get unansweredPermille(): number {
    const judged = this.answered + this.unanswered;
    return judged === 0 ? 0 : Math.round((this.unanswered * 1000) / judged);
  }

  #halve(): void {
    this.answered >>>= 1;
    this.unanswered >>>= 1;
  }
}

/**
 * e^(−x) for x ≥ 0. Samples of a busy backend come microseconds apart (x ≈ 1e-7), where the series'
 * first terms are exact to double precision (error below x³/6 < 2e-8 for x < 0.005) and cost less than exp.
 */
function decay(x: number): number {
  return x < 0.005 ? 1 - x + x * x * 0.5 : Math.exp(-x);
}
