/**
 * Fleet state: the backends of clusters changed with `?scope=fleet` live in the hash `<prefix>:clusters`
 * (field: cluster name; value: JSON `[{ "address", "weight", "state" }]`), and each change is announced on
 * `<prefix>:changes` with the cluster's name. Every instance applies what it hears by replacing that
 * cluster's backends in its running config (validated as a config file would be: a bad value in Redis is
 * counted, logged and changes nothing). An instance that starts or reconnects loads the whole hash first.
 *
 * Fleet changes are runtime changes: they are not written to any instance's config file (Redis holds
 * them, and every start loads them again). Clusters an instance does not have are left alone.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { formatSocketAddress } from "../../core/address.ts";
import type { FerryConfig, FleetSettings } from "../../core/types.ts";
import type { Control, FleetAccess, FleetInstance } from "../../core/control_api.ts";
import { EditError, replaceConfig } from "../../core/config_edits.ts";
import { isTable, own, toRaw } from "../../core/config_raw.ts";
import type { RedisConnection } from "./connection.ts";
import type { Heartbeat } from "./heartbeat.ts";

/** A backend as the fleet hash stores it. */
export interface FleetBackend {
  /** "ip:port" */
  readonly address: string;
  readonly weight: number;
  readonly state: string;
}

/** The fleet hash's value for `cluster` as `config` has it, or null if there is no such cluster. */
export function fleetValue(config: FerryConfig, cluster: string): string | null {
  const cl = config.clusters.find((c) => c.name === cluster);
  if (cl === undefined) return null;
  const list: FleetBackend[] = cl.backends.map((b) => ({
    address: formatSocketAddress(b.address),
    weight: b.weight,
    state: b.state,
  }));
  return JSON.stringify(list);
}

const BACKEND_KEYS = ["address", "weight", "state"];

/**
 * `config` with `cluster`'s backends replaced by the fleet hash's `value`, validated whole; throws an
 * Error saying what is wrong (and nothing changes) when the value is not a list of backends.
 */
export function withFleetBackends(config: FerryConfig, cluster: string, value: string): FerryConfig {
  let list: unknown;
  try {
    list = JSON.parse(value);
  } catch {
    throw new Error("not JSON");
  }
  if (!Array.isArray(list)) throw new Error("not a JSON list of backends");
  list.forEach((b, i) => {
    if (!isTable(b)) throw new Error(`backend ${i} is not an object`);
    const extra = Object.keys(b).find((k) => !BACKEND_KEYS.includes(k));
    if (extra !== undefined) throw new Error(`backend ${i} has an unknown key ${JSON.stringify(extra)}`);
  });
  const raw = toRaw(config);
  const cl = own(raw.clusters, cluster);
  if (!isTable(cl)) throw new Error(`no cluster ${JSON.stringify(cluster)}`);
  cl.backends = list;
  return replaceConfig(raw, `fleet backends of cluster "${cluster}"`);
}

/** The change would change nothing (the instance that made it hears its own announcement). */
class Unchanged extends Error {}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** This instance's part in the fleet. */
export class Fleet implements FleetAccess {
  /** Changes received: applied, or rejected (nothing changed). */
  readonly counts = { applied: 0, rejected: 0 };
  /** This instance's name. */
  readonly instance: string;
  readonly #connection: RedisConnection;
  readonly #settings: FleetSettings;
  readonly #control: Control;
  readonly #heartbeat: Heartbeat;
  readonly #timeout: number;
  readonly #log: Logger;
  /** Received changes, one after another: two quick changes of one cluster must apply in order. */
  #queue: Promise<void> = Promise.resolve();

  /**
   * Joins the fleet: subscribes to the changes channel, loads the fleet state at every (re)connect, then
   * beats. Changes are applied through `control`, whose one queue every change of the process takes
   * turns in, so none is lost to a race.
   */
  constructor(
    connection: RedisConnection,
    settings: FleetSettings,
    control: Control,
    heartbeat: Heartbeat,
    timeout: number,
    logger: Logger,
  ) {
    this.instance = settings.instance;
    this.#connection = connection;
    this.#settings = settings;
    this.#control = control;
    this.#heartbeat = heartbeat;
    this.#timeout = timeout;
    this.#log = logger;
    const channel = this.#channel;
    const sub = connection.subscriber;
    sub.on("message", (ch: string, message: string) => {
      if (ch === channel) this.#enqueue(() => this.#fetch(message));
    });
    sub.subscribe(channel).catch(() => {});
    connection.onReady(() => {
      this.#enqueue(() => this.loadAll());
      this.#enqueue(() => this.#heartbeat.beat());
    });
    heartbeat.start();
  }

