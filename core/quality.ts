/**
 * Per-flow client quality figures, after the udp-relay-core design: counted on the forwarding path with a
 * handful of number updates (no allocation), derived figures folded lazily.
 *
 * Formulas (all times in ms):
 * - bandwidth: bytes in both directions are summed into a window; when a datagram arrives at least
 *   `SAMPLE_MS` after the window opened, rate = windowBytes · 1000 / elapsed (bytes/s) and
 *   bandwidth ← bandwidth + α·(rate − bandwidth) with α = 1/4 (the first sample is taken as is). So the figure
 *   follows the bytes since the last sample, not cumulative totals, and an idle gap pulls it down.
 * - requests in flight: each client datagram is a request; `outstanding` counts those with no reply yet.
 *   A reply answers one outstanding request (a reply with none outstanding is an extra and answers
 *   nothing). When a client datagram leaves more outstanding than the allowance, the oldest are judged
 *   unanswered. The allowance is 1 while srtt < gap (gap: the EWMA, α = 1/8, of the time between client
 *   datagrams) or before any RTT sample, which is request/response: a request that got no reply before
 *   the next one is unanswered. A flow that sends faster than its RTT has about srtt/gap requests in
 *   flight, so its allowance is 2 + ⌊srtt/gap⌋ (capped at MAX_OUTSTANDING): one more than are in flight.
 * - latency: a reply that finds exactly one request outstanding answers the latest one and gives a sample
 *   = reply time − that request's time. A reply with two or more outstanding is not paired (it may answer
 *   any of them, and after a lost reply it would span two requests), and a sample above
 *   OUTLIER_RTTS·srtt + 4·rttvar is rejected unless OUTLIER_STREAK such come in a row (the path really
 *   got slower). srtt ← sample first, then srtt + (sample − srtt)/8; jitter (rttvar) ← sample/2 first,
 *   then jitter + (|sample − srtt| − jitter)/4 (RFC 6298's estimator). A flow that always has several
 *   requests in flight gets no samples: pairing them would need per-request identity.
 * - relay drops (`dropPermille`): datagrams of the flow the relay could not deliver (send failures either
 *   way, a datagram replaced in the one-slot buffer while the backend was being resolved) over datagrams
 *   handled, in per-mille; past `LOSS_WINDOW` handled datagrams both counters are halved.
 * - unanswered (`unansweredPermille`): requests judged unanswered over requests judged (answered +
 *   unanswered), per-mille, halved likewise past `LOSS_WINDOW` judged. End to end: it includes the relay's
 *   own drops, the backend's and the path's.
 * - sequence loss: when the cluster names a sequence number, per direction (core/sequence.ts).
 * - priority (lower is better): srtt + 2·jitter + loss‰/2 + min(bandwidth KiB/s, 10000)/100, rounded,
 *   where loss‰ is the worst of relay drops, unanswered and sequence loss either way (they overlap, so no
 *   sum); a flow with no latency sample yet counts srtt and jitter as 0. Recomputed only when read after
 *   an input changed.
 *
 * @module
 */

import type { BackendQuality } from "./backend_quality.ts";
import { type SequenceSettings, SequenceTracker } from "./sequence.ts";

/** Width of a bandwidth sample window. */
export const SAMPLE_MS = 1000;
/** EWMA weight of a new bandwidth sample. */
export const BANDWIDTH_ALPHA = 0.25;
/** Handled (or judged) datagrams after which the loss counters are halved. */
export const LOSS_WINDOW = 2048;
/** A sample above OUTLIER_RTTS·srtt + 4·rttvar is rejected... */
export const OUTLIER_RTTS = 3;
/** ...unless this many such come in a row. */
export const OUTLIER_STREAK = 3;
/** The most requests a flow keeps outstanding (bounds the allowance of a very fast sender). */
export const MAX_OUTSTANDING = 64;

