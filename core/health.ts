/**
 * Backend health: the verdicts of active probes (rise/fall) and of passive detection (max_fails within
 * fail_timeout, as nginx does), folded into one up/down status per backend. Pure: the shell runs the
 * probes and reports their outcome with the time; this module only decides.
 *
 * Rules:
 * - A probe success raises the success streak and clears the failure streak (and the reverse for a
 *   failure). `rise` successes in a row bring a down backend up; `fall` failures in a row take an up one down.
 * - Passive failures (a refused send, a failed or timed-out TCP connect) are counted in a sliding window of
 *   `fail_timeout`; `max_fails` of them take an up backend down for `fail_timeout` (0 disables this).
 * - A passively downed backend comes back when probes bring it up (`rise`), or when its window ends,
 *   unless the probes themselves have since judged it down.
 *
 * @module
 */

import type { DnsProbeSettings } from "./dns_message.ts";

/** What a UDP or TCP probe reply must look like. */
export type HealthExpect =
  | { readonly kind: "exact"; readonly bytes: Uint8Array }
  | { readonly kind: "prefix"; readonly bytes: Uint8Array }
  | { readonly kind: "regex"; readonly source: string };

/** A cluster's health settings, validated. Times in ms. */
export interface HealthSettings {
  readonly mode: "off" | "udp" | "tcp" | "dns";
  readonly interval: number;
  readonly timeout: number;
  readonly rise: number;
  readonly fall: number;
  /** Up to this much random delay added to each interval, so many backends do not fire together. */
  readonly jitter: number;
  /** The probe payload (udp: required; tcp: optional). */
  readonly send: Uint8Array | null;
  /** The reply the probe needs (udp: optional, any reply passes without; tcp: optional). */
  readonly expect: HealthExpect | null;
  /** The port to probe; 0 = the backend's own. */
  readonly port: number;
  /** Passive failures within `failTimeout` that take a backend down (0 = passive detection off). */
  readonly maxFails: number;
  readonly failTimeout: number;
  /** Close a backend's flows when it goes down (default: pinned flows stay). */
  readonly closeFlowsOnDown: boolean;
  /** mode "dns": the query and how its reply is judged (core/dns_message.ts); absent = its defaults. */
  readonly dns?: DnsProbeSettings;
}

/** Health checks off, passive detection as nginx's defaults (1 failure within 10 s). */
export const DEFAULT_HEALTH: HealthSettings = {
  mode: "off",
  interval: 5000,
  timeout: 2000,
  rise: 2,
  fall: 3,
  jitter: 1000,
  send: null,
  expect: null,
  port: 0,
  maxFails: 1,
  failTimeout: 10_000,
  closeFlowsOnDown: false,
};

/** A status change, reported once per transition. */
export interface HealthChange {
  readonly from: "up" | "down";
  readonly to: "up" | "down";
  /** Why, for the log line: "3 failed probes: timeout", "1 passive failure in 10000 ms: refused", ... */
  readonly reason: string;
}

/** One backend's health record. */
export class BackendHealth {
  status: "up" | "down" = "up";
  /** When the status last changed (ms, the core's clock); the admission time at first. */
  changedAt: number;
  lastError: string | null = null;
  okStreak = 0;
  failStreak = 0;
  /** While passively downed: when the window ends; -1 otherwise. */
  passiveUntil = -1;
  /** Status changes so far. */
  transitions = 0;
  #fails: number[] = [];

  /** A record starting up at `now`. */
  constructor(now: number) {
    this.changedAt = now;
  }

  /** An active probe finished: `error` is null on success. Returns the change, if any. */
  probe(error: string | null, now: number, s: HealthSettings): HealthChange | null {
    if (error === null) {
      this.okStreak++;
      this.failStreak = 0;
      if (this.status === "down" && this.okStreak >= s.rise) {
        this.passiveUntil = -1;
        return this.#set("up", now, `${this.okStreak} successful probes`);
      }
      return null;
    }
    this.lastError = error;
    this.failStreak++;
    this.okStreak = 0;
    if (this.status === "up" && this.failStreak >= s.fall) {
      return this.#set("down", now, `${this.failStreak} failed probes: ${error}`);
    }
    return null;
  }

