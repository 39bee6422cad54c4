/**
 * UDP peers for shell tests, on 127.0.0.1 only: an echo backend that records what it received, and a
 * client that sends and awaits replies with a deadline. node:dgram works alike under Deno and Bun.
 *
 * @module
 */

import dgram from "node:dgram";

/** A datagram and where it came from. */
export interface Received {
  data: Uint8Array;
  port: number;
}

/** Where a test peer binds: 127.0.0.1 (the default) or ::1, and its receive buffer. */
export interface PeerOptions {
  readonly host?: "127.0.0.1" | "::1";
  readonly recvBufferSize?: number;
}

function peerSocket(o: PeerOptions): dgram.Socket {
  return dgram.createSocket({ type: o.host === "::1" ? "udp6" : "udp4", recvBufferSize: o.recvBufferSize });
}

/** A UDP echo server on 127.0.0.1 (or ::1) that records every datagram. */
export class EchoBackend {
  readonly received: Received[] = [];
  /** Reply with this instead of echoing, if set. */
  reply: ((data: Uint8Array) => Uint8Array | null) | null = null;
  /** Answer each datagram this many times (a duplicating backend) ... */
  copies = 1;
  /** ... this many milliseconds after it arrived (0: at once), the copies this far apart. */
  delayMs = 0;
  copyGapMs = 0;
  readonly #host: string;
  #socket: dgram.Socket;
  port = 0;

  /** An echo backend on `options.host` (default 127.0.0.1). */
  constructor(options: PeerOptions = {}) {
    this.#host = options.host ?? "127.0.0.1";
    this.#socket = peerSocket(options);
  }

  /** Binds to a free port. */
  async start(): Promise<this> {
    this.#socket.on("message", (m, r) => {
      const data = new Uint8Array(m);
      this.received.push({ data, port: r.port });
      const out = this.reply === null ? data : this.reply(data);
      if (out === null) return;
      const send = () => {
        for (let i = 0; i < this.copies; i++) {
          if (i === 0 || this.copyGapMs === 0) this.#socket.send(out, r.port, r.address);
          else setTimeout(() => this.#socket.send(out, r.port, r.address), i * this.copyGapMs);
        }
      };
      if (this.delayMs > 0) setTimeout(send, this.delayMs);
      else send();
    });
    await new Promise<void>((res) => this.#socket.bind(0, this.#host, () => res()));
    this.port = this.#socket.address().port;
    return this;
  }

  /** Sends `data` from the backend's socket to `port` on its host (a reply sent later, say). */
  sendTo(data: Uint8Array, port: number): void {
    this.#socket.send(data, port, this.#host);
  }

  /** Closes the socket. */
  close(): void {
    try {
      this.#socket.close();
    } catch { /* already closed */ }
  }
}

/** A UDP client on 127.0.0.1 (or ::1) with a receive queue. */
export class Client {
  readonly #host: string;
  #socket: dgram.Socket;
  #queue: Uint8Array[] = [];
  #waiters: ((d: Uint8Array) => void)[] = [];
  port = 0;
  /** The address of the last datagram received (replies must come from the address written to). */
  lastFrom: { address: string; port: number } | null = null;

  /** A client on `options.host` (default 127.0.0.1), sending to the same host. */
  constructor(options: PeerOptions = {}) {
    this.#host = options.host ?? "127.0.0.1";
    this.#socket = peerSocket(options);
  }

  /** Binds to a free port. */
  async start(): Promise<this> {
    this.#socket.on("message", (m, r) => {
      this.lastFrom = { address: r.address, port: r.port };
      const d = new Uint8Array(m);
      const w = this.#waiters.shift();
      if (w) w(d);
      else this.#queue.push(d);
    });
    await new Promise<void>((res) => this.#socket.bind(0, this.#host, () => res()));
    this.port = this.#socket.address().port;
    return this;
  }

  /** Sends `data` to `port` on the client's host; `sent` hears whether the kernel took it. */
  send(data: Uint8Array | string, port: number, sent?: (ok: boolean) => void): void {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    this.#socket.send(bytes, port, this.#host, (e) => sent?.(!e));
  }

  /** The next datagram, or null after `ms`. */
  next(ms = 1000): Promise<Uint8Array | null> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((res) => {
      const t = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        res(null);
      }, ms);
      const w = (d: Uint8Array) => {
        clearTimeout(t);
        res(d);
      };
      this.#waiters.push(w);
    });
  }

  /** Sends and awaits one reply as text (null on timeout). */
  async ask(text: string, port: number, ms = 1000): Promise<string | null> {
    this.send(text, port);
    const d = await this.next(ms);
    return d === null ? null : new TextDecoder().decode(d);
  }

  /** Closes the socket. */
  close(): void {
    try {
      this.#socket.close();
    } catch { /* already closed */ }
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every 10 ms until true or `ms` passes; returns its last value. */
export async function until(cond: () => boolean, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(10);
  return cond();
}