/** Quality figures and counters of one flow. Fields are public for the hot path; treat them as read-only. */
export class Quality {
  bytesIn = 0;
  bytesOut = 0;
  datagramsIn = 0;
  datagramsOut = 0;
  /** Bandwidth EWMA in bytes/s; NaN before the first sample. */
  bandwidthEwma = NaN;
  windowBytes = 0;
  windowStart: number;
  /** Smoothed round trip in ms; NaN until a reply was paired with a request. */
  srtt = NaN;
  /**
   * The first round trip in ms (NaN until there is one): the flow's first client datagram opens the first
   * probe, so this is admission to first reply. Set in the first-sample branch only, so it costs the
   * forwarding path nothing.
   */
  firstRtt = NaN;
  /** Round-trip variation in ms (jitter). */
  rttvar = 0;
  /** RTT samples accepted, and rejected as outliers. */
  samples = 0;
  outliers = 0;
  #outlierStreak = 0;
  /** When the latest client datagram (request) came, or -1. */
  requestAt = -1;
  /** EWMA of the time between client datagrams, ms; NaN before the second. */
  gapEwma = NaN;
  /** Requests without a reply that may still get one. */
  outstanding = 0;
  /** Requests judged, in the window (halved past LOSS_WINDOW). */
  answered = 0;
  unanswered = 0;
  handled = 0;
  dropped = 0;
  lastSeen: number;
  readonly createdAt: number;
  /** Sequence trackers of client → backend and backend → client, when the cluster names a number. */
  readonly sequenceUp: SequenceTracker | null;
  readonly sequenceDown: SequenceTracker | null;
  /** The pinned backend's figures, fed with this flow's samples and judgements; null until pinned. */
  backend: BackendQuality | null = null;
  #priority = 0;
  #dirty = true;

  /** Starts the figures of a flow admitted at `now`, reading sequence numbers where `sequence` says. */
  constructor(now: number, sequence: SequenceSettings | null = null) {
    this.createdAt = now;
    this.lastSeen = now;
    this.windowStart = now;
    this.sequenceUp = sequence === null ? null : new SequenceTracker(sequence);
    this.sequenceDown = sequence === null ? null : new SequenceTracker(sequence);
  }

  /** Feeds `backend`'s figures from now on (the flow was pinned to it). */
  link(backend: BackendQuality): void {
    this.backend = backend;
    if (this.sequenceUp !== null) this.sequenceUp.totals = backend.sequenceUp;
    if (this.sequenceDown !== null) this.sequenceDown.totals = backend.sequenceDown;
  }

  /** Counts a client datagram of `size` bytes forwarded at `now`; `data` (from `at`) for its sequence number. */
  onClient(size: number, now: number, data?: Uint8Array, at = 0): void {
    this.bytesIn += size;
    this.datagramsIn++;
    this.#count(size, now);
    const last = this.requestAt;
    this.requestAt = now;
    if (last >= 0) {
      const g = this.gapEwma;
      this.gapEwma = g === g ? g + (now - last - g) * 0.125 : now - last;
    }
    // One outstanding is always allowed: only compute the allowance when there are more.
    if (++this.outstanding > 1) this.#judge();
    if (this.sequenceUp !== null && data !== undefined) this.sequenceUp.observe(data, at, size);
  }

