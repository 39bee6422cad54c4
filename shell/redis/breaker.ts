/**
 * A circuit breaker for Redis commands, as a pure state machine (time is a parameter): after
 * `threshold` consecutive timeouts it opens, and while open every command fails at once (callers fall
 * back) instead of each costing its caller the whole timeout. When the backoff has passed, the owner sends
 * one probe (`probeDue`); its success closes the breaker, its failure opens it again for twice as long, up
 * to `maxBackoffMs`. A hung Redis (SIGSTOP, a stalled host: the TCP connection stays up) is what this is
 * for; a Redis that is plainly away already fails fast.
 *
 * @module
 */

/** closed: commands go to Redis; open: they fail at once; half_open: one probe is out. */
export type BreakerState = "closed" | "open" | "half_open";

/** The breaker's knobs. */
export interface BreakerOptions {
  /** Consecutive timeouts that open it. */
  readonly threshold: number;
  /** First open period, ms; doubled after each failed probe. */
  readonly backoffMs: number;
  /** Longest open period, ms. */
  readonly maxBackoffMs: number;
}

/** Defaults: 3 timeouts in a row open it for 1 s, doubling to 30 s while probes fail. */
export const DEFAULT_BREAKER: BreakerOptions = { threshold: 3, backoffMs: 1000, maxBackoffMs: 30_000 };

/** The breaker. */
export class Breaker {
  /** The current state. */
  state: BreakerState = "closed";
  /** Times it opened from closed (not counting re-opens after a failed probe). */
  trips = 0;
  /** Commands refused at once while open. */
  shortCircuited = 0;
  #timeouts = 0;
  #backoff: number;
  #until = 0;
  readonly #o: BreakerOptions;

  /** A closed breaker with `options`. */
  constructor(options: BreakerOptions = DEFAULT_BREAKER) {
    this.#o = options;
    this.#backoff = options.backoffMs;
  }

  /** Whether a command may go to Redis now; counts a refusal when not. */
  allow(): boolean {
    if (this.state === "closed") return true;
    this.shortCircuited++;
    return false;
  }

  /** A command answered (or failed for a reason other than a timeout: Redis is responsive). */
  success(): void {
    this.#timeouts = 0;
    if (this.state !== "closed") {
      this.state = "closed";
      this.#backoff = this.#o.backoffMs;
    }
  }

  /** A command timed out at `now`. */
  timeout(now: number): void {
    if (this.state !== "closed") return;
    if (++this.#timeouts < this.#o.threshold) return;
    this.trips++;
    this.#open(now);
  }

  /** True when open and the backoff has passed: the owner should send a probe now (state half_open). */
  probeDue(now: number): boolean {
    if (this.state !== "open" || now < this.#until) return false;
    this.state = "half_open";
    return true;
  }

  /** The probe failed at `now`: open again, for twice as long. */
  probeFailed(now: number): void {
    if (this.state !== "half_open") return;
    this.#backoff = Math.min(this.#o.maxBackoffMs, this.#backoff * 2);
    this.#open(now);
  }

  /** When the open period ends (ms, the clock of `now`); meaningful while open. */
  get openUntil(): number {
    return this.#until;
  }

  #open(now: number): void {
    this.state = "open";
    this.#timeouts = 0;
    this.#until = now + this.#backoff;
  }
}
