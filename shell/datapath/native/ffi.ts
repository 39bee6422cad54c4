/**
 * The one FFI adapter of the native data path: the libc calls it needs, typed once, over bun:ffi under Bun
 * and Deno.dlopen under Deno.
 *
 * Memory rule: every byte the kernel reads or writes lives in memory that libc allocated (`alloc`, calloc
 * underneath) and that this module frees only when told to (`free`). JavaScript sees it through external
 * ArrayBuffers, which no garbage collector moves or frees, so no pointer ever refers to the JS heap.
 *
 * Call cost shaped the signatures: Deno only takes its fast path (about 25 ns against 200+) when no
 * parameter is 64-bit, so the hot calls take a "buffer" (a view starting at the address; made once and
 * reused, see `ref`) and 32-bit integers, and syscalls returning ssize_t are declared as returning i32:
 * the values fit (datagrams are below 64 KiB), and on x86_64 and aarch64 the low half of the return
 * register is the value. Under Bun a pointer is a plain number, so `ref` is just an addition.
 *
 * bun:ffi is imported dynamically with a computed name, so Deno (and `deno check`) never resolves it and a
 * `bun build --compile` binary resolves the builtin at run time.
 *
 * @module
 */

import type { NativeArch } from "./layout.ts";

/** An address handed to a libc call: a number under Bun, a view starting at the address under Deno. */
export type Ptr = number | Uint8Array;

/** A block of libc-allocated memory and its views. */
export interface Memory {
  /** Its address, to write into structs (iov_base, msg_name, ...). */
  readonly addr: number;
  readonly size: number;
  readonly u8: Uint8Array;
  readonly dv: DataView;
}

/** Blocks off the main thread until an epoll fd is readable (the idle path: no spinning). */
export interface Waiter {
  /** Resolves once `epfd` has something ready (it is not consumed: epoll is level-triggered). */
  wait(): Promise<void>;
  /**
   * Ends the waiting thread; call after the last wait() returned. Resolves once the thread is gone (its
   * own file descriptors included) and its memory freed.
   */
  close(): Promise<void>;
}

/** The libc functions of the native data path. Negative results mean failure: read `errno()` at once. */
export interface Libc {
  /** "bun" or "deno": which FFI is underneath. */
  readonly runtime: "bun" | "deno";
  readonly arch: NativeArch;
  /** Zeroed memory from calloc. Throws when there is none. */
  alloc(size: number): Memory;
  /** Frees memory from `alloc`; its views must not be used afterwards. */
  free(mem: Memory): void;
  /** A reusable pointer to `mem` + `offset` (for Deno, a view of `len` bytes; make it once, not per call). */
  ref(mem: Memory, offset?: number, len?: number): Ptr;
  /** This thread's errno, read straight from its thread-local slot. */
  errno(): number;
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Ptr, len: number): number;
  connect(fd: number, addr: Ptr, len: number): number;
  /** `lenp` points to a socklen_t holding the room, then the length. */
  getsockname(fd: number, addr: Ptr, lenp: Ptr): number;
  setsockopt(fd: number, level: number, name: number, value: Ptr, len: number): number;
  getsockopt(fd: number, level: number, name: number, value: Ptr, lenp: Ptr): number;
  close(fd: number): number;
  epoll_create1(flags: number): number;
  epoll_ctl(epfd: number, op: number, fd: number, event: Ptr): number;
  /** Never blocks the caller beyond `timeout` ms; the data path only ever passes 0 here. */
  epoll_wait(epfd: number, events: Ptr, max: number, timeout: number): number;
  eventfd(initval: number, flags: number): number;
  /** write(2) of `len` bytes (the eventfd wake-up). */
  write(fd: number, buf: Ptr, len: number): number;
  /** read(2) of `len` bytes (draining the eventfd). */
  read(fd: number, buf: Ptr, len: number): number;
  /** recvmmsg(2) with a NULL timeout. */
  recvmmsg(fd: number, vec: Ptr, vlen: number, flags: number): number;
  sendmmsg(fd: number, vec: Ptr, vlen: number, flags: number): number;
  sendmsg(fd: number, msg: Ptr, flags: number): number;
  /** A waiter blocking on `epfd` off the main thread. */
  waiter(epfd: number): Waiter;
}

