/**
 * Serves an HTTP app (anything with a fetch handler, such as a Hono app) on one address, without letting
 * its clients stall the thread that forwards datagrams (issue 12: 2,000 concurrent admin requests cost a
 * 1 kHz flow 1,518 of 2,763 datagrams). Connections, parsing, timeouts and refusals live in the admin
 * thread (shell/process/admin_thread.ts, a worker); this thread sees only whole requests and runs the app
 * on them one at a time, giving the event loop (so the data path) a turn between any two.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import type { SocketAddress } from "../../core/address.ts";
import { log } from "./logging.ts";
import {
  ADMIN_EVICT_AFTER_MS,
  ADMIN_EVICT_HEADLESS_AFTER_MS,
  ADMIN_HEADER_TIMEOUT_MS,
  ADMIN_IDLE_TIMEOUT_S,
  MAX_ADMIN_CONNECTIONS,
  MAX_ADMIN_IN_FLIGHT,
  MAX_ADMIN_REFUSING,
} from "../../core/limits.ts";
import type {
  AdminThreadCounts,
  AdminThreadLimits,
  AdminThreadRequest,
  FromAdminThread,
  ToAdminThread,
} from "./admin_thread_protocol.ts";

/** Anything with a fetch handler. */
export interface FetchApp {
  fetch(request: Request): Response | Promise<Response>;
}

/** A running HTTP server. */
export interface HttpServer {
  /** The port bound (useful when asked for port 0). */
  readonly port: number;
  /** Stops listening and closes open connections (`graceful`: once their requests are answered). */
  close(graceful?: boolean): Promise<void>;
}

/** The admin API's limits: core/limits.ts, with the app's body limit. */
export function adminLimits(bodyLimit: number = 1024 * 1024): AdminThreadLimits {
  return {
    maxConnections: MAX_ADMIN_CONNECTIONS,
    headerTimeoutMs: ADMIN_HEADER_TIMEOUT_MS,
    idleTimeoutMs: ADMIN_IDLE_TIMEOUT_S * 1000,
    evictAfterMs: ADMIN_EVICT_AFTER_MS,
    evictHeadlessAfterMs: ADMIN_EVICT_HEADLESS_AFTER_MS,
    maxInFlight: MAX_ADMIN_IN_FLIGHT,
    maxRefusing: MAX_ADMIN_REFUSING,
    bodyLimit,
  };
}

const ZERO: AdminThreadCounts = {
  connectionsRefused: 0,
  connectionsEvicted: 0,
  headerTimeouts: 0,
  idleTimeouts: 0,
  busy: 0,
  open: 0,
};
/** The last counts of each running server, and those of closed ones added up. */
const live = new Map<HttpServer, AdminThreadCounts>();
let retired: AdminThreadCounts = ZERO;

function add(a: AdminThreadCounts, b: AdminThreadCounts, open = true): AdminThreadCounts {
  return {
    connectionsRefused: a.connectionsRefused + b.connectionsRefused,
    connectionsEvicted: a.connectionsEvicted + b.connectionsEvicted,
    headerTimeouts: a.headerTimeouts + b.headerTimeouts,
    idleTimeouts: a.idleTimeouts + b.idleTimeouts,
    busy: a.busy + b.busy,
    open: a.open + (open ? b.open : 0),
  };
}

/** When refusals were last logged (at most one line per REFUSAL_LOG_MS while they go on), and the counts then. */
let refusalsLogged = -Infinity;
let countsLogged: AdminThreadCounts = ZERO;
const REFUSAL_LOG_MS = 10_000;

/** Logs (at most every REFUSAL_LOG_MS) the connections and requests the admin threads refused since the last line. */
function noteRefusals(): void {
  const now = adminCounts();
  const connections = now.connectionsRefused - countsLogged.connectionsRefused;
  const requests = now.busy - countsLogged.busy;
  if (connections + requests <= 0 || Date.now() - refusalsLogged < REFUSAL_LOG_MS) return;
  refusalsLogged = Date.now();
  countsLogged = now;
  log.warning("admin API at its limits: {connections} connections and {requests} requests refused (503)", {
    event: "admin_busy",
    connections,
    requests,
    evicted: now.connectionsEvicted,
    headerTimeouts: now.headerTimeouts,
    open: now.open,
  });
}

/** What the admin threads refused and closed since the process started (for metrics and logs). */
export function adminCounts(): AdminThreadCounts {
  let sum = retired;
  for (const c of live.values()) sum = add(sum, c);
  return sum;
}

/**
 * The admin thread's entry module. Run from source, it sits next to this file; in a `bun build --compile`
 * binary (built with it as an entrypoint) this code runs at the bundle's root, where Bun maps the name.
 */
