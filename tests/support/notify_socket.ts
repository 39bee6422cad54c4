/**
 * A fake systemd notify socket for tests: an AF_UNIX SOCK_DGRAM socket bound to a path, read through libc
 * (shell/datapath/native/ffi.ts) because Bun has no unix datagram sockets of its own. Nonblocking; `messages()`
 * drains what arrived so far.
 *
 * @module
 */

import { type Libc, loadLibc, type Memory, type Ptr } from "../../shell/datapath/native/ffi.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const ROOM = 4096;

/** A bound notify socket and the notifications received on it. */
export class FakeNotifySocket {
  readonly received: string[] = [];
  #closed = false;

  private constructor(
    readonly path: string,
    private readonly libc: Libc,
    private readonly fd: number,
    private readonly buf: Memory,
    private readonly bufPtr: Ptr,
  ) {}

  /** Binds a socket at `path` (which must not exist yet). */
  static async bind(path: string): Promise<FakeNotifySocket> {
    const libc = await loadLibc();
    const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) throw new Error(`socket: errno ${libc.errno()}`);
    const addr = libc.alloc(110);
    const name = new TextEncoder().encode(path);
    addr.dv.setUint16(0, AF_UNIX, true);
    addr.u8.set(name, 2);
    const rc = libc.bind(fd, libc.ref(addr, 0, 110), 2 + name.length + 1);
    libc.free(addr);
    if (rc < 0) throw new Error(`bind ${path}: errno ${libc.errno()}`);
    const buf = libc.alloc(ROOM);
    return new FakeNotifySocket(path, libc, fd, buf, libc.ref(buf, 0, ROOM));
  }

  /** Reads every datagram waiting; returns all received so far. */
  messages(): string[] {
    while (!this.#closed) {
      const n = Number(this.libc.read(this.fd, this.bufPtr, ROOM));
      if (n < 0) break; // EAGAIN: nothing more now
      this.received.push(new TextDecoder().decode(this.buf.u8.slice(0, n)));
    }
    return this.received;
  }

  /** Waits until a message satisfies `match` (polling every 20 ms); throws after `ms`. */
  async waitFor(match: (m: string) => boolean, ms = 10_000): Promise<string> {
    const end = Date.now() + ms;
    for (;;) {
      const hit = this.messages().find(match);
      if (hit !== undefined) return hit;
      if (Date.now() > end) throw new Error(`no matching notification; got ${JSON.stringify(this.received)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Closes the socket. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.libc.close(this.fd);
    this.libc.free(this.buf);
  }
}