/** The shared object loaded. glibc's soname; musl would need another (the selector then reports why). */
export const LIBC_NAME = "libc.so.6";

let loaded: Promise<Libc> | null = null;

/** Loads libc once per thread (each worker thread has its own module instance and errno). */
export function loadLibc(): Promise<Libc> {
  loaded ??= ("Bun" in globalThis ? loadBun() : loadDeno()).catch((e) => {
    loaded = null; // a later attempt (say, after a permission change) may succeed
    throw e;
  });
  return loaded;
}

/** The CPU the process runs on, or null when it is not one the native path supports. */
export function nativeArch(): NativeArch | null {
  const a = "Bun" in globalThis
    ? (globalThis as unknown as { process: { arch: string } }).process.arch
    : Deno.build.arch;
  return a === "x64" || a === "x86_64" ? "x86_64" : a === "arm64" || a === "aarch64" ? "aarch64" : null;
}

function archOrThrow(): NativeArch {
  const arch = nativeArch();
  if (arch === null) throw new Error("the native data path supports only x86_64 and aarch64");
  return arch;
}

// ---- Bun -----------------------------------------------------------------------------------------------------

/** The slice of bun:ffi used here (typed locally: Deno has no types for it). */
interface BunFfi {
  dlopen(
    path: string,
    symbols: Record<string, { args: string[]; returns: string }>,
  ): { symbols: Record<string, (...args: unknown[]) => unknown>; close(): void };
  toArrayBuffer(ptr: number, byteOffset: number, byteLength: number): ArrayBuffer;
}

