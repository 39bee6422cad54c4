/**
 * Spare upstream sockets (native path): a flow that had every reply it expected (`responses`) and then
 * stayed quiet for its whole late-reply window leaves its connected socket here, and the next flow to the
 * same backend takes it instead of paying socket + connect + epoll_ctl now and close later (measured in
 * scripts/bench.sh --only churn; see README "Ferry in front of DNS").
 *
 * The risk: a reply to the old flow that comes later than the quiet window (a backend that answered one
 * query twice, the second time very late) reaches the new flow's client. The guards: only flows closed by
 * `responses` qualify (every expected reply arrived); the socket must have been quiet for the full window
 * (one evicted early under load is closed, not kept); a socket that receives anything while spare is closed
 * instead of reused (what it received is counted `late`); and at most SPARE_MAX sockets wait.
 *
 * @module
 */

/** At most this many spare sockets per native driver. */
export const SPARE_MAX = 256;

/** A socket-holding item (a closed flow's resources) that can be handed on. */
export interface Spare {
  readonly fd: number;
  /** Something arrived on it after its flow closed: never reuse it. */
  readonly sawLate: boolean;
}

/** Spare connected sockets by backend key. */
export class SpareSockets<T extends Spare> {
  readonly #byKey = new Map<string, T[]>();
  #count = 0;
  /** Sockets taken for a new flow instead of opening one. */
  reused = 0;

  /** How many wait now. */
  get size(): number {
    return this.#count;
  }

  /** Keeps `item` for `key` if there is room; false means the caller closes it. */
  offer(key: string, item: T): boolean {
    if (this.#count >= SPARE_MAX || item.sawLate) return false;
    let list = this.#byKey.get(key);
    if (list === undefined) {
      list = [];
      this.#byKey.set(key, list);
    }
    list.push(item);
    this.#count++;
    return true;
  }

  /**
   * A spare socket for `key`, or undefined. Items that received something while waiting are handed to
   * `discard` (to close) and skipped.
   */
  take(key: string, discard: (item: T) => void): T | undefined {
    const list = this.#byKey.get(key);
    if (list === undefined) return undefined;
    for (let item = list.pop(); item !== undefined; item = list.pop()) {
      this.#count--;
      if (!item.sawLate) {
        this.reused++;
        return item;
      }
      discard(item);
    }
    return undefined;
  }

  /** Every spare socket, emptying the pool (shutdown). */
  drain(): T[] {
    const all = [...this.#byKey.values()].flat();
    this.#byKey.clear();
    this.#count = 0;
    return all;
  }
}
