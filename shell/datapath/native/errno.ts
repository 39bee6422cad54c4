/**
 * The Linux errno values the native data path acts on (asm-generic numbering: x86_64 and aarch64 agree),
 * their names for counters and messages, and an error type for failed setup calls.
 *
 * @module
 */

/** errno values with a meaning for the data path. */
export const Errno = {
  EPERM: 1,
  EINTR: 4,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  EMSGSIZE: 90,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETUNREACH: 101,
  ENOBUFS: 105,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
} as const;

const NAMES = new Map<number, string>(Object.entries(Errno).map(([k, v]) => [v, k]));

/** "ECONNREFUSED", or "errno 71" for a value without a name here. */
export function errnoName(errno: number): string {
  return NAMES.get(errno) ?? `errno ${errno}`;
}

/** A libc call that failed during setup (socket, bind, setsockopt, ...). */
export class NativeError extends Error {
  /** The failing call, e.g. "bind". */
  readonly call: string;
  readonly errno: number;
  /** The errno name, e.g. "EADDRINUSE", as runtimes report socket errors in `code`. */
  readonly code: string;

  /** `call` failed with `errno`; `what` says on what (an address, say). */
  constructor(call: string, errno: number, what = "") {
    const code = errnoName(errno);
    super(`${call}${what ? ` ${what}` : ""}: ${code}`);
    this.name = "NativeError";
    this.call = call;
    this.errno = errno;
    this.code = code;
  }
}

/**
 * Per-errno counts of failed syscalls on the data path, by call: the native path's own metric next to
 * the core's drop counters (which count the datagrams those failures cost).
 */
export class ErrnoCounts {
  readonly #counts = new Map<string, number>();

  /** Counts one failure of `call` with `errno`. */
  add(call: string, errno: number): void {
    const key = `${call}:${errnoName(errno)}`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
  }

  /** Counts one failure that has no errno (e.g. "loop": an exception inside the data path's loop). */
  bump(key: string): void {
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
  }

  /** The count of `call` failing with `errno` (or with anything, when `errno` is omitted). */
  get(call: string, errno?: number): number {
    if (errno !== undefined) return this.#counts.get(`${call}:${errnoName(errno)}`) ?? 0;
    let n = 0;
    for (const [k, v] of this.#counts) if (k.startsWith(`${call}:`)) n += v;
    return n;
  }

  /** Every count, as { "send:ECONNREFUSED": 3, ... }. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.#counts);
  }
}