const BUN_SYMBOLS = {
  calloc: { args: ["u64", "u64"], returns: "ptr" },
  free: { args: ["ptr"], returns: "void" },
  __errno_location: { args: [], returns: "ptr" },
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  bind: { args: ["i32", "ptr", "u32"], returns: "i32" },
  connect: { args: ["i32", "ptr", "u32"], returns: "i32" },
  getsockname: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
  getsockopt: { args: ["i32", "i32", "i32", "ptr", "ptr"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  epoll_create1: { args: ["i32"], returns: "i32" },
  epoll_ctl: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
  epoll_wait: { args: ["i32", "ptr", "i32", "i32"], returns: "i32" },
  eventfd: { args: ["u32", "i32"], returns: "i32" },
  write: { args: ["i32", "ptr", "u64"], returns: "i32" },
  read: { args: ["i32", "ptr", "u64"], returns: "i32" },
  recvmmsg: { args: ["i32", "ptr", "u32", "i32", "ptr"], returns: "i32" },
  sendmmsg: { args: ["i32", "ptr", "u32", "i32"], returns: "i32" },
  sendmsg: { args: ["i32", "ptr", "i32"], returns: "i32" },
};

async function loadBun(): Promise<Libc> {
  const arch = archOrThrow();
  const spec = "bun:ffi"; // computed, so Deno never resolves it
  const ffi = (await import(spec)) as BunFfi;
  const S = ffi.dlopen(LIBC_NAME, BUN_SYMBOLS).symbols as unknown as BunSymbols;
  const errnoSlot = new Int32Array(ffi.toArrayBuffer(S.__errno_location(), 0, 4));
  const alloc = (size: number): Memory => {
    const addr = S.calloc(1, size);
    if (!addr) throw new Error(`calloc(${size}) failed`);
    const ab = ffi.toArrayBuffer(addr, 0, size);
    return { addr, size, u8: new Uint8Array(ab), dv: new DataView(ab) };
  };
  return {
    runtime: "bun",
    arch,
    alloc,
    free: (mem) => S.free(mem.addr),
    ref: (mem, offset = 0) => mem.addr + offset,
    errno: () => errnoSlot[0],
    socket: S.socket,
    bind: S.bind,
    connect: S.connect,
    getsockname: S.getsockname,
    setsockopt: S.setsockopt,
    getsockopt: S.getsockopt,
    close: S.close,
    epoll_create1: S.epoll_create1,
    epoll_ctl: S.epoll_ctl,
    epoll_wait: S.epoll_wait,
    eventfd: S.eventfd,
    write: S.write,
    read: S.read,
    recvmmsg: (fd, vec, vlen, flags) => S.recvmmsg(fd, vec as number, vlen, flags, null),
    sendmmsg: S.sendmmsg,
    sendmsg: S.sendmsg,
    waiter: (epfd) => bunWaiter(epfd),
  };
}

/** The Bun symbols as called here (pointers are numbers). */
interface BunSymbols {
  calloc(n: number, size: number): number;
  free(p: number): void;
  __errno_location(): number;
  socket(d: number, t: number, p: number): number;
  bind(fd: number, a: Ptr, l: number): number;
  connect(fd: number, a: Ptr, l: number): number;
  getsockname(fd: number, a: Ptr, l: Ptr): number;
  setsockopt(fd: number, level: number, name: number, v: Ptr, l: number): number;
  getsockopt(fd: number, level: number, name: number, v: Ptr, l: Ptr): number;
  close(fd: number): number;
  epoll_create1(flags: number): number;
  epoll_ctl(ep: number, op: number, fd: number, ev: Ptr): number;
  epoll_wait(ep: number, ev: Ptr, max: number, timeout: number): number;
  eventfd(init: number, flags: number): number;
  write(fd: number, b: Ptr, l: number): number;
  read(fd: number, b: Ptr, l: number): number;
  recvmmsg(fd: number, v: number, n: number, flags: number, timeout: null): number;
  sendmmsg(fd: number, v: Ptr, n: number, flags: number): number;
  sendmsg(fd: number, m: Ptr, flags: number): number;
}

/**
 * Bun has no off-thread FFI calls, so a small worker thread blocks in epoll_wait for the main thread: it
 * waits (Atomics.wait) until armed, blocks in epoll_wait(epfd, -1), then posts a message and disarms. The
 * main thread re-arms only once it has drained the epoll set, so the worker never spins. The worker is
 * built from a Blob URL so a `bun build --compile` binary needs no second entrypoint.
 */
const BUN_WAITER_SOURCE = `
const { dlopen } = await import("bun:ffi");
const { symbols: S } = dlopen(${JSON.stringify(LIBC_NAME)}, {
  calloc: { args: ["u64", "u64"], returns: "ptr" },
  epoll_wait: { args: ["i32", "ptr", "i32", "i32"], returns: "i32" },
});
const events = S.calloc(1, 64); // never freed: the thread ends with the relay, and 64 bytes stay put
self.onmessage = (m) => {
  const { epfd, flag } = m.data;
  for (;;) {
    Atomics.wait(flag, 0, 0); // 0 = disarmed
    if (Atomics.load(flag, 0) === 2) break; // 2 = exit
    S.epoll_wait(epfd, events, 4, -1);
    Atomics.compareExchange(flag, 0, 1, 0); // disarm, unless told to exit meanwhile
    postMessage(0);
  }
  postMessage(1);
};
postMessage(2); // set up: messages posted before onmessage was set would have been lost
`;

function bunWaiter(epfd: number): Waiter {
  const url = URL.createObjectURL(new Blob([BUN_WAITER_SOURCE], { type: "application/javascript" }));
  const worker = new Worker(url);
  const flag = new Int32Array(new SharedArrayBuffer(4));
  let resolve: (() => void) | null = null;
  const gone = new Promise<void>((res) => worker.addEventListener("close", () => res()));
  worker.onmessage = (m: MessageEvent) => {
    if (m.data === 2) {
      URL.revokeObjectURL(url); // only now: the worker loads it asynchronously
      return worker.postMessage({ epfd, flag });
    }
    if (m.data === 1) return worker.terminate();
    const r = resolve;
    resolve = null;
    r?.();
  };
  return {
    wait() {
      return new Promise<void>((res) => {
        resolve = res;
        Atomics.store(flag, 0, 1);
        Atomics.notify(flag, 0);
      });
    },
    close() {
      Atomics.store(flag, 0, 2);
      Atomics.notify(flag, 0);
      return gone;
    },
  };
}

// ---- Deno ----------------------------------------------------------------------------------------------------

const DENO_SYMBOLS = {
  calloc: { parameters: ["usize", "usize"], result: "pointer" },
  free: { parameters: ["pointer"], result: "void" },
  __errno_location: { parameters: [], result: "pointer" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  /** The idle wait: on Deno's blocking thread pool, a promise on the main thread. */
  epoll_wait_blocking: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "buffer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
} as const;

function loadDeno(): Promise<Libc> {
  const arch = archOrThrow();
  const S = Deno.dlopen(LIBC_NAME, DENO_SYMBOLS).symbols;
  const errnoPtr = S.__errno_location();
  if (errnoPtr === null) throw new Error("__errno_location returned NULL");
  const errnoSlot = new Int32Array(Deno.UnsafePointerView.getArrayBuffer(errnoPtr, 4));
  const pointers = new WeakMap<Memory, Deno.PointerObject>();
  const alloc = (size: number): Memory => {
    const p = S.calloc(1n, BigInt(size));
    if (p === null) throw new Error(`calloc(${size}) failed`);
    const ab = Deno.UnsafePointerView.getArrayBuffer(p, size);
    const mem = {
      addr: Number(Deno.UnsafePointer.value(p)),
      size,
      u8: new Uint8Array(ab),
      dv: new DataView(ab),
    };
    pointers.set(mem, p);
    return mem;
  };
  const u8 = (p: Ptr) => p as Uint8Array;
  return Promise.resolve<Libc>({
    runtime: "deno",
    arch,
    alloc,
    free(mem) {
      const p = pointers.get(mem);
      if (p === undefined) throw new Error("free: not memory from alloc, or freed twice");
      pointers.delete(mem);
      S.free(p);
    },
    ref: (mem, offset = 0, len = mem.size - offset) => new Uint8Array(mem.u8.buffer, offset, len),
    errno: () => errnoSlot[0],
    socket: S.socket,
    bind: (fd, a, l) => S.bind(fd, u8(a), l),
    connect: (fd, a, l) => S.connect(fd, u8(a), l),
    getsockname: (fd, a, l) => S.getsockname(fd, u8(a), u8(l)),
    setsockopt: (fd, level, name, v, l) => S.setsockopt(fd, level, name, u8(v), l),
    getsockopt: (fd, level, name, v, l) => S.getsockopt(fd, level, name, u8(v), u8(l)),
    close: S.close,
    epoll_create1: S.epoll_create1,
    epoll_ctl: (ep, op, fd, ev) => S.epoll_ctl(ep, op, fd, u8(ev)),
    epoll_wait: (ep, ev, max, t) => S.epoll_wait(ep, u8(ev), max, t),
    eventfd: S.eventfd,
    write: (fd, b, l) => S.write(fd, u8(b), BigInt(l)),
    read: (fd, b, l) => S.read(fd, u8(b), BigInt(l)),
    recvmmsg: (fd, v, n, flags) => S.recvmmsg(fd, u8(v), n, flags, null),
    sendmmsg: (fd, v, n, flags) => S.sendmmsg(fd, u8(v), n, flags),
    sendmsg: (fd, m, flags) => S.sendmsg(fd, u8(m), flags),
    waiter(epfd) {
      const events = alloc(64);
      const view = new Uint8Array(events.u8.buffer, 0, 64);
      let pending: Promise<unknown> = Promise.resolve();
      let closed = false;
      return {
        wait() {
          if (closed) return Promise.resolve();
          const p = S.epoll_wait_blocking(epfd, view, 4, -1).then(() => {});
          pending = p;
          return p;
        },
        close() {
          if (closed) return pending.then(() => {});
          closed = true;
          // The blocking thread may still write into `events`: free it only once its call returned.
          pending = pending.then(() => {
            S.free(pointers.get(events) ?? null);
            pointers.delete(events);
          });
          return pending.then(() => {});
        },
      };
    },
  });
}
