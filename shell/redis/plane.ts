/**
 * The Redis control plane of one process, run in the main thread over the Control (which reaches every
 * worker): the disconnect channel, the fleet (changes and heartbeats), the connection's state in logs,
 * and the figures for /metrics. Routing runs next to each relay core instead (shell/redis/router.ts).
 *
 * `[redis]` and `[fleet]` are read once, at start: a reload that changes them is told to wait for a restart.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Control, RedisMetrics } from "../../core/control_api.ts";
import type { FerryConfig } from "../../core/types.ts";
import type { RedisConnection } from "./connection.ts";
import { DisconnectChannel } from "./disconnects.ts";
import { Fleet } from "./fleet.ts";
import { FleetBans } from "./fleet_bans.ts";
import { Heartbeat, type HeartbeatStatus } from "./heartbeat.ts";
import { connectionMetrics } from "./metrics.ts";

/** What the plane needs besides the config and the connection. */
export interface PlaneOptions {
  /** The process's Control: fleet changes take their turn in its one queue with every other change. */
  readonly control: Control;
  readonly logger: Logger;
}

/** Fleet commands (not on the data path) may take longer than a routing lookup. */
const FLEET_TIMEOUT_MS = 2000;

/** A URL without its password, for logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//***@");
}

function settingsOf(config: FerryConfig): string {
  return JSON.stringify([config.redis, config.fleet]);
}

/** An instance's heartbeat status, from the Control's status and metrics. */
async function heartbeatStatus(control: Control, instance: string): Promise<HeartbeatStatus> {
  const [status, metrics] = await Promise.all([control.status(), control.metrics()]);
  const total = (f: (l: (typeof metrics.listeners)[number]) => number) =>
    metrics.listeners.reduce((n, l) => n + f(l), 0);
  return {
    instance,
    version: status.version,
    runtime: status.runtime,
    runtimeVersion: status.runtimeVersion,
    workers: status.workers,
    startedAt: status.startedAt,
    uptimeSeconds: status.uptimeSeconds,
    flows: total((l) => (l.protocol === "udp" ? l.activeFlows : 0)),
    connections: total((l) => (l.protocol === "tcp" ? l.connectionsActive : 0)),
    datagrams: total((l) => (l.protocol === "udp" ? l.datagramsIn : 0)),
    configHash: status.configHash,
    draining: status.draining,
  };
}

/** The main thread's Redis duties. */
export class RedisPlane {
  /** The main thread's connection (shared with routing when workers = 1). */
  readonly connection: RedisConnection;
  /** Null when `[redis] disconnect_channel` is empty. */
  readonly disconnects: DisconnectChannel | null;
  /** Null when `[fleet] instance` is empty. */
  readonly fleet: Fleet | null;
  /** Bans shared by the fleet; null outside a fleet. */
  readonly bans: FleetBans | null = null;
  /** `[redis]` and `[fleet]` as started, and as last applied (to warn once per change). */
  readonly #settings: string;
  #applied: string;
  readonly #log: Logger;

  /** Starts the plane on `connection` (made from `config.redis`), as `config` asks. */
  constructor(config: FerryConfig, connection: RedisConnection, options: PlaneOptions) {
    const log = options.logger;
    this.connection = connection;
    this.#settings = settingsOf(config);
    this.#applied = this.#settings;
    this.#log = log;
    const url = redactUrl(config.redis.url);
    let ever = false;
    connection.onState((up) => {
      if (up) {
        log.info(ever ? "redis {url} reachable again" : "connected to redis {url}", {
          event: ever ? "redis_restored" : "redis_connected",
          url,
        });
        ever = true;
      } else {
        log.warning("redis {url} unreachable: routing falls back, forwarding goes on; retrying", {
          event: "redis_lost",
          url,
        });
      }
    });
    connection.onError((e) => log.debug("redis error: {error}", { event: "redis_error", error: e.message }));
    const { control } = options;
    const channel = config.redis.disconnectChannel;
    this.disconnects = channel === ""
      ? null
      : new DisconnectChannel(connection, channel, async (client) => await control.disconnect(client), log);
    const fleet = config.fleet;
    if (fleet.instance === "") {
      this.fleet = null;
    } else {
      const timeout = Math.max(config.redis.timeout, FLEET_TIMEOUT_MS);
      const status = () => heartbeatStatus(control, fleet.instance);
      const heartbeat = new Heartbeat(connection, fleet, status, timeout, log);
      this.fleet = new Fleet(
        connection,
        fleet,
        control,
        heartbeat,
        timeout,
        log,
      );
      if (control.protection !== undefined) {
        this.bans = new FleetBans(connection, fleet, control.protection, Date.now, timeout, log);
      }
    }
  }

  /** The connection's figures with the disconnect and fleet counts (routing counts come from the relays). */
  metrics(): RedisMetrics {
    return {
      ...connectionMetrics(this.connection),
      disconnects: { ...(this.disconnects?.counts ?? { closed: 0, ignored: 0 }) },
      fleetChanges: { ...(this.fleet?.counts ?? { applied: 0, rejected: 0 }) },
    };
  }

  /** After a config change: changes to `[redis]` and `[fleet]` take effect at the next start; say so. */
  configApplied(config: FerryConfig): void {
    const next = settingsOf(config);
    const changed = next !== this.#applied;
    this.#applied = next;
    if (!changed || next === this.#settings) return;
    this.#log.warning("[redis] and [fleet] changes take effect at the next start", {
      event: "redis_settings_unchanged",
    });
  }

  /** After a reload from the file: the fleet's state goes back over the file's backends. */
  reloaded(): void {
    this.fleet?.refresh();
  }

  /** Leaves the fleet (its heartbeat is removed) and closes the connection. */
  async close(): Promise<void> {
    this.bans?.stop();
    await this.fleet?.stop();
    this.connection.close();
  }
}
