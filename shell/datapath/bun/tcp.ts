/**
 * Bun's TCP sockets for the TCP driver: Bun.listen and Bun.connect, both with `allowHalfOpen` so a FIN
 * from one side is passed on as a half-close instead of closing the socket.
 *
 * Bun's `write` is synchronous and partial: it returns how many bytes the kernel took and keeps none of
 * the rest. So each stream keeps an explicit queue of what the kernel refused, flushes it on `drain`, and
 * reports `drain` only then; the driver pauses the other side meanwhile (Bun's `pause()` stops reading,
 * letting the receive window push back). Bun hands every `data` call a fresh buffer, so queued chunks are
 * kept by reference, not copied.
 *
 * Measured on Bun 1.4: once this end has shut down, the peer's FIN arrives as `close` without `end`;
 * `end()` on a half-open socket closes it at once with a FIN; `terminate()` resets the peer; a reset
 * arrives as `close(socket, error)` (the `error` handler is not called); a refused connect calls
 * `connectError` and rejects the promise.
 *
 * @module
 */

import type { SocketAddress } from "../../../core/address.ts";
import {
  familyOf,
  type OnAccept,
  type TcpEvents,
  type TcpListenerSocket,
  type TcpSockets,
  type TcpStream,
} from "../tcp_sockets.ts";
import { bun, type BunTcpHandler, type BunTcpSocket } from "./bun_api.ts";

/** One Bun socket and its write queue. */
class BunStream implements TcpStream {
  events: TcpEvents | null;
  remote: SocketAddress = { ip: "", port: 0, family: 4 };
  local: SocketAddress = { ip: "", port: 0, family: 4 };
  #s: BunTcpSocket<BunStream> | null = null;
  /** What the kernel has not taken yet, oldest first. */
  #queue: Uint8Array[] = [];
  /** end() was called: FIN once the queue is empty. */
  #ending = false;
  #closed = false;
  /** An error seen by the `error` handler, reported with the `close` that follows. */
  #error: unknown = undefined;

  constructor(events: TcpEvents | null) {
    this.events = events;
  }

  attach(s: BunTcpSocket<BunStream>): void {
    this.#s = s;
    s.setNoDelay(true);
    const ip = s.remoteAddress;
    this.remote = { ip, port: s.remotePort ?? 0, family: familyOf(ip) };
    const lip = s.localAddress ?? "";
    this.local = { ip: lip, port: s.localPort, family: familyOf(lip) };
  }

  write(data: Uint8Array): boolean {
    const s = this.#s;
    if (this.#closed || this.#ending || s === null) return true;
    if (this.#queue.length > 0) {
      this.#queue.push(data);
      return false;
    }
    const n = s.write(data);
    if (n < 0 || n >= data.byteLength) return true; // n < 0: closed; its close event reports it
    this.#queue.push(n === 0 ? data : data.subarray(n));
    return false;
  }

  /** The kernel takes data again: flush the queue, then report drain (and send a pending FIN). */
  flush(): void {
    const s = this.#s;
    const q = this.#queue;
    if (s === null || this.#closed || q.length === 0) return;
    while (q.length > 0) {
      const d = q[0];
      const n = s.write(d);
      if (n < 0) {
        q.length = 0; // closed: its close event reports it
        return;
      }
      if (n < d.byteLength) {
        q[0] = d.subarray(n);
        return;
      }
      q.shift();
    }
    if (this.#ending) s.shutdown();
    this.events?.drain();
  }

  pause(): void {
    this.#s?.pause();
  }

  resume(): void {
    this.#s?.resume();
  }

  end(): void {
    if (this.#closed || this.#ending) return;
    this.#ending = true;
    if (this.#queue.length === 0) this.#s?.shutdown();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.#s?.end();
  }

  /** Bun's close handler: report once, unless the driver closed it. */
  onClose(error: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.events?.closed(error ?? this.#error);
  }

  onError(error: unknown): void {
    this.#error ??= error;
  }

  /** A callback threw: close, and report it as this stream's error. */
  fail(error: unknown): void {
    const events = this.#closed ? null : this.events;
    this.close();
    try {
      events?.closed(error);
    } catch { /* nothing left to tell */ }
  }
}

/** Runs a handler body; a throw closes that stream instead of reaching Bun. */
function guard(st: BunStream | undefined, body: (st: BunStream) => void): void {
  if (st === undefined) return;
  try {
    body(st);
  } catch (e) {
    st.fail(e);
  }
}

/** Handlers shared by accepted and connected sockets, once a stream is attached as `socket.data`. */
const common: BunTcpHandler<BunStream> = {
  binaryType: "uint8array",
  data: (s, d) => guard(s.data, (st) => st.events?.data(d)),
  drain: (s) => guard(s.data, (st) => st.flush()),
  end: (s) => guard(s.data, (st) => st.events?.end()),
  close: (s, e) => guard(s.data, (st) => st.onClose(e)),
  error: (s, e) => guard(s.data, (st) => st.onError(e)),
  connectError() {}, // the connect promise rejects with the same error
  timeout() {},
};

/** Binds a Bun listener whose accepted sockets go to `onAccept`. Throws when the address cannot be bound. */
function bunListen(address: SocketAddress, reusePort: boolean, onAccept: OnAccept): TcpListenerSocket {
  const server = bun().listen<BunStream>({
    hostname: address.ip,
    port: address.port,
    reusePort,
    allowHalfOpen: true,
    socket: {
      ...common,
      open(s) {
        const st = new BunStream(null);
        s.data = st;
        guard(st, () => {
          st.attach(s);
          st.events = onAccept(st);
          if (st.events === null) st.close();
        });
      },
    },
  });
  const local: SocketAddress = { ip: address.ip, port: server.port, family: address.family };
  return { local, close: () => server.stop(false) };
}

/** Bun's TcpSockets. */
export const bunTcpSockets: TcpSockets = {
  name: "bun",

  listen(address, reusePort, onAccept) {
    try {
      return Promise.resolve(bunListen(address, reusePort, onAccept));
    } catch (e) {
      return Promise.reject(e); // Bun.listen throws (EADDRINUSE, ...) synchronously
    }
  },

  connect(address, events, signal) {
    const st = new BunStream(events);
    return new Promise<TcpStream>((resolve, reject) => {
      // Bun cannot cancel a pending connect: reject now, close the socket if it opens later.
      const abort = () => reject(signal.reason);
      signal.addEventListener("abort", abort, { once: true });
      bun().connect<BunStream>({
        hostname: address.ip,
        port: address.port,
        allowHalfOpen: true,
        data: st,
        socket: { ...common, open: (s) => guard(s.data, (x) => x.attach(s)) },
      }).then(() => {
        signal.removeEventListener("abort", abort);
        if (signal.aborted) st.close();
        else resolve(st);
      }, (e) => {
        signal.removeEventListener("abort", abort);
        reject(e);
      });
    });
  },
};
