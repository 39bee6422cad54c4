/**
 * Serves an HTTP app (anything with a fetch handler, such as a Hono app) on one address, with Bun.serve
 * under Bun and Deno.serve under Deno.
 *
 * @module
 */

import type { SocketAddress } from "../core/address.ts";
import { bun } from "./bun/bun_api.ts";

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

/** Serves `app` on `address` ("ip:port"; port 0 picks a free one). Throws when the address cannot be bound. */
export function serve(app: FetchApp, address: SocketAddress): HttpServer {
  const fetch = (request: Request) => app.fetch(request);
  if ("Bun" in globalThis) {
    const server = bun().serve({ hostname: address.ip, port: address.port, fetch });
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
