/**
 * Fleet heartbeats: every `[fleet] heartbeat` each instance writes `<prefix>:instance:<name>` with its
 * status (version, runtime, flows, datagrams, ...) and an expiry of three heartbeats, so an instance that
 * stops or loses Redis drops out of the list by itself. `GET /api/v1/fleet` on any instance SCANs the keys.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { FleetInstance } from "../../core/control_api.ts";
import type { FleetSettings } from "../../core/types.ts";
import type { RedisConnection } from "./connection.ts";

/** What an instance writes: its FleetInstance, less what the reader works out. */
export type HeartbeatStatus = Omit<FleetInstance, "lastSeen" | "ageSeconds" | "self">;

/** The stored heartbeat: the status and when it was written (ms since the epoch). */
interface Stored extends HeartbeatStatus {
  readonly at: number;
}

/** `text` with Redis glob characters escaped, for SCAN MATCH. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, "\\$&");
}

/** The key of an instance's heartbeat. */
export function instanceKey(prefix: string, instance: string): string {
  return `${prefix}:instance:${instance}`;
}

/** A stored heartbeat as a FleetInstance, or null when it is not one (a stray key, a foreign writer). */
export function readHeartbeat(text: string | null, self: string, now: number): FleetInstance | null {
  if (text === null) return null;
  let v: Partial<Stored>;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null || typeof v.instance !== "string" || typeof v.at !== "number") {
    return null;
  }
  const num = (x: unknown) => (typeof x === "number" && Number.isFinite(x) ? x : 0);
  const str = (x: unknown) => (typeof x === "string" ? x : "");
  return {
    instance: v.instance,
    version: str(v.version),
    runtime: str(v.runtime),
    runtimeVersion: str(v.runtimeVersion),
    workers: num(v.workers),
    startedAt: str(v.startedAt),
    uptimeSeconds: num(v.uptimeSeconds),
    flows: num(v.flows),
    connections: num(v.connections),
    datagrams: num(v.datagrams),
    configHash: str(v.configHash),
    draining: v.draining === true,
    lastSeen: new Date(v.at).toISOString(),
    ageSeconds: Math.max(0, Math.round(now - v.at) / 1000),
    self: v.instance === self,
  };
}

/** Most SCAN rounds for one listing: 100 keys a round is plenty for any fleet. */
const MAX_SCANS = 1000;

/** One instance's heartbeat, and the fleet's listing. */
export class Heartbeat {
  readonly #connection: RedisConnection;
  readonly #settings: FleetSettings;
  readonly #status: () => Promise<HeartbeatStatus>;
  readonly #timeout: number;
  readonly #log: Logger;
  #timer: ReturnType<typeof setInterval> | null = null;

  /** Beats for `settings.instance` with what `status` says; Redis commands are bounded by `timeout`. */
  constructor(
    connection: RedisConnection,
    settings: FleetSettings,
    status: () => Promise<HeartbeatStatus>,
    timeout: number,
    logger: Logger,
  ) {
    this.#connection = connection;
    this.#settings = settings;
    this.#status = status;
    this.#timeout = timeout;
    this.#log = logger;
  }

  /** Beats every `heartbeat`, skipping beats while Redis is away (the key then expires). */
  start(): void {
    this.#timer ??= setInterval(() => this.beat(), this.#settings.heartbeat);
  }

  /** Writes the heartbeat now; never rejects (a missed beat is retried at the next one). */
  async beat(): Promise<void> {
    if (!this.#connection.stats.connected) return;
    try {
      const status: Stored = { ...(await this.#status()), at: Date.now() };
      const key = instanceKey(this.#settings.prefix, this.#settings.instance);
      await this.#connection.run(
        (c) => c.set(key, JSON.stringify(status), "PX", 3 * this.#settings.heartbeat),
        this.#timeout,
      );
    } catch (e) {
      this.#log.debug("fleet heartbeat not written: {error}", {
        event: "fleet_heartbeat_failed",
        error: e instanceof Error ? e.message : String(e),
      });
    }
  }

  /** The live instances, by name. Rejects when Redis cannot be read. */
  async instances(): Promise<FleetInstance[]> {
    const pattern = `${escapeGlob(this.#settings.prefix)}:instance:*`;
    const keys = new Set<string>();
    let cursor = "0";
    for (let i = 0; i < MAX_SCANS; i++) {
      const [next, found] = await this.#connection.run(
        (c) => c.scan(cursor, "MATCH", pattern, "COUNT", 100),
        this.#timeout,
      );
      for (const k of found) keys.add(k);
      cursor = next;
      if (cursor === "0") break;
    }
    if (keys.size === 0) return [];
    const list = [...keys];
    const values = await this.#connection.run((c) => c.mget(...list), this.#timeout);
    const now = Date.now();
    return values
      .map((v) => readHeartbeat(v, this.#settings.instance, now))
      .filter((x): x is FleetInstance => x !== null)
      .sort((a, b) => (a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : 0));
  }

  /** Stops beating and removes the key, so a stopped instance leaves the list at once. */
  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    if (!this.#connection.stats.connected) return;
    const key = instanceKey(this.#settings.prefix, this.#settings.instance);
    await this.#connection.run((c) => c.del(key), this.#timeout).catch(() => {});
  }
}
