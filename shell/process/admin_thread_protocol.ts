/**
 * The messages between the main thread and the admin thread (shell/process/admin_thread.ts), which takes
 * the admin API's connections, parsing, timeouts and refusals off the thread that forwards datagrams: the
 * main thread only ever sees whole requests, one at a time (shell/process/serve.ts).
 *
 * @module
 */

/** The admin thread's limits. */
export interface AdminThreadLimits {
  /** Connections open at once (the front's cap). */
  readonly maxConnections: number;
  /** A new connection's deadline for a complete request head, in ms. */
  readonly headerTimeoutMs: number;
  /** A connection with no bytes either way for this long is closed, in ms. */
  readonly idleTimeoutMs: number;
  /** How long a connection must have been idle before a new one may push it out, in ms. */
  readonly evictAfterMs: number;
  /** How long a connection may lack a complete request head before a new one may push it out, in ms. */
  readonly evictHeadlessAfterMs: number;
  /** Connections past the cap being answered 503 at once, at most (the rest are closed unanswered). */
  readonly maxRefusing: number;
  /** Requests handed to the main thread and not yet answered; more are answered 503 by the admin thread. */
  readonly maxInFlight: number;
  /** Largest body read; past it, the main thread's app sees `bodyLimit + 1` bytes and answers 413. */
  readonly bodyLimit: number;
}

/** Main → admin thread, first: where to listen and how. */
export interface AdminThreadInit {
  readonly type: "init";
  readonly hostname: string;
  readonly port: number;
  readonly limits: AdminThreadLimits;
}

/** Main → admin thread: the answer to request `id`. */
export interface AdminThreadResponse {
  readonly type: "response";
  readonly id: number;
  readonly status: number;
  readonly headers: [string, string][];
  readonly body: ArrayBuffer | null;
}

/** Main → admin thread: stop listening, close every connection (once answered, when `graceful`). */
export interface AdminThreadClose {
  readonly type: "close";
  readonly graceful: boolean;
}

/** Admin thread → main: listening (with the port bound), or not (with why). */
export type AdminThreadListening =
  | { readonly type: "listening"; readonly port: number }
  | { readonly type: "failed"; readonly error: string };

/** Admin thread → main: one whole request to answer. */
export interface AdminThreadRequest {
  readonly type: "request";
  readonly id: number;
  readonly method: string;
  readonly url: string;
  readonly headers: [string, string][];
  readonly body: ArrayBuffer | null;
}

/** What the admin thread refused or closed since it started (sent when it changes, at most once a second). */
export interface AdminThreadCounts {
  /** New connections answered 503 and closed: the cap was reached and none could be pushed out. */
  readonly connectionsRefused: number;
  /** Connections closed at the cap to make room (idle, or without a request head, the longest). */
  readonly connectionsEvicted: number;
  /** Connections closed for sending no complete request head in time. */
  readonly headerTimeouts: number;
  /** Connections closed for being idle too long. */
  readonly idleTimeouts: number;
  /** Requests answered 503 because `maxInFlight` were waiting on the main thread. */
  readonly busy: number;
  /** Connections open now. */
  readonly open: number;
}

/** Admin thread → main: the counts. */
export interface AdminThreadStats extends AdminThreadCounts {
  readonly type: "stats";
}

/** Admin thread → main: closed (every connection ended). */
export interface AdminThreadClosed {
  readonly type: "closed";
}

/** Any message from the admin thread. */
export type FromAdminThread =
  | AdminThreadListening
  | AdminThreadRequest
  | AdminThreadStats
  | AdminThreadClosed;
/** Any message to the admin thread. */
export type ToAdminThread = AdminThreadInit | AdminThreadResponse | AdminThreadClose;
