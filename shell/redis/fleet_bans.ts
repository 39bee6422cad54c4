/**
 * Bans shared by the fleet: the hash `<prefix>:bans` (field: canonical CIDR; value: JSON `{ reason,
 * expiresAt, instance }`, expiresAt in epoch ms or null) holds every fleet ban, and each change is
 * announced on the channel `<prefix>:bans` as JSON `{ instance, op: "add" | "remove", cidr, reason,
 * expiresAt }`. Every instance applies what it hears to its own ban tables (origin "fleet"), so a ban
 * placed on one instance is enforced on all as fast as pub/sub delivers (well within a second), and
 * lapses everywhere at the same wall-clock time. An instance that starts or reconnects loads the hash and
 * deletes fields that have lapsed. Automatic bans are collected from the relays every `AUTO_BAN_POLL_MS`
 * and shared the same way.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { BanInfo, BanInput, ProtectionControl } from "../../core/protection_api.ts";
import { canonicalCidr } from "../../core/ban_table.ts";
import type { FleetSettings } from "../../core/types.ts";
import type { RedisConnection } from "./connection.ts";

/** How often automatic bans are collected from the relays and shared. */
export const AUTO_BAN_POLL_MS = 250;
/** Longest reason kept in a fleet message. */
const MAX_REASON = 200;

/** A fleet ban as the hash and the channel carry it. */
interface FleetBanValue {
  readonly reason: string;
  readonly expiresAt: number | null;
  readonly instance: string;
}

interface FleetBanMessage extends FleetBanValue {
  readonly op: "add" | "remove";
  readonly cidr: string;
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Parses a channel message or hash value; null when it is not one. */
function parseMessage(text: string): Partial<FleetBanMessage> | null {
  try {
    const v = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

/** This instance's part in the fleet's bans. */
export class FleetBans {
  /** Fleet bans applied here, and messages or values refused (malformed). */
  readonly counts = { applied: 0, rejected: 0 };
  readonly #connection: RedisConnection;
  readonly #settings: FleetSettings;
  readonly #local: ProtectionControl;
  readonly #wall: () => number;
  readonly #timeout: number;
  readonly #log: Logger;
  readonly #timer: ReturnType<typeof setInterval>;
  #queue: Promise<void> = Promise.resolve();

  /**
   * Subscribes to the bans channel, loads the hash at every (re)connect and starts collecting automatic
   * bans from `local` (the relays' protection control).
   */
  constructor(
    connection: RedisConnection,
    settings: FleetSettings,
    local: ProtectionControl,
    wall: () => number,
    timeout: number,
    logger: Logger,
  ) {
    this.#connection = connection;
    this.#settings = settings;
    this.#local = local;
    this.#wall = wall;
    this.#timeout = timeout;
    this.#log = logger;
    const sub = connection.subscriber;
    const key = this.#key;
    sub.on("message", (ch: string, message: string) => {
      if (ch === key) this.#enqueue(() => this.#heard(message));
    });
    sub.subscribe(key).catch(() => {});
    connection.onReady(() => this.#enqueue(() => this.loadAll()));
    this.#timer = setInterval(() => this.#enqueue(() => this.#shareAutoBans()), AUTO_BAN_POLL_MS);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /** The hash and the channel share one name: a key and a channel never collide in Redis. */
  get #key(): string {
    return `${this.#settings.prefix}:bans`;
  }

  #enqueue(task: () => Promise<void>): void {
    this.#queue = this.#queue.then(task).catch((e) => {
      this.#log.error("fleet ban update failed: {error}", { event: "fleet_ban_failed", error: reason(e) });
    });
  }

  /** Waits until everything heard so far is applied (for tests and shutdown). */
  settled(): Promise<void> {
    return this.#queue;
  }

  /** `local` with adds and removals also shared with the fleet: what the admin API uses. */
  shared(): ProtectionControl {
    const local = this.#local;
    return {
      bans: () => local.bans(),
      top: (n, reset) => local.top(n, reset),
      metrics: () => local.metrics(),
      takeAutoBans: () => local.takeAutoBans(),
      // The local change stands whether or not Redis takes it (a ban must not wait for Redis): a failed
      // share is logged, and the other instances get the ban when it is placed again.
      addBan: async (ban: BanInput) => {
        const placed = await local.addBan(ban);
        await this.share(placed).catch((e) => this.#unshared("ban of " + placed.cidr, e));
        return placed;
      },
      removeBan: async (cidr: string) => {
        const removed = await local.removeBan(cidr);
        await this.unshare(canonicalCidr(cidr) ?? cidr).catch((e) => this.#unshared("lifting of " + cidr, e));
        return removed;
      },
    };
  }

  #unshared(what: string, e: unknown): void {
    this.#log.warning("{what} not shared with the fleet: {error}", {
      event: "fleet_ban_unshared",
      what,
      error: reason(e),
    });
  }

