/**
 * Per-flow client quality figures, after the udp-relay-core design: counted on the forwarding path with a
 * handful of number updates (no allocation), derived figures folded lazily.
 *
 * Formulas (all times in ms):
 * - bandwidth: bytes in both directions are summed into a window; when a datagram arrives at least
 *   `SAMPLE_MS` after the window opened, rate = windowBytes · 1000 / elapsed (bytes/s) and
 *   bandwidth ← bandwidth + α·(rate − bandwidth) with α = 1/4 (the first sample is taken as is). So the figure
 *   follows the bytes since the last sample, not cumulative totals, and an idle gap pulls it down.
 * - latency: a client datagram starts a probe if none is open; the next backend reply closes it with
 *   sample = reply time − start. srtt ← sample first, then srtt + (sample − srtt)/8; jitter (rttvar) ←
 *   sample/2 first, then jitter + (|sample − srtt| − jitter)/4 (RFC 6298's estimator).
 * - loss: datagrams of the flow the relay could not deliver (send failures either way, a datagram replaced
 *   in the one-slot buffer while the backend was being resolved) over datagrams handled, in per-mille;
 *   past `LOSS_WINDOW` handled datagrams both counters are halved so recent behaviour dominates.
 * - priority (lower is better): srtt + 2·jitter + loss‰/2 + min(bandwidth KiB/s, 10000)/100, rounded; a
 *   flow with no latency sample yet counts srtt and jitter as 0. Recomputed only when read after an input
 *   changed.
 *
 * @module
 */

/** Width of a bandwidth sample window. */
export const SAMPLE_MS = 1000;
/** EWMA weight of a new bandwidth sample. */
export const BANDWIDTH_ALPHA = 0.25;
/** Handled datagrams after which the loss counters are halved. */
export const LOSS_WINDOW = 2048;

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
  /** Smoothed round trip in ms; NaN until a reply followed a client datagram. */
  srtt = NaN;
  /**
   * The first round trip in ms (NaN until there is one): the flow's first client datagram opens the first
   * probe, so this is admission to first reply. Set in the first-sample branch only, so it costs the
   * forwarding path nothing.
   */
  firstRtt = NaN;
  /** Round-trip variation in ms (jitter). */
  rttvar = 0;
  /** When the open latency probe started, or -1. */
  probeStart = -1;
  handled = 0;
  dropped = 0;
  lastSeen: number;
  readonly createdAt: number;
  #priority = 0;
  #dirty = true;

  /** Starts the figures of a flow admitted at `now`. */
  constructor(now: number) {
    this.createdAt = now;
    this.lastSeen = now;
    this.windowStart = now;
  }

  /** Counts a client datagram of `size` bytes forwarded at `now`. */
  onClient(size: number, now: number): void {
    this.bytesIn += size;
    this.datagramsIn++;
    this.#count(size, now);
    if (this.probeStart < 0) this.probeStart = now;
  }

  /** Counts a backend reply of `size` bytes at `now`. */
  onBackend(size: number, now: number): void {
    this.bytesOut += size;
    this.datagramsOut++;
    this.#count(size, now);
    if (this.probeStart >= 0) {
      const sample = now - this.probeStart;
      this.probeStart = -1;
      if (this.srtt !== this.srtt) {
        this.firstRtt = sample;
        this.srtt = sample;
        this.rttvar = sample / 2;
      } else {
        this.rttvar += (Math.abs(sample - this.srtt) - this.rttvar) / 4;
        this.srtt += (sample - this.srtt) / 8;
      }
    }
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

  /** Loss in per-mille of handled datagrams. */
  get lossPermille(): number {
    return this.handled === 0 ? 0 : Math.round((this.dropped * 1000) / this.handled);
  }

  /** The priority score (lower is better) as of `now`. */
  priority(now: number): number {
    this.#fold(now);
    if (this.#dirty) {
      const srtt = this.srtt === this.srtt ? this.srtt : 0;
      const kib = this.bandwidthEwma === this.bandwidthEwma ? this.bandwidthEwma / 1024 : 0;
      this.#priority = Math.round(
        srtt + 2 * this.rttvar + this.lossPermille / 2 + Math.min(kib, 10000) / 100,
      );
      this.#dirty = false;
    }
    return this.#priority;
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
