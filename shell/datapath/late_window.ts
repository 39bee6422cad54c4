/**
 * The late-reply window: a closed flow's upstream socket stays open a short while, so a reply that still
 * arrives is read and counted (the `late` drop) instead of vanishing in a closed socket (where the kernel
 * only answers the backend with ICMP port unreachable, and nobody on the relay ever knows).
 *
 * When it happens: a flow closed by its idle deadline, a drain, an abort or an operator while a reply was
 * on its way; and replies past `responses` (a backend answering one datagram more often than configured).
 * Replies later than the window, or beyond its capacity under heavy churn (the oldest socket is released
 * early), still reach a closed socket: the window bounds the file descriptors it holds.
 *
 * FIFO by close time in a preallocated ring: adding and releasing allocate nothing; one timer (re-armed
 * only when it fires) releases what is due, so a churn of closes costs no timer per flow.
 *
 * @module
 */

/** How long a closed flow's upstream socket keeps listening for late replies. */
export const LATE_WINDOW_MS = 100;
/**
 * At most this many such sockets per data path; past it the oldest is released early. 4096 holds a full
 * window up to ~40k flows/s, within the file descriptor budget (max_flows' automatic 10k + this).
 */
export const LATE_WINDOW_MAX = 4096;

/** Closed flows' upstream sockets waiting out the late-reply window. */
export class LateWindow<T> {
  readonly #items: (T | undefined)[];
  readonly #at: Float64Array;
  readonly #release: (item: T) => void;
  readonly #clock: () => number;
  readonly #ms: number;
  #head = 0;
  #size = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;

  /** A window of `ms` holding at most `capacity` items; `release` closes one for good. */
  constructor(
    release: (item: T) => void,
    clock: () => number,
    ms = LATE_WINDOW_MS,
    capacity = LATE_WINDOW_MAX,
  ) {
    this.#release = release;
    this.#clock = clock;
    this.#ms = ms;
    this.#items = new Array(Math.max(0, capacity)).fill(undefined);
    this.#at = new Float64Array(Math.max(0, capacity));
  }

  /** Items waiting now. */
  get size(): number {
    return this.#size;
  }

  /** Holds `item` (closed at `now`) until the window ends; with no room, releases the oldest first. */
  add(item: T, now: number): void {
    const cap = this.#items.length;
    if (cap === 0 || this.#ms <= 0) return this.#release(item);
    if (this.#size === cap) this.#pop();
    const i = (this.#head + this.#size) % cap;
    this.#items[i] = item;
    this.#at[i] = now + this.#ms;
    this.#size++;
    if (this.#timer === null) this.#arm(now);
  }

  /** Releases every item whose window ended by `now`. */
  sweep(now: number): void {
    while (this.#size > 0 && this.#at[this.#head] <= now) this.#pop();
  }

  /** Releases everything now (shutdown). */
  releaseAll(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    while (this.#size > 0) this.#pop();
  }

  #pop(): void {
    const item = this.#items[this.#head] as T;
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#items.length;
    this.#size--;
    this.#release(item);
  }

  #arm(now: number): void {
    // A quarter window of slack: one firing releases a batch, not one socket.
    const wait = Math.max(0, this.#at[this.#head] - now) + this.#ms / 4;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const t = this.#clock();
      this.sweep(t);
      if (this.#size > 0) this.#arm(t);
    }, Math.ceil(wait));
  }
}
