/**
 * The part of the control interface edge protection adds: bans (list, add, remove) and the top-talker
 * summaries. A shell implements it over one relay or over its workers; the admin routes only see this.
 *
 * @module
 */

import type { Awaitable } from "./control_api.ts";

/** A ban as the API lists it. Times are wall-clock ISO 8601. */
export interface BanInfo {
  /** Canonical block, e.g. "203.0.113.0/24". */
  readonly cidr: string;
  readonly reason: string;
  /** "api", "auto" (a source stayed over a limit) or "fleet" (another instance placed it). */
  readonly origin: string;
  readonly createdAt: string;
  /** Null = until removed. */
  readonly expiresAt: string | null;
  /** Seconds left, or null. */
  readonly ttlSeconds: number | null;
  /** New flows and connections it refused (summed over workers). */
  readonly hits: number;
}

/** A ban to place. */
export interface BanInput {
  readonly cidr: string;
  /** Lifetime in ms; 0 = until removed. */
  readonly ttlMs: number;
  readonly reason: string;
  /** Who placed it; default "api". */
  readonly origin?: "api" | "fleet";
}

/** One source in a top-talker summary: its estimated count and the most it may overstate the truth by. */
export interface TopEntry {
  readonly source: string;
  readonly count: number;
  readonly error: number;
}

/** One ranking of `GET /top`. */
export interface TopRanking {
  /** Total weight seen since the reset (datagrams, bytes, flows or drops). */
  readonly total: number;
  /** No reported count exceeds the true one by more than this (≤ total / capacity). */
  readonly maxError: number;
  readonly top: readonly TopEntry[];
}

/** `GET /top`: the four rankings. */
export interface TopSnapshot {
  /** When counting began (the last reset, or the start). */
  readonly since: string;
  /** Sources each summary tracks; counts over total / capacity are always listed. */
  readonly capacity: number;
  readonly datagrams: TopRanking;
  readonly bytes: TopRanking;
  readonly flows: TopRanking;
  readonly drops: TopRanking;
}

/** Protection figures for /metrics. */
export interface ProtectionMetrics {
  /** Bans in force. */
  readonly bans: number;
  /** Automatic bans placed since start. */
  readonly autoBans: number;
  /** Sources forgotten by the limiter tables to make room (sign the tables are too small). */
  readonly limiterEvictions: number;
}

/** What the admin API may do about protection. */
export interface ProtectionControl {
  bans(): Awaitable<BanInfo[]>;
  /** Places (or replaces) a ban; returns it. The caller validated the CIDR. */
  addBan(ban: BanInput): Awaitable<BanInfo>;
  /** Lifts the ban on exactly this block; false when there was none. */
  removeBan(cidr: string): Awaitable<boolean>;
  /** The `n` top sources of each ranking; with `reset`, then starts counting afresh. */
  top(n: number, reset: boolean): Awaitable<TopSnapshot>;
  metrics(): Awaitable<ProtectionMetrics>;
  /** Automatic bans placed since the last call (to log and share with the fleet). */
  takeAutoBans(): Awaitable<BanInfo[]>;
}
