/**
 * What a runtime must provide for the TCP relay: listening sockets and connected streams with explicit
 * backpressure and half-close. Each runtime adapter (shell/bun, shell/deno) implements this; the driver in
 * `tcp_relay.ts` decides everything else (admission, timeouts, the PROXY header), so Bun and Deno proxy
 * identically. TCP_NODELAY is the adapters' job: a relay must not add Nagle delay on either leg.
 *
 * The contract is push-style because Bun's API is, and Deno's read loops adapt to it cheaply: a source
 * delivers `data`, the driver writes it to the other stream, and when `write` says it kept some of it the
 * driver pauses the source until that stream's `drain`.
 *
 * @module
 */

import type { SocketAddress } from "../../core/address.ts";

/** Callbacks of one stream. None may throw into the adapter; the driver catches its own errors. */
export interface TcpEvents {
  /**
   * Bytes arrived. `data` may be a reused buffer: it stays valid until the call returns or, when the
   * callee paused this stream during the call, until it resumes it (so a write that kept a reference to
   * it never sees it overwritten).
   */
  data(data: Uint8Array): void;
  /** The peer half-closed (FIN): no more data will arrive; the stream can still be written. */
  end(): void;
  /** Everything `write` kept has gone to the kernel. */
  drain(): void;
  /**
   * The stream is gone, reported once and never after the driver's own `close()`. Clean (`error`
   * undefined) after both FINs, i.e. after `end()` was called and the peer's FIN arrived; an error
   * (a reset, a failed write) otherwise.
   */
  closed(error?: unknown): void;
}

/** One connected TCP stream (accepted from a client, or opened to a backend). */
export interface TcpStream {
  /** The peer's address. */
  readonly remote: SocketAddress;
  /** This end's address: for an accepted stream, the address the client connected to. */
  readonly local: SocketAddress;
  /**
   * Writes `data`. Returns true when all of it went to the kernel; false when the stream kept (a
   * reference to) the rest, to send before anything written later: the caller must not change `data`
   * and should pause its source until `drain`.
   */
  write(data: Uint8Array): boolean;
  /** Stops delivering `data` (the kernel's receive window then pushes back on the peer). */
  pause(): void;
  /** Delivers `data` again. */
  resume(): void;
  /** Half-closes: sends FIN once everything written so far has gone out. */
  end(): void;
  /** Closes now, both ways, dropping unsent data. No event follows. Idempotent. */
  close(): void;
}

/** A bound listening socket. */
export interface TcpListenerSocket {
  /** The address actually bound (the kernel's port when 0 was asked). */
  readonly local: SocketAddress;
  /** Stops accepting; accepted streams are not affected. */
  close(): void;
}

/**
 * A client connected. Return its events, or null after `close()`-ing it to refuse it. The stream
 * delivers nothing before this returns.
 */
export type OnAccept = (stream: TcpStream) => TcpEvents | null;

/** A runtime's TCP socket factory. */
export interface TcpSockets {
  /** The runtime's name, for logs. */
  readonly name: string;
  /** Binds and starts accepting. Rejects when the address cannot be bound. */
  listen(address: SocketAddress, reusePort: boolean, onAccept: OnAccept): Promise<TcpListenerSocket>;
  /**
   * Connects to `address`. `events` are live from the moment the connection opens (a backend may speak
   * first), possibly before the promise settles. Rejects on failure (`isRefused` tells a refusal) or
   * when `signal` aborts first; a connection that opens after the abort is closed.
   */
  connect(address: SocketAddress, events: TcpEvents, signal: AbortSignal): Promise<TcpStream>;
}

/** True when a connect failed because nothing listens there (ECONNREFUSED), in either runtime's error. */
export function isRefused(error: unknown): boolean {
  const e = error as { code?: unknown; name?: unknown } | null;
  return e?.code === "ECONNREFUSED" || e?.name === "ConnectionRefused";
}

/** The address family of a textual IP. */
export function familyOf(ip: string): 4 | 6 {
  return ip.includes(":") ? 6 : 4;
}