  get #hash(): string {
    return `${this.#settings.prefix}:clusters`;
  }

  get #channel(): string {
    return `${this.#settings.prefix}:changes`;
  }

  connected(): boolean {
    return this.#connection.stats.connected;
  }

  async publish(cluster: string, config: FerryConfig): Promise<void> {
    const value = fleetValue(config, cluster);
    if (value === null) throw new Error(`no cluster ${JSON.stringify(cluster)}`);
    await this.#connection.run(
      (c) => c.multi().hset(this.#hash, cluster, value).publish(this.#channel, cluster).exec(),
      this.#timeout,
    );
    this.#log.info("fleet change of cluster {cluster} shared", { event: "fleet_published", cluster });
  }

  instances(): Promise<FleetInstance[]> {
    return this.#heartbeat.instances();
  }

  /** Waits until every change received so far is applied (for tests and shutdown). */
  settled(): Promise<void> {
    return this.#queue;
  }

  #enqueue(task: () => Promise<void>): void {
    this.#queue = this.#queue.then(task).catch((e) => {
      this.#log.error("fleet update failed: {error}", { event: "fleet_failed", error: reason(e) });
    });
  }

  /** Loads the fleet state again in turn (after a reload put the file's backends back). */
  refresh(): void {
    this.#enqueue(() => this.loadAll());
  }

  /** Loads every cluster of the fleet hash that this instance has. Never rejects. */
  async loadAll(): Promise<void> {
    let all: Record<string, string>;
    try {
      all = await this.#connection.run((c) => c.hgetall(this.#hash), this.#timeout);
    } catch (e) {
      // The next reconnect loads it again.
      this.#log.warning("fleet state not loaded: {error}", { event: "fleet_load_failed", error: reason(e) });
      return;
    }
    for (const [cluster, value] of Object.entries(all)) await this.apply(cluster, value);
  }

  /** An announcement: reads the cluster's current value (not a copy in the message: the latest wins). */
  async #fetch(message: string): Promise<void> {
    const cluster = message.trim();
    if (cluster === "" || cluster.length > 256) return;
    let value: string | null;
    try {
      value = await this.#connection.run((c) => c.hget(this.#hash, cluster), this.#timeout);
    } catch (e) {
      this.#log.warning("fleet change of cluster {cluster} not read: {error}; loaded at the next reconnect", {
        event: "fleet_load_failed",
        cluster,
        error: reason(e),
      });
      return;
    }
    if (value !== null) await this.apply(cluster, value);
  }

  /**
   * Applies the fleet's `value` for `cluster`: counted as applied, or rejected (logged; nothing changes).
   * A cluster this instance lacks, or a value equal to what runs, is left alone. Never rejects.
   */
  async apply(cluster: string, value: string): Promise<void> {
    if (!this.#control.config().clusters.some((c) => c.name === cluster)) {
      this.#log.debug("fleet change of cluster {cluster} ignored: no such cluster here", { cluster });
      return;
    }
    try {
      const r = await this.#control.change({
        source: "fleet",
        persist: false,
        edit: (config) => {
          const next = withFleetBackends(config, cluster, value);
          if (fleetValue(next, cluster) === fleetValue(config, cluster)) throw new Unchanged();
          return next;
        },
      });
      if (!r.ok) throw new EditError("invalid", "the relay could not apply it", r.errors);
    } catch (e) {
      if (e instanceof Unchanged) return;
      this.counts.rejected++;
      const detail = e instanceof EditError && e.errors.length > 0
        ? e.errors.map((x) => `${x.path}: ${x.message}`).join("; ")
        : reason(e);
      this.#log.warning("fleet change of cluster {cluster} rejected: {error}; nothing was changed", {
        event: "fleet_rejected",
        cluster,
        error: detail,
        value: value.slice(0, 200),
      });
      return;
    }
    this.counts.applied++;
    this.#log.info("fleet change of cluster {cluster} applied", { event: "fleet_applied", cluster });
  }

  /** Stops beating and removes this instance's heartbeat. */
  async stop(): Promise<void> {
    await this.#heartbeat.stop();
  }
}