  /** Judges the oldest outstanding requests beyond the allowance unanswered: their replies were due. */
  #judge(): void {
    const allowance = this.#allowance();
    const late = this.outstanding - allowance;
    if (late <= 0) return;
    this.outstanding = allowance;
    this.unanswered += late;
    this.#halveJudged();
    if (this.backend !== null) this.backend.onUnanswered(late);
  }

  /** Counts a backend reply of `size` bytes at `now`; `data` (from `at`) for its sequence number. */
  onBackend(size: number, now: number, data?: Uint8Array, at = 0): void {
    this.bytesOut += size;
    this.datagramsOut++;
    this.#count(size, now);
    if (this.sequenceDown !== null && data !== undefined) this.sequenceDown.observe(data, at, size);
    const n = this.outstanding;
    if (n === 0) return; // an extra reply: it answers nothing
    this.outstanding = n - 1;
    this.answered++;
    this.#halveJudged();
    const b = this.backend;
    if (b !== null) b.onAnswered();
    // Which of several requests it answers is unknown: no sample.
    if (n === 1) this.#sample(now - this.requestAt, now, b);
  }

  /** Takes (or rejects as an outlier) an RTT sample of `sample` ms. */
  #sample(sample: number, now: number, b: BackendQuality | null): void {
    if (this.srtt !== this.srtt) {
      this.firstRtt = sample;
      this.srtt = sample;
      this.rttvar = sample / 2;
    } else if (
      sample > OUTLIER_RTTS * this.srtt + 4 * this.rttvar && ++this.#outlierStreak < OUTLIER_STREAK
    ) {
      this.outliers++;
      return;
    } else {
      this.rttvar += (Math.abs(sample - this.srtt) - this.rttvar) / 4;
      this.srtt += (sample - this.srtt) / 8;
    }
    this.#outlierStreak = 0;
    this.samples++;
    if (b !== null) b.rtt(sample, now);
  }

  /** Counts a datagram of this flow that the relay could not deliver. */
  onDrop(): void {
    this.dropped++;
    this.handled++;
    this.#halve();
    this.#dirty = true;
  }

  /** Bandwidth in bytes/s as of `now`, folding the open window if it is due. */
  bandwidth(now: number): number {
    this.#fold(now);
    return this.bandwidthEwma === this.bandwidthEwma ? this.bandwidthEwma : 0;
  }

  /** The relay's own drops in per-mille of handled datagrams. */
  get dropPermille(): number {
    return this.handled === 0 ? 0 : Math.round((this.dropped * 1000) / this.handled);
  }

  /** The relay's own drops, per-mille: the name the API has always used (same as `dropPermille`). */
  get lossPermille(): number {
    return this.dropPermille;
  }

  /** Requests judged unanswered over requests judged, per-mille (end to end). */
  get unansweredPermille(): number {
    const judged = this.answered + this.unanswered;
    return judged === 0 ? 0 : Math.round((this.unanswered * 1000) / judged);
  }

  /** The worst of relay drops, unanswered requests and sequence loss either way, per-mille. */
  get worstLossPermille(): number {
    let worst = this.dropPermille;
    const u = this.unansweredPermille;
    if (u > worst) worst = u;
    if (this.sequenceUp !== null && this.sequenceUp.lossPermille > worst) {
      worst = this.sequenceUp.lossPermille;
    }
    if (this.sequenceDown !== null && this.sequenceDown.lossPermille > worst) {
      worst = this.sequenceDown.lossPermille;
    }
    return worst;
  }

  /** The priority score (lower is better) as of `now`. */
  priority(now: number): number {
    this.#fold(now);
    if (this.#dirty) {
      const srtt = this.srtt === this.srtt ? this.srtt : 0;
      const kib = this.bandwidthEwma === this.bandwidthEwma ? this.bandwidthEwma / 1024 : 0;
      this.#priority = Math.round(
        srtt + 2 * this.rttvar + this.worstLossPermille / 2 + Math.min(kib, 10000) / 100,
      );
      this.#dirty = false;
    }
    return this.#priority;
  }

  /** How many requests may be outstanding with their replies still due. */
  #allowance(): number {
    const srtt = this.srtt;
    const gap = this.gapEwma;
    // Request/response (the next request follows the reply) has gap > srtt: one outstanding at most.
    if (srtt !== srtt || gap !== gap || srtt < gap) return 1;
    if (gap <= 0) return MAX_OUTSTANDING;
    const n = 2 + Math.floor(srtt / gap);
    return n < MAX_OUTSTANDING ? n : MAX_OUTSTANDING;
  }

  #count(size: number, now: number): void {
    // Fold first: a datagram arriving after a gap belongs to the new window, not the idle one.
    this.#fold(now);
    this.handled++;
    this.windowBytes += size;
    this.lastSeen = now;
    this.#halve();
    this.#dirty = true;
  }

  #halve(): void {
    if (this.handled > LOSS_WINDOW) {
      this.handled >>>= 1;
      this.dropped >>>= 1;
    }
  }

  #halveJudged(): void {
    if (this.answered + this.unanswered > LOSS_WINDOW) {
      this.answered >>>= 1;
      this.unanswered >>>= 1;
    }
  }

  #fold(now: number): void {
    const elapsed = now - this.windowStart;
    if (elapsed < SAMPLE_MS) return;
    const rate = (this.windowBytes * 1000) / elapsed;
    this.bandwidthEwma = this.bandwidthEwma === this.bandwidthEwma
      ? this.bandwidthEwma + BANDWIDTH_ALPHA * (rate - this.bandwidthEwma)
      : rate;
    this.windowBytes = 0;
    this.windowStart = now;
    this.#dirty = true;
  }
}
