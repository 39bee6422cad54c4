/**
 * Serves an HTTP app (anything with a fetch handler, such as a Hono app) on one address, with Bun.serve
 * under Bun and Deno.serve under Deno.
 *
 * @module
 */

import type { SocketAddress } from "../../core/address.ts";
import { bun } from "../datapath/bun/bun_api.ts";
import { ADMIN_IDLE_TIMEOUT_S, MAX_ADMIN_IN_FLIGHT } from "../../core/limits.ts";

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

/** Requests refused because MAX_ADMIN_IN_FLIGHT were being handled (process-wide, for metrics). */
export const adminRefusals = { busy: 0 };

/**
 * Wraps a fetch handler so at most `max` requests run at once; the rest are answered 503 at once, so a
 * flood of requests cannot queue unbounded work on the thread that also forwards datagrams.
 */
export function boundedFetch(
  fetch: (request: Request) => Response | Promise<Response>,
  max: number = MAX_ADMIN_IN_FLIGHT,
): (request: Request) => Promise<Response> {
  let inFlight = 0;
  return async (request) => {
    if (inFlight >= max) {
      adminRefusals.busy++;
      return new Response(
        JSON.stringify({ error: `busy: ${max} admin requests are being handled; retry`, errors: [] }),
        { status: 503, headers: { "content-type": "application/json", "retry-after": "1" } },
      );
    }
    inFlight++;
    try {
      return await fetch(request);
    } finally {
      inFlight--;
    }
  };
}

/** Serves `app` on `address` ("ip:port"; port 0 picks a free one). Throws when the address cannot be bound. */
export function serve(app: FetchApp, address: SocketAddress): HttpServer {
  const fetch = boundedFetch((request: Request) => app.fetch(request));
  if ("Bun" in globalThis) {
    const server = bun().serve({
      hostname: address.ip,
      port: address.port,
      fetch,
      idleTimeout: ADMIN_IDLE_TIMEOUT_S,
    });
    return {
      port: server.port,
      close: async (graceful = false) => {
        await server.stop(!graceful);
      },
    };
  }
  const server = Deno.serve({ hostname: address.ip, port: address.port, onListen: () => {} }, fetch);
  return {
    port: server.addr.port,
    close: async () => {
      await server.shutdown();
    },
  };
}
