/**
 * Routing for `balancer = "redis"` clusters, as udp-gate does it: for each new flow, GET the cluster's key
 * (`ferry:backend:<cluster>` or e.g. `udp_gate:backend`) and use the "ip:port" it holds. The answer is
 * checked (an address, no port 0, no multicast, broadcast or unspecified address); anything else, or a
 * Redis that is away or slower than `[redis] timeout`, resolves to null and the core falls back to the
 * cluster's `redis_fallback` balancer or drops the flow. Each lookup is its own promise, so a slow Redis
 * holds up only the new flows waiting on it; established flows never ask again (they stay pinned).
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { parseSocketAddress, type SocketAddress } from "../../core/address.ts";
import { checkBackendAddress } from "../../core/backend_address.ts";
import type { Flow } from "../../core/flow.ts";
import type { ExternalRouting, RedisSettings } from "../../core/types.ts";
import type { RedisMetrics, RoutingResult } from "../../core/control_api.ts";
import type { RedisConnection } from "./connection.ts";
import { connectionMetrics, emptyRedisMetrics } from "./metrics.ts";

/** A Redis answer kept for `redis_cache`. */
interface Cached {
  readonly at: number;
  readonly address: SocketAddress | null;
}

/** What a key's value means: an address, or why not. */
export function parseBackendValue(
  value: string | null,
): { result: "ok"; address: SocketAddress } | { result: "empty" | "invalid"; reason: string } {
  const text = (value ?? "").trim();
  if (text === "") return { result: "empty", reason: value === null ? "no such key" : "empty value" };
  const parsed = parseSocketAddress(text);
  if (typeof parsed === "string") return { result: "invalid", reason: parsed };
  const refused = checkBackendAddress(parsed);
  if (refused !== null) return { result: "invalid", reason: refused };
  return { result: "ok", address: parsed };
}

/** How a router reaches Redis: a shared connection, or its own made on first need. */
export type RouterConnection =
  | { readonly shared: RedisConnection }
  | { readonly connect: () => RedisConnection };

/** Minimum time between two warnings about bad values of one key. */
const WARN_EVERY_MS = 60_000;

/** Resolves external flows' backends from Redis. */
export class RedisRouter {
  /** Lookups by how they ended. */
  readonly counts: Record<RoutingResult, number> = { ok: 0, empty: 0, invalid: 0, error: 0, cached: 0 };
  readonly #settings: RedisSettings;
  readonly #how: RouterConnection;
  readonly #log: Logger;
  #connection: RedisConnection | null = null;
  readonly #cache = new Map<string, Cached>();
  readonly #warned = new Map<string, number>();
  #closed = false;

  /** A router with `settings`' timeout, reaching Redis as `how` says. */
  constructor(settings: RedisSettings, how: RouterConnection, logger: Logger) {
    this.#settings = settings;
    this.#how = how;
    this.#log = logger;
    if ("shared" in how) this.#connection = how.shared;
  }

  /** Opens an own connection now rather than at the first flow (whose lookup would then fall back). */
  connect(): void {
    this.#conn();
  }

  #conn(): RedisConnection | null {
    if (this.#connection === null && !this.#closed && "connect" in this.#how) {
      this.#connection = this.#how.connect();
    }
    return this.#connection;
  }

  /** The resolver for UdpRelay.setResolver: the flow's backend, or null to fall back. Never rejects. */
  resolve(flow: Flow): Promise<SocketAddress | null> {
    const routing = flow.knobs.external;
    if (routing === null) return Promise.resolve(null);
    return this.lookup(routing, flow.knobs.name);
  }

  /** The backend `routing.key` names now (or within `routing.cacheMs`), or null. Never rejects. */
  async lookup(routing: ExternalRouting, cluster: string): Promise<SocketAddress | null> {
    const now = performance.now();
    if (routing.cacheMs > 0) {
      const hit = this.#cache.get(routing.key);
      if (hit !== undefined && now - hit.at < routing.cacheMs) {
        this.counts.cached++;
        return hit.address;
      }
    }
    const connection = this.#conn();
    if (connection === null) {
      this.counts.error++;
      return null;
    }
    let value: string | null;
    try {
      value = await connection.run((c) => c.get(routing.key), this.#settings.timeout);
    } catch {
      // Connection state and errors are counted and logged by the connection's owner.
      this.counts.error++;
      return null;
    }
    const answer = parseBackendValue(value);
    this.counts[answer.result]++;
    const address = answer.result === "ok" ? answer.address : null;
    if (answer.result === "invalid") this.#warn(routing.key, cluster, value ?? "", answer.reason);
    // Only Redis's answers are cached: after an error the next flow asks again.
    if (routing.cacheMs > 0) this.#cache.set(routing.key, { at: performance.now(), address });
    return address;
  }

  #warn(key: string, cluster: string, value: string, reason: string): void {
    const now = performance.now();
    const last = this.#warned.get(key);
    if (last !== undefined && now - last < WARN_EVERY_MS) return;
    this.#warned.set(key, now);
    this.#log.warning(
      "redis key {key} of cluster {cluster} holds no usable backend ({reason}): falling back",
      {
        event: "redis_route_invalid",
        key,
        cluster,
        value: value.slice(0, 100),
        reason,
      },
    );
  }

  /** The routing counts, with the own connection's figures (a shared one is its owner's to report). */
  metrics(): RedisMetrics {
    const own = "connect" in this.#how && this.#connection !== null;
    const base = own ? connectionMetrics(this.#connection as RedisConnection) : emptyRedisMetrics();
    return { ...base, routing: { ...this.counts } };
  }

  /** Closes an own connection; later lookups resolve to null. */
  close(): void {
    this.#closed = true;
    if ("connect" in this.#how) this.#connection?.close();
  }
}