  /** A passive failure (refused send, failed connect). Returns the change, if any. */
  passive(error: string, now: number, s: HealthSettings): HealthChange | null {
    this.lastError = error;
    if (s.maxFails === 0) return null;
    const fails = this.#fails;
    fails.push(now);
    const horizon = now - s.failTimeout;
    let drop = 0;
    while (drop < fails.length && fails[drop] <= horizon) drop++;
    if (drop > 0) fails.splice(0, drop);
    if (this.status !== "up" || fails.length < s.maxFails) return null;
    const n = fails.length;
    fails.length = 0;
    this.passiveUntil = now + s.failTimeout;
    return this.#set(
      "down",
      now,
      `${n} passive failure${n === 1 ? "" : "s"} within ${s.failTimeout} ms: ${error}`,
    );
  }

  /** Ends a passive window that is over, unless the probes judge the backend down. Returns the change. */
  expire(now: number, s: HealthSettings): HealthChange | null {
    if (this.passiveUntil < 0 || now < this.passiveUntil) return null;
    this.passiveUntil = -1;
    if (this.status !== "down" || (s.mode !== "off" && this.failStreak >= s.fall)) return null;
    return this.#set("up", now, `passive window of ${s.failTimeout} ms ended`);
  }

  #set(to: "up" | "down", now: number, reason: string): HealthChange {
    const from = this.status;
    this.status = to;
    this.changedAt = now;
    this.transitions++;
    return { from, to, reason };
  }
}

/** Whether a probe reply satisfies `expect` (a regex is matched over the reply read as Latin-1). */
export function matchesExpect(expect: HealthExpect | null, reply: Uint8Array): boolean {
  if (expect === null) return true;
  if (expect.kind === "regex") {
    let text = "";
    for (let i = 0; i < reply.length; i++) text += String.fromCharCode(reply[i]);
    return new RegExp(expect.source).test(text);
  }
  const want = expect.bytes;
  if (expect.kind === "exact" ? reply.length !== want.length : reply.length < want.length) return false;
  for (let i = 0; i < want.length; i++) if (reply[i] !== want[i]) return false;
  return true;
}

/** Decodes probe text with escapes (\xNN, \n, \r, \t, \0, \\), or returns why it cannot. */
export function decodeEscaped(text: string): Uint8Array | string {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) return `character "${text[i]}" is outside Latin-1: write it as \\xNN bytes`;
    if (text[i] !== "\\") {
      out.push(c);
      continue;
    }
    const e = text[++i];
    if (e === "x") {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return `bad escape "\\x${hex}" (expected \\xNN)`;
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (e === "n") out.push(10);
    else if (e === "r") out.push(13);
    else if (e === "t") out.push(9);
    else if (e === "0") out.push(0);
    else if (e === "\\") out.push(92);
    else return `unknown escape "\\${e ?? ""}" (use \\xNN, \\n, \\r, \\t, \\0 or \\\\)`;
  }
  return new Uint8Array(out);
}

/** Encodes bytes as probe text: printable ASCII as is (backslash doubled), everything else as \xNN. */
export function encodeEscaped(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) {
    if (b === 92) out += "\\\\";
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return out;
}

/**
 * Decodes hex bytes ("ffff0a"; an optional 0x, and spaces, ":", "_" or "-" between digits allowed), or
 * returns why it cannot. The one hex reader of the config (health payloads, first-datagram filters).
 */
export function decodeHex(text: string): Uint8Array | string {
  const clean = text.trim().replace(/^0x/i, "").replace(/[\s:_-]/g, "");
  if (!/^[0-9a-fA-F]*$/.test(clean)) return `"${text}" is not hex`;
  if (clean.length % 2 !== 0) return `"${text}" has an odd number of hex digits`;
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}
