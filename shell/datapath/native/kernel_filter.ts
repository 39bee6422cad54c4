/**
 * Kernel-side drops for native listeners: compiles each listener's deny/allow blocks, the core's bans and
 * (when it holds for every datagram) its first-datagram filter into a classic BPF program
 * (core/bpf_filter.ts) and attaches it with SO_ATTACH_FILTER, so refused floods never reach user space.
 *
 * Refreshed when the listener's config object or the ban table's generation changes: checked on every
 * readiness round and by a timer (a filter that refuses everything brings no readiness to notice a lifted
 * ban by). Attaching replaces the old program atomically. User space checks everything again, so a filter
 * that could not be attached (or was switched off with `kernel_filter = false`) only costs speed.
 *
 * The kernel counts a datagram its filter drops in the socket's drop counter (sk_drops), which is what
 * SO_RXQ_OVFL reports: those drops show in `ferry_listener_rxq_overflows_total`.
 *
 * @module
 */

import { parseCidr } from "../../../core/address.ts";
import { compileKernelFilter, encodeBpf } from "../../../core/bpf_filter.ts";
import type { Listener } from "../../../core/listener.ts";
import type { RelayCore } from "../../../core/relay_core.ts";
import type { Libc } from "./ffi.ts";
import { SOL_SOCKET } from "./layout.ts";

/** setsockopt names (asm-generic/socket.h, the same on x86_64 and aarch64). */
export const SO_ATTACH_FILTER = 26;
export const SO_DETACH_FILTER = 27;
/** How often bound listeners are checked for ban changes when no traffic wakes the loop. */
export const REFRESH_MS = 200;

/** What the kernel filter of a listener is doing. */
export interface KernelFilterStatus {
  /** Instructions attached; 0 = none (nothing to compile, switched off, or failed). */
  readonly instructions: number;
  /** Deny blocks and bans left to user space (over BPF_MAXINSNS). */
  readonly omitted: number;
  /** Why no program is attached although there were rules, or null. */
  readonly error: string | null;
}

interface Attached {
  readonly fd: number;
  config: unknown;
  generation: number;
  status: KernelFilterStatus;
}

/** Attaches `bytes` (struct sock_filter[]) to `fd`; returns 0 or the errno. */
export function attachBpf(libc: Libc, fd: number, bytes: Uint8Array): number {
  const prog = libc.alloc(Math.max(8, bytes.length));
  const fprog = libc.alloc(16);
  try {
    prog.u8.set(bytes);
    // struct sock_fprog { unsigned short len; struct sock_filter *filter; }: the pointer at offset 8.
    fprog.dv.setUint16(0, bytes.length / 8, true);
    fprog.dv.setBigUint64(8, BigInt(prog.addr), true);
    // The kernel copies the program: the memory can go at once.
    return libc.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, libc.ref(fprog, 0, 16), 16) === 0
      ? 0
      : libc.errno();
  } finally {
    libc.free(prog);
    libc.free(fprog);
  }
}

/** Removes the filter of `fd` (ENOENT when there was none). Returns 0 or the errno. */
export function detachBpf(libc: Libc, fd: number): number {
  const opt = libc.alloc(8);
  try {
    return libc.setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, libc.ref(opt, 0, 4), 4) === 0 ? 0 : libc.errno();
  } finally {
    libc.free(opt);
  }
}

/** The kernel filters of one native driver's listeners. */
export class KernelFilters {
  readonly #libc: Libc;
  readonly #core: RelayCore;
  readonly #clock: () => number;
  readonly #byListener = new Map<Listener, Attached>();
  #timer: ReturnType<typeof setInterval> | null = null;

  /** Filters for listeners of `core`, attached through `libc`. */
  constructor(libc: Libc, core: RelayCore, clock: () => number) {
    this.#libc = libc;
    this.#core = core;
    this.#clock = clock;
  }

  /** Takes a freshly bound listener socket and attaches its filter. */
  add(listener: Listener, fd: number): void {
    this.#byListener.set(listener, {
      fd,
      config: null,
      generation: -1,
      status: { instructions: 0, omitted: 0, error: null },
    });
    this.refresh(listener);
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.refreshAll(), REFRESH_MS);
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  /** Forgets a listener whose socket closed. */
  remove(listener: Listener): void {
    this.#byListener.delete(listener);
    if (this.#byListener.size === 0) this.stop();
  }

  /** Stops the refresh timer. */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** The status of a listener's filter, if bound. */
  status(listener: Listener): KernelFilterStatus | undefined {
    return this.#byListener.get(listener)?.status;
  }

  /** Refreshes every listener whose rules changed: two comparisons each when nothing did. */
  refreshAll(): void {
    // A lapsed ban must leave the kernel too, though no datagram of its source reaches user space to notice.
    this.#core.protection.bans.expire(this.#clock());
    for (const l of this.#byListener.keys()) this.refresh(l);
  }

  /** Recompiles and reattaches a listener's filter if its config or the bans changed. */
  refresh(listener: Listener): void {
    const a = this.#byListener.get(listener);
    const bans = this.#core.protection.bans;
    if (a === undefined || (a.config === listener.config && a.generation === bans.generation)) return;
    a.config = listener.config;
    const cfg = listener.config;
    const p = cfg.protection;
    const wanted = p?.kernelFilter !== false;
    const live = bans.list(this.#clock()).flatMap((b) => {
      const c = parseCidr(b.cidr);
      return typeof c === "string" ? [] : [c];
    });
    // list() may expire bans (a new generation): read it after.
    a.generation = bans.generation;
    const compiled = wanted
      ? compileKernelFilter({
        deny: cfg.sources.deny,
        allow: cfg.sources.allow,
        bans: live,
        payload: p?.filter?.allDatagrams === true ? p.filter : null,
      })
      : null;
    if (compiled === null) {
      if (a.status.instructions > 0) detachBpf(this.#libc, a.fd);
      a.status = { instructions: 0, omitted: 0, error: null };
      return;
    }
    const e = attachBpf(this.#libc, a.fd, encodeBpf(compiled.program));
    // A failed attach must not leave an older program (with a lifted ban, say) in place.
    if (e !== 0 && a.status.instructions > 0) detachBpf(this.#libc, a.fd);
    a.status = e === 0
      ? { instructions: compiled.program.length, omitted: compiled.omitted, error: null }
      : { instructions: 0, omitted: 0, error: `setsockopt(SO_ATTACH_FILTER) failed: errno ${e}` };
  }
}
