/**
 * What a runtime must provide for the UDP relay: bound listener sockets and per-flow upstream sockets.
 * Each runtime adapter (shell/bun, shell/deno, later the native path) implements this; the driver in
 * `udp_relay.ts` drives the core the same way over any of them.
 *
 * Sends never throw: they return a `SendResult`, because on Linux an ICMP port unreachable surfaces as
 * ECONNREFUSED on a later send, and a relay must count that and carry on.
 *
 * @module
 */

import type { SocketAddress } from "../../core/address.ts";

/** Outcome of a send: small integers, so the hot path allocates nothing. */
export const Sent = {
  Ok: 0,
  /** The send failed (ENOBUFS, EMSGSIZE, a closed socket, ...). */
  Error: 1,
  /** ECONNREFUSED: the peer answered an earlier datagram with ICMP port unreachable. */
  Refused: 2,
} as const;
/** One of the Sent codes. */
export type SendResult = typeof Sent[keyof typeof Sent];

/** Called for each datagram; `data` is valid only during the call (buffers are reused). */
export type OnDatagram = (data: Uint8Array, ip: string, port: number) => void;

/** A bound listener socket. */
export interface ListenerSocket {
  /** The address actually bound (the port is the kernel's choice when 0 was asked). */
  readonly local: SocketAddress;
  /** A reusable reference to a peer, made once per flow so replies build nothing per datagram. */
  peer(ip: string, port: number): unknown;
  /** Sends `data` to a peer made by `peer`. */
  sendTo(data: Uint8Array, peer: unknown): SendResult;
  close(): void;
}

/** A flow's upstream socket, connected to its backend where the runtime allows it. */
export interface UpstreamSocket {
  send(data: Uint8Array): SendResult;
  close(): void;
}

/** Callbacks of an upstream socket. */
export interface UpstreamEvents {
  /** A reply from the backend; `data` is valid only during the call. */
  reply(data: Uint8Array): void;
  /** A reply larger than the socket's receive buffer arrived and was dropped. */
  truncated(): void;
  /** A receive-side or late send error (an ICMP refusal, say), counted against the backend. */
  error(refused: boolean): void;
}

/** Options for binding a listener. */
export interface BindOptions {
  /** SO_REUSEPORT, so several workers share the port (where the runtime offers it). */
  readonly reusePort: boolean;
  /** Largest datagram to receive; larger ones must reach the core with a length above the limit. */
  readonly maxDatagramSize: number;
  /** A send to a client failed after `sendTo` returned (runtimes whose sends complete later). */
  readonly sendFailed: () => void;
  /** A reply that left was answered with ICMP port unreachable: its client is gone (not a send error). */
  readonly clientUnreachable: () => void;
}

/** A runtime's UDP socket factory. */
export interface UdpSockets {
  /** The runtime's name, for logs and the status endpoint. */
  readonly name: string;
  /** Whether `reusePort` works for UDP here. */
  readonly reusePort: boolean;
  bindListener(address: SocketAddress, options: BindOptions, onDatagram: OnDatagram): Promise<ListenerSocket>;
  /**
   * Opens an upstream socket to `backend`. May complete later (Bun's API is asynchronous): the driver
   * queues the first datagrams meanwhile. `maxReply` bounds the reply size the socket must accept.
   */
  openUpstream(backend: SocketAddress, maxReply: number, events: UpstreamEvents): Promise<UpstreamSocket>;
}
