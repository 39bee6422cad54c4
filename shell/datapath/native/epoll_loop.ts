/**
 * The native data path's event loop: one epoll set holding every socket of a relay (listeners and flow
 * upstreams), drained on the main thread in bounded slices so the runtime's own event loop (the admin API,
 * timers, TCP) keeps running, and an off-thread wait when idle so an idle relay uses no CPU.
 *
 * - Busy: epoll_wait(timeout 0) → dispatch, repeated for up to `SLICE_MS`, then one setImmediate to let
 *   the runtime's loop run, and again.
 * - Nothing ready: one more setImmediate round (a burst often lands meanwhile, and it is much cheaper than
 *   a thread hop), then the Waiter blocks in epoll_wait(-1) off the main thread (Deno: a nonblocking FFI
 *   call on its blocking pool; Bun: a worker thread) and resolves when something is ready.
 * - stop() writes an eventfd that sits in the set, which wakes a blocked waiter; the loop then closes the
 *   epoll fd and frees its memory, once nothing off-thread can still touch them.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { Errno, NativeError } from "./errno.ts";
import type { Libc, Memory, Ptr, Waiter } from "./ffi.ts";
import {
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EPOLL_CLOEXEC,
  EPOLL_CTL_ADD,
  EPOLLERR,
  epollEventLayout,
  EPOLLIN,
} from "./layout.ts";

/** Longest stretch of data-path work before the runtime's event loop gets a turn, in ms. */
export const SLICE_MS = 2;
/** Most epoll events taken per epoll_wait. */
const MAX_EVENTS = 256;
/** The eventfd's tag. Upstream sockets use their fd as tag, listeners LISTENER_TAG + index. */
export const WAKE_TAG = 0x3fff_ffff;
/** First listener tag (fds stay far below it). */
export const LISTENER_TAG = 0x4000_0000;

/** What the loop calls. */
export interface LoopHandler {
  /** One round's events: `tag(i)` for i < n. */
  dispatch(n: number): void;
  /** A dispatch threw: a bug, reported rather than stopping the data path. */
  failed(error: unknown): void;
}

const immediate = () => new Promise<void>((r) => setImmediate(r));

/** One epoll set and the loop draining it. */
export class EpollLoop {
  readonly #libc: Libc;
  readonly #ep: number;
  readonly #wake: number;
  readonly #events: Memory;
  readonly #eventsRef: Ptr;
  readonly #ctl: Memory;
  readonly #ctlRef: Ptr;
  readonly #evSize: number;
  readonly #evData: number;
  readonly #clock: () => number;
  #handler: LoopHandler | null = null;
  #waiter: Waiter | null = null;
  /** Between start() and the end of the loop: `later` jobs wait for the next round. */
  #running = false;
  #done: Promise<void> = Promise.resolve();
  #stopping = false;
  /** Work to run between rounds, outside any dispatch (freeing memory a dispatch might still read). */
  #later: (() => void)[] = [];
  /** Rounds that dispatched something, and times the loop blocked off-thread (for tests and stats). */
  rounds = 0;
  sleeps = 0;

  /** An epoll set and its wake-up eventfd. Throws a NativeError when either cannot be made. */
  constructor(libc: Libc, clock: () => number) {
    this.#libc = libc;
    this.#clock = clock;
    const ev = epollEventLayout(libc.arch);
    this.#evSize = ev.size;
    this.#evData = ev.data;
    this.#ep = libc.epoll_create1(EPOLL_CLOEXEC);
    if (this.#ep < 0) throw new NativeError("epoll_create1", libc.errno());
    this.#wake = libc.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (this.#wake < 0) {
      const e = libc.errno();
      libc.close(this.#ep);
      throw new NativeError("eventfd", e);
    }
    this.#events = libc.alloc(MAX_EVENTS * ev.size);
    this.#eventsRef = libc.ref(this.#events);
    this.#ctl = libc.alloc(64);
    this.#ctlRef = libc.ref(this.#ctl, 0, 16);
    const rc = this.add(this.#wake, WAKE_TAG);
    if (rc !== 0) throw new NativeError("epoll_ctl", rc);
  }

  /** The tag of event `i` of the last round. */
  tag(i: number): number {
    return this.#events.dv.getUint32(i * this.#evSize + this.#evData, true);
  }

  /** Watches `fd` for input under `tag`. Returns 0, or the errno. */
  add(fd: number, tag: number): number {
    const dv = this.#ctl.dv;
    dv.setUint32(0, EPOLLIN | EPOLLERR, true);
    dv.setUint32(this.#evData, tag, true);
    dv.setUint32(this.#evData + 4, 0, true);
    return this.#libc.epoll_ctl(this.#ep, EPOLL_CTL_ADD, fd, this.#ctlRef) === 0 ? 0 : this.#libc.errno();
  }

  /** Runs `fn` between rounds, when no dispatch is on the stack (or now, when the loop is not running). */
  later(fn: () => void): void {
    if (this.#running) this.#later.push(fn);
    else fn();
  }

  /** Starts draining (once). */
  start(handler: LoopHandler): void {
    if (this.#running || this.#stopping) return;
    this.#running = true;
    this.#handler = handler;
    this.#waiter = this.#libc.waiter(this.#ep);
    this.#done = this.#run().finally(() => this.#cleanup());
  }

  /** Resolves once the loop ended and its resources are freed (at once if it never started). */
  get done(): Promise<void> {
    return this.#done;
  }

  /** Stops the loop; its fds and memory are released once it has left any off-thread wait. */
  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    if (!this.#running) {
      this.#done = this.#cleanup();
      return;
    }
    const one = this.#ctl.dv;
    one.setUint32(8, 1, true);
    one.setUint32(12, 0, true);
    this.#libc.write(this.#wake, this.#libc.ref(this.#ctl, 8, 8), 8);
  }

  async #run(): Promise<void> {
    const libc = this.#libc;
    const handler = this.#handler as LoopHandler;
    const waiter = this.#waiter as Waiter;
    let sliceStart = this.#clock();
    let idleChecked = false;
    while (!this.#stopping) {
      this.#runLater();
      const n = libc.epoll_wait(this.#ep, this.#eventsRef, MAX_EVENTS, 0);
      if (n > 0) {
        idleChecked = false;
        this.rounds++;
        try {
          handler.dispatch(n);
        } catch (e) {
          handler.failed(e);
        }
        if (this.#clock() - sliceStart >= SLICE_MS) {
          await immediate();
          sliceStart = this.#clock();
        }
        continue;
      }
      if (n < 0 && libc.errno() !== Errno.EINTR) {
        // Only a broken epoll fd fails here (EBADF, EINVAL): report it instead of spinning on it.
        handler.failed(new NativeError("epoll_wait", libc.errno()));
        break;
      }
      if (!idleChecked) {
        idleChecked = true;
        await immediate();
        continue;
      }
      idleChecked = false;
      this.sleeps++;
      await waiter.wait();
      sliceStart = this.#clock();
    }
  }

  #runLater(): void {
    if (this.#later.length === 0) return;
    const jobs = this.#later;
    this.#later = [];
    for (const job of jobs) job();
  }

  async #cleanup(): Promise<void> {
    const waiter = this.#waiter;
    this.#waiter = null;
    this.#running = false;
    const jobs = this.#later;
    this.#later = [];
    for (const job of jobs) job();
    this.#libc.close(this.#wake);
    this.#libc.close(this.#ep);
    this.#libc.free(this.#events);
    this.#libc.free(this.#ctl);
    await waiter?.close();
  }
}
