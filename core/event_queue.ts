/**
 * The core's outbox: events queue here until the shell polls them, and the shell is woken once each time
 * the queue goes from empty to non-empty, so it can never miss an event it was not told to look for.
 *
 * @module
 */

import type { CoreEvent } from "./core_events.ts";

/** A FIFO of events with a wake-up call on its first entry. */
export class EventQueue {
  #events: CoreEvent[] = [];
  #head = 0;
  /** Called when an event lands in an empty queue (the shell schedules its drain there). */
  wake: (() => void) | null = null;

  /** True when `poll` has something: a cheap check for the forwarding path. */
  get has(): boolean {
    return this.#head < this.#events.length;
  }

  /** Queues an event; wakes the shell if the queue was empty. */
  push(event: CoreEvent): void {
    const wasEmpty = this.#head >= this.#events.length;
    this.#events.push(event);
    if (wasEmpty && this.wake !== null) this.wake();
  }

  /** The next event, or undefined when there is none. */
  poll(): CoreEvent | undefined {
    if (this.#head >= this.#events.length) return undefined;
    const e = this.#events[this.#head++];
    if (this.#head === this.#events.length) {
      this.#events.length = 0;
      this.#head = 0;
    }
    return e;
  }
}
