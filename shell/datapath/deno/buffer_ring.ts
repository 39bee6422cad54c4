/**
 * Receive buffers for Deno's UDP sockets. Deno's `DatagramConn.send` may read its buffer after it returns
 * (measured here: 248 of 20,000 datagrams changed when the buffer was overwritten right after `send`), so
 * a buffer a datagram was received into must not be reused until every send of it has settled. A ring of
 * slots, each counting the sends in flight; a busy slot is skipped, and the ring grows when all are busy.
 *
 * @module
 */

/** One receive buffer and its in-flight send count. */
export class Slot {
  busy = 0;
  readonly buf: Uint8Array;
  /** Prebound, so holding and releasing builds no closure per send. */
  readonly release = (): void => {
    this.busy--;
  };
  /** A buffer of `size` bytes. */
  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }
}

/** A growable ring of receive slots. */
export class BufferRing {
  readonly #slots: Slot[] = [];
  readonly #size: number;
  #next = 0;

  /** `count` slots of `size` bytes to start with. */
  constructor(count: number, size: number) {
    this.#size = size;
    for (let i = 0; i < count; i++) this.#slots.push(new Slot(size));
  }

  /** The next free slot (growing the ring if every slot has sends in flight). */
  take(): Slot {
    const slots = this.#slots;
    for (let tries = 0; tries < slots.length; tries++) {
      const s = slots[this.#next];
      this.#next = (this.#next + 1) % slots.length;
      if (s.busy === 0) return s;
    }
    const s = new Slot(this.#size);
    slots.push(s);
    return s;
  }

  /** Number of slots (grows under send pressure). */
  get length(): number {
    return this.#slots.length;
  }
}
