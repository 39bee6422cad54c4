/**
 * The systemd notify protocol (sd_notify(3)): when NOTIFY_SOCKET names a unix datagram socket, Ferry tells
 * the service manager READY=1 once every listener is bound, RELOADING=1 (with MONOTONIC_USEC) and READY=1
 * around reloads, STOPPING=1 when it starts draining, and WATCHDOG=1 at half of WATCHDOG_USEC.
 *
 * Sent through libc (shell/datapath/native/ffi.ts) because neither runtime's own API covers it on both: Bun's
 * node:dgram has no unix sockets, and Deno's unixpacket datagrams need a bound path of our own and cannot
 * reach the abstract namespace ("@/org/freedesktop/..."), which systemd may use. One connected AF_UNIX
 * SOCK_DGRAM socket, one preallocated buffer; every failure is reported once and never crashes the relay.
 *
 * @module
 */

import { type Libc, loadLibc, type Memory, type Ptr } from "../datapath/native/ffi.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
/** sizeof(struct sockaddr_un): sa_family_t and 108 bytes of path. */
const SOCKADDR_UN_SIZE = 110;
const MESSAGE_ROOM = 1024;

/** What the notifier needs from the outside. */
export interface NotifyEnv {
  env(name: string): string | undefined;
  /** This process's id, to honour WATCHDOG_PID. */
  readonly pid: number;
  /** Reports a failure (once per kind). */
  warn(message: string): void;
  /** CLOCK_MONOTONIC in microseconds, for RELOADING's MONOTONIC_USEC. */
  monotonicUsec(): Promise<number>;
}

/** A sd_notify sender bound to one NOTIFY_SOCKET. */
export class SystemdNotifier {
  readonly #libc: Libc;
  readonly #fd: number;
  readonly #message: Memory;
  readonly #messagePtr: Ptr;
  readonly #env: NotifyEnv;
  #watchdog: ReturnType<typeof setInterval> | null = null;
  #failed = false;

  private constructor(libc: Libc, fd: number, message: Memory, env: NotifyEnv) {
    this.#libc = libc;
    this.#fd = fd;
    this.#message = message;
    this.#messagePtr = libc.ref(message, 0, MESSAGE_ROOM);
    this.#env = env;
  }

  /**
   * A notifier for NOTIFY_SOCKET, or null when it is unset (not run by systemd with Type=notify) or cannot
   * be reached (then why is reported through `env.warn`).
   */
  static async open(env: NotifyEnv): Promise<SystemdNotifier | null> {
    const path = env.env("NOTIFY_SOCKET") ?? "";
    if (path === "") return null;
    if (!path.startsWith("/") && !path.startsWith("@")) {
      env.warn(`NOTIFY_SOCKET=${path} is not a unix socket path; not notifying systemd`);
      return null;
    }
    const name = new TextEncoder().encode(path);
    if (name.length > SOCKADDR_UN_SIZE - 3) {
      env.warn("NOTIFY_SOCKET is longer than a unix socket path can be; not notifying systemd");
      return null;
    }
    let libc: Libc;
    try {
      libc = await loadLibc();
    } catch (e) {
      env.warn(`cannot load libc for NOTIFY_SOCKET: ${e instanceof Error ? e.message : String(e)}`);
      return null;
    }
    const addr = libc.alloc(SOCKADDR_UN_SIZE);
    try {
      addr.dv.setUint16(0, AF_UNIX, true);
      addr.u8.set(name, 2);
      // The abstract namespace: a leading NUL instead of "@", and the length counts no terminator.
      if (path.startsWith("@")) addr.u8[2] = 0;
      const len = path.startsWith("@") ? 2 + name.length : 2 + name.length + 1;
      const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        env.warn(`NOTIFY_SOCKET: socket() failed, errno ${libc.errno()}`);
        return null;
      }
      if (libc.connect(fd, libc.ref(addr, 0, SOCKADDR_UN_SIZE), len) < 0) {
        env.warn(`NOTIFY_SOCKET: cannot connect to ${path}, errno ${libc.errno()}`);
        libc.close(fd);
        return null;
      }
      return new SystemdNotifier(libc, fd, libc.alloc(MESSAGE_ROOM), env);
    } finally {
      libc.free(addr);
    }
  }

  /** Sends one notification ("READY=1", "STATUS=..."); false if it could not be sent. */
  send(state: string): boolean {
    const bytes = new TextEncoder().encode(state);
    if (bytes.length > MESSAGE_ROOM) return false;
    this.#message.u8.set(bytes, 0);
    const n = Number(this.#libc.write(this.#fd, this.#messagePtr, bytes.length));
    if (n < 0 && !this.#failed) {
      this.#failed = true; // once: a manager that went away must not fill the log
      this.#env.warn(`NOTIFY_SOCKET: send failed, errno ${this.#libc.errno()}`);
    }
    return n >= 0;
  }

  /** Every listener is bound and the admin API is up. */
  ready(status: string): void {
    this.send(`READY=1\nSTATUS=${status}`);
  }

  /** A reload starts (SIGHUP or the admin API). */
  async reloading(): Promise<void> {
    this.send(`RELOADING=1\nMONOTONIC_USEC=${await this.#env.monotonicUsec()}`);
  }

  /** The reload ended, applied or refused: the relay is serving either way. */
  reloaded(status: string): void {
    this.send(`READY=1\nSTATUS=${status}`);
  }

  /** Draining has begun. */
  stopping(): void {
    this.stopWatchdog();
    this.send("STOPPING=1");
  }

  /**
   * Starts WATCHDOG=1 pings at half of WATCHDOG_USEC when it is set for this process; returns the interval
   * in ms, or null when no watchdog is asked for.
   */
  startWatchdog(): number | null {
    const usec = Number(this.#env.env("WATCHDOG_USEC") ?? "");
    const pid = this.#env.env("WATCHDOG_PID");
    if (!Number.isFinite(usec) || usec <= 0) return null;
    if (pid !== undefined && pid !== "" && Number(pid) !== this.#env.pid) return null;
    const every = Math.max(1, Math.floor(usec / 2000));
    this.stopWatchdog();
    this.send("WATCHDOG=1");
    this.#watchdog = setInterval(() => this.send("WATCHDOG=1"), every);
    return every;
  }

  /** Stops the watchdog pings. */
  stopWatchdog(): void {
    if (this.#watchdog !== null) clearInterval(this.#watchdog);
    this.#watchdog = null;
  }

  /** Closes the socket. */
  close(): void {
    this.stopWatchdog();
    this.#libc.close(this.#fd);
    this.#libc.free(this.#message);
  }
}

/**
 * CLOCK_MONOTONIC in µs, read from /proc/uptime (neither runtime exposes clock_gettime). That file is
 * CLOCK_BOOTTIME, equal to the monotonic clock on a machine that never suspended and ahead of it
 * otherwise; its 10 ms resolution is rounded up, so systemd never sees a time before the reload began.
 */
export function monotonicFromUptime(text: string): number {
  const seconds = Number(text.split(/\s/)[0]);
  return Number.isFinite(seconds) ? Math.round((seconds + 0.01) * 1e6) : 0;
}
