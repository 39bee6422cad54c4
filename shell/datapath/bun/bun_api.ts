/**
 * The slice of Bun's API Ferry uses, typed here so `deno check` can check the Bun shell without Bun's
 * type package (the Bun global does not exist under Deno; these files only run under Bun).
 *
 * @module
 */

/** Bun's UDP socket handler callbacks. */
export interface BunUdpHandler {
  data?(socket: BunUdpSocket, data: Uint8Array, port: number, address: string): void;
  /**
   * Bun 1.4.5 calls this with the error alone (measured: one argument, an Error with code ECONNREFUSED
   * for an ICMP port unreachable), although its typings say (socket, error): accept both.
   */
  error?(first: unknown, second?: unknown): void;
  drain?(socket: BunUdpSocket): void;
}

/** A Bun UDP socket (bound, or connected when created with `connect`). */
export interface BunUdpSocket {
  readonly hostname: string;
  readonly port: number;
  readonly closed: boolean;
  readonly address: { address: string; family: string; port: number };
  /** Connected sockets take only data; bound ones also port and address. */
  send(data: Uint8Array, port?: number, address?: string): boolean;
  sendMany(packets: readonly (Uint8Array | number | string)[]): number;
  close(): void;
}

/** Options of Bun.udpSocket. */
export interface BunUdpOptions {
  hostname?: string;
  port?: number;
  /** 4 = SO_REUSEPORT. */
  flags?: number;
  binaryType?: "uint8array" | "buffer" | "arraybuffer";
  connect?: { hostname: string; port: number };
  socket?: BunUdpHandler;
}

/** A Bun TCP socket as seen by its handlers. */
export interface BunTcpSocket<T = unknown> {
  data: T;
  readonly remoteAddress: string;
  readonly remotePort?: number;
  readonly localPort: number;
  /** The address this end is bound to (for an accepted socket: the one the client connected to). */
  readonly localAddress?: string;
  /** Bytes that went to the kernel: fewer than asked when its send buffer is full, -1 once closed. */
  write(data: Uint8Array): number;
  end(): void;
  shutdown(halfClose?: boolean): void;
  terminate(): void;
  flush(): void;
  pause(): void;
  resume(): void;
  setNoDelay(noDelay?: boolean): boolean;
  timeout(seconds: number): void;
  ref(): void;
  unref(): void;
}

/** Bun's TCP socket handlers. */
export interface BunTcpHandler<T> {
  /** What `data` receives; "uint8array" avoids Buffer's wrapper. */
  binaryType?: "uint8array" | "buffer" | "arraybuffer";
  open?(socket: BunTcpSocket<T>): void;
  data?(socket: BunTcpSocket<T>, data: Uint8Array): void;
  drain?(socket: BunTcpSocket<T>): void;
  end?(socket: BunTcpSocket<T>): void;
  close?(socket: BunTcpSocket<T>, error?: Error): void;
  error?(socket: BunTcpSocket<T>, error: Error): void;
  timeout?(socket: BunTcpSocket<T>): void;
  connectError?(socket: BunTcpSocket<T>, error: Error): void;
}

/** A Bun TCP listener. */
export interface BunTcpListener {
  readonly port: number;
  readonly hostname: string;
  stop(closeActiveConnections?: boolean): void;
  ref(): void;
  unref(): void;
}

/** The Bun global, as far as Ferry uses it. */
export interface BunGlobal {
  readonly version: string;
  udpSocket(options: BunUdpOptions): Promise<BunUdpSocket>;
  listen<T>(options: {
    hostname: string;
    port: number;
    reusePort?: boolean;
    allowHalfOpen?: boolean;
    socket: BunTcpHandler<T>;
    data?: T;
  }): BunTcpListener;
  connect<T>(options: {
    hostname: string;
    port: number;
    allowHalfOpen?: boolean;
    socket: BunTcpHandler<T>;
    data?: T;
  }): Promise<BunTcpSocket<T>>;
  serve(options: unknown): { port: number; stop(force?: boolean): Promise<void> | void };
  gc(force: boolean): void;
}

/** The Bun global, or throws when not running under Bun. */
export function bun(): BunGlobal {
  const b = (globalThis as { Bun?: BunGlobal }).Bun;
  if (b === undefined) throw new Error("not running under Bun");
  return b;
}