export function adminThreadUrl(here: string = import.meta.url): URL {
  return new URL(
    here.endsWith("/shell/process/serve.ts") ? "./admin_thread.ts" : "./shell/process/admin_thread.ts",
    here,
  );
}

/** Longest the queue waits on one request before starting the next (one blocked on I/O holds up none). */
const TURN_WAIT_MS = 50;

/**
 * Runs the app on requests one at a time: each gets the thread to itself until it answers (or waits on
 * I/O for TURN_WAIT_MS), then the event loop gets a turn (setImmediate, the data path's own way of
 * yielding) before the next starts. So a burst of requests costs the data path one request's work at a
 * time, not the whole burst's.
 */
class RequestQueue {
  readonly #app: FetchApp;
  readonly #send: (m: ToAdminThread, transfer?: Transferable[]) => void;
  readonly #queue: AdminThreadRequest[] = [];
  #running = false;

  constructor(app: FetchApp, send: (m: ToAdminThread, transfer?: Transferable[]) => void) {
    this.#app = app;
    this.#send = send;
  }

  push(request: AdminThreadRequest): void {
    this.#queue.push(request);
    if (!this.#running) {
      this.#running = true;
      setImmediate(() => void this.#drain());
    }
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const done = this.#answer(this.#queue.shift()!).catch(() => {});
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([done, new Promise<void>((r) => (timer = setTimeout(r, TURN_WAIT_MS)))]);
        clearTimeout(timer);
        await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      // Never left marked running: every later request would wait for a drain that never comes.
      this.#running = false;
      if (this.#queue.length > 0) this.push(this.#queue.shift()!);
    }
  }

  async #answer(m: AdminThreadRequest): Promise<void> {
    let status = 500, headers: [string, string][] = [], body: ArrayBuffer | null = null;
    try {
      const hasBody = m.body !== null && m.method !== "GET" && m.method !== "HEAD";
      const request = new Request(m.url, {
        method: m.method,
        headers: m.headers,
        body: hasBody ? m.body : null,
      });
      const response = await this.#app.fetch(request);
      status = response.status;
      headers = [...response.headers];
      body = response.body === null ? null : await response.arrayBuffer();
    } catch (e) {
      headers = [["content-type", "application/json"]];
      const text = JSON.stringify({
        error: `internal error: ${e instanceof Error ? e.message : e}`,
        errors: [],
      });
      body = new TextEncoder().encode(text).buffer as ArrayBuffer;
    }
    const reply = { type: "response" as const, id: m.id, status, headers, body };
    try {
      this.#send(reply, body === null ? [] : [body]);
    } catch {
      // A buffer the runtime will not hand over (not detachable): copied instead; an answer always goes.
      try {
        this.#send({ ...reply, body: body === null ? null : body.slice(0) });
      } catch {
        this.#send({ ...reply, status: 500, headers: [], body: null });
      }
    }
  }
}

/**
 * Serves `app` on `address` ("ip:port"; port 0 picks a free one) from an admin thread; resolves once it
 * listens, rejects when the address cannot be bound.
 */
export function serve(
  app: FetchApp,
  address: SocketAddress,
  limits: AdminThreadLimits = adminLimits(),
): Promise<HttpServer> {
  const worker = new Worker(adminThreadUrl(), { type: "module" });
  const send = (m: ToAdminThread, transfer: Transferable[] = []) => worker.postMessage(m, transfer);
  const queue = new RequestQueue(app, send);
  let server: HttpServer | null = null;
  let closed: (() => void) | null = null;
  return new Promise((resolve, reject) => {
    worker.addEventListener("error", (event: ErrorEvent) => {
      // Handled: unhandled, Deno rethrows a worker's error in the main thread and ends the process.
      event.preventDefault();
      if (server === null) reject(new Error(event.message || "the admin thread failed"));
      closed?.();
    });
    worker.addEventListener("message", (event: MessageEvent) => {
      const m = event.data as FromAdminThread;
      switch (m.type) {
        case "request":
          return queue.push(m);
        case "stats": {
          const { type: _, ...counts } = m;
          if (server !== null) {
            live.set(server, counts);
            noteRefusals();
          }
          return;
        }
        case "failed":
          worker.terminate();
          return reject(new Error(m.error));
        case "closed":
          return closed?.();
        case "listening": {
          let closing: Promise<void> | null = null;
          const self: HttpServer = {
            port: m.port,
            close: (graceful = false) =>
              closing ??= new Promise<void>((done) => {
                closed = done;
                send({ type: "close", graceful });
              }).then(() => {
                retired = add(retired, live.get(self) ?? ZERO, false);
                live.delete(self);
                worker.terminate();
              }),
          };
          server = self;
          live.set(self, ZERO);
          return resolve(self);
        }
      }
    });
    send({ type: "init", hostname: address.ip, port: address.port, limits });
  });
}