  /** Writes a ban placed here to the hash and announces it. Rejects when Redis cannot take it. */
  async share(ban: BanInfo): Promise<void> {
    const value: FleetBanValue = {
      reason: ban.reason.slice(0, MAX_REASON),
      expiresAt: ban.expiresAt === null ? null : Date.parse(ban.expiresAt),
      instance: this.#settings.instance,
    };
    const message: FleetBanMessage = { ...value, op: "add", cidr: ban.cidr };
    await this.#connection.run(
      (c) =>
        c.multi().hset(this.#key, ban.cidr, JSON.stringify(value)).publish(this.#key, JSON.stringify(message))
          .exec(),
      this.#timeout,
    );
  }

  /** Removes a ban from the hash and announces it. */
  async unshare(cidr: string): Promise<void> {
    const message = { op: "remove", cidr, instance: this.#settings.instance };
    await this.#connection.run(
      (c) => c.multi().hdel(this.#key, cidr).publish(this.#key, JSON.stringify(message)).exec(),
      this.#timeout,
    );
  }

  async #shareAutoBans(): Promise<void> {
    const bans = await this.#local.takeAutoBans();
    for (const ban of bans) {
      this.#log.warning("source {cidr} banned automatically: {reason}", {
        event: "auto_ban",
        cidr: ban.cidr,
        reason: ban.reason,
        ttl: ban.ttlSeconds,
      });
      try {
        await this.share(ban);
      } catch (e) {
        this.#log.warning("automatic ban of {cidr} not shared: {error}", {
          cidr: ban.cidr,
          error: reason(e),
        });
      }
    }
  }

  /** Loads every fleet ban, deleting lapsed ones. Never rejects. */
  async loadAll(): Promise<void> {
    let all: Record<string, string>;
    try {
      all = await this.#connection.run((c) => c.hgetall(this.#key), this.#timeout);
    } catch (e) {
      this.#log.warning("fleet bans not loaded: {error}", {
        event: "fleet_bans_load_failed",
        error: reason(e),
      });
      return;
    }
    for (const [cidr, text] of Object.entries(all)) {
      const v = parseMessage(text);
      if (v !== null && typeof v.expiresAt === "number" && v.expiresAt <= this.#wall()) {
        await this.#connection.run((c) => c.hdel(this.#key, cidr), this.#timeout).catch(() => {});
        continue;
      }
      await this.#apply({ ...(v ?? {}), op: "add", cidr });
    }
  }

  async #heard(text: string): Promise<void> {
    const m = parseMessage(text);
    if (m === null) {
      this.counts.rejected++;
      return;
    }
    // The instance that placed the ban has it already (with its own origin and hit count).
    if (m.instance === this.#settings.instance) return;
    await this.#apply(m);
  }

  async #apply(m: Partial<FleetBanMessage>): Promise<void> {
    if (typeof m.cidr !== "string" || m.cidr.length > 64) {
      this.counts.rejected++;
      return;
    }
    if (m.op === "remove") {
      await this.#local.removeBan(m.cidr);
      this.counts.applied++;
      return;
    }
    const expiresAt = m.expiresAt ?? null;
    if (m.op !== "add" || (expiresAt !== null && typeof expiresAt !== "number")) {
      this.counts.rejected++;
      return;
    }
    const ttlMs = expiresAt === null ? 0 : expiresAt - this.#wall();
    if (expiresAt !== null && ttlMs <= 0) return; // lapsed on the way
    const text = typeof m.reason === "string" ? m.reason.slice(0, MAX_REASON) : "";
    try {
      await this.#local.addBan({ cidr: m.cidr, ttlMs, reason: text, origin: "fleet" });
      this.counts.applied++;
    } catch (e) {
      this.counts.rejected++;
      this.#log.warning("fleet ban {cidr} rejected: {error}", { cidr: m.cidr, error: reason(e) });
    }
  }

  /** Stops collecting automatic bans. */
  stop(): void {
    clearInterval(this.#timer);
  }
}
