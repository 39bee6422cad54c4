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
 * Counting the filter's drops: Linux keeps no count of its own for a socket filter. A datagram the filter
 * refuses is added to the socket's drop counter (sk_drops: `udp_queue_rcv_one_skb` → `drop:`), the same
 * counter a full receive queue adds to and the only one SO_RXQ_OVFL and SO_MEMINFO report per socket (so
 * those drops show in `ferry_listener_rxq_overflows_total` too). What can be counted is kept apart here:
 * `drops` is how much sk_drops grew while a program was attached (SO_MEMINFO read at attach, detach and
 * when asked): the filter's drops plus any queue overflows in that time, exact when the queue did not
 * overflow. (Per network namespace, `nstat`'s UdpInErrors − UdpRcvbufErrors − UdpInCsumErrors is the
 * filter's share: not per socket, so not used here.)
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
  /**
   * Datagrams the kernel dropped at the socket while a program was attached (sk_drops growth): the
   * filter's refusals, plus receive-queue overflows in that time; null where SO_MEMINFO is missing.
   */
  readonly drops?: number | null;
}

interface Attached {
  readonly fd: number;
  config: unknown;
  generation: number;
  status: KernelFilterStatus;
  /** sk_drops when the program now attached was attached (-1: none attached, or unknown). */
  base: number;
  /** sk_drops growth under programs attached before. */
  dropped: number;
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

  readonly #drops: (fd: number) => number;

  /**
   * Filters for listeners of `core`, attached through `libc`; `drops` reads a socket's sk_drops (SO_MEMINFO,
   * -1 when unknown).
   */
  constructor(libc: Libc, core: RelayCore, clock: () => number, drops: (fd: number) => number = () => -1) {
    this.#libc = libc;
    this.#core = core;
    this.#clock = clock;
    this.#drops = drops;
  }

  /** sk_drops growth of `a` under attached programs, to now. */
  #dropped(a: Attached): number | null {
    if (a.base < 0) return a.dropped;
    const now = this.#drops(a.fd);
    return now < 0 ? null : a.dropped + Math.max(0, now - a.base);
  }

  /** Notes an attach (`on`) or a detach at `a`'s socket, for the drop count. */
  #mark(a: Attached, on: boolean): void {
    const d = this.#dropped(a);
    if (d !== null) a.dropped = d;
    a.base = on ? this.#drops(a.fd) : -1;
  }

  /** Takes a freshly bound listener socket and attaches its filter. */
  add(listener: Listener, fd: number): void {
    this.#byListener.set(listener, {
      fd,
      config: null,
      generation: -1,
      status: { instructions: 0, omitted: 0, error: null },
      base: -1,
      dropped: 0,
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
    const a = this.#byListener.get(listener);
    if (a === undefined) return undefined;
    return { ...a.status, drops: this.#dropped(a) };
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
      this.#mark(a, false);
      a.status = { instructions: 0, omitted: 0, error: null };
      return;
    }
    const e = attachBpf(this.#libc, a.fd, encodeBpf(compiled.program));
    // A failed attach must not leave an older program (with a lifted ban, say) in place.
    if (e !== 0 && a.status.instructions > 0) detachBpf(this.#libc, a.fd);
    if (e === 0 ? a.base < 0 : a.base >= 0) this.#mark(a, e === 0);
    a.status = e === 0
      ? { instructions: compiled.program.length, omitted: compiled.omitted, error: null }
      : { instructions: 0, omitted: 0, error: `setsockopt(SO_ATTACH_FILTER) failed: errno ${e}` };
  }
}
