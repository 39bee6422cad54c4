/**
 * Reference models of edge protection for the protection simulation (tests/simulation_protection.test.ts):
 * token buckets kept in an unbounded Map keyed by the source's text, bans as a list scanned with
 * `cidrContains`, and the first-datagram rule evaluated byte by byte. Deliberately naive: they share no code
 * with core/bucket_table.ts, core/ban_table.ts or core/first_datagram_filter.ts beyond address parsing.
 *
 * @module
 */

import {
  type Cidr,
  cidrContains,
  formatIp,
  type IpAddress,
  parseCidr,
  parseIp,
  unmapIpv4,
} from "../../core/address.ts";
import type { FirstDatagramRule } from "../../core/first_datagram_filter.ts";
import { BUCKET_ENTRY_BYTES } from "../../core/bucket_table.ts";
import type { LimitsConfig, ListenerProtection, SourceRates } from "../../core/protection.ts";

/** A source as the protection sees it: an IPv4-mapped address is the IPv4 client inside it. */
export function sourceAddress(ip: string): IpAddress {
  let a = parsed.get(ip);
  if (a === undefined) {
    // A zone ("%eth0") names an interface, not another source: the core ignores it too.
    const p = parseIp(ip.includes("%") ? ip.slice(0, ip.indexOf("%")) : ip);
    if (p === null) throw new Error(`model: ${ip} is no IP`);
    a = unmapIpv4(p);
    if (parsed.size > 4096) parsed.clear();
    parsed.set(ip, a);
  }
  return a;
}

/** Parsed sources (the simulations ask about the same few thousand again and again); never mutated. */
const parsed = new Map<string, IpAddress>();

/** `a` masked to its first `bits` bits. */
function masked(a: IpAddress, bits: number): IpAddress {
  const bytes = a.bytes.slice();
  for (let i = 0; i < bytes.length; i++) {
    const keep = bits - i * 8;
    bytes[i] = keep >= 8 ? bytes[i] : keep <= 0 ? 0 : bytes[i] & ((0xff << (8 - keep)) & 0xff);
  }
  return { family: a.family, bytes };
}

/** The canonical text of the block of `bits` bits holding `a`. */
export function blockText(a: IpAddress, bits: number): string {
  return `${formatIp(masked(a, bits))}/${bits}`;
}

// ---- token buckets ----------------------------------------------------------------------------------------

interface Rate {
  readonly rate: number;
  readonly burst: number;
}

interface ModelBucket {
  /** New flows, datagrams, bytes; NaN when that limit is off. */
  readonly tokens: number[];
  last: number;
  overSince: number;
}

/** What a model take decided: "" = within every limit, else the limit that refused, and for how long. */
export interface ModelVerdict {
  readonly refused: "" | "new_flows" | "datagrams" | "bytes";
  readonly overForMs: number;
}

/** One table of buckets (per IP or per prefix), one bucket per source key, never forgetting one. */
export class ModelBuckets {
  readonly rates: readonly (Rate | null)[];
  readonly #buckets = new Map<string, ModelBucket>();

  constructor(rates: SourceRates, burstMs: number) {
    const rate = (r: number): Rate | null =>
      r > 0 ? { rate: r, burst: Math.max(1, (r * burstMs) / 1000) } : null;
    this.rates = [rate(rates.newFlows), rate(rates.datagrams), rate(rates.bytes)];
  }

  /** Whether any of the three limits is on (the core builds no table otherwise). */
  get on(): boolean {
    return this.rates.some((r) => r !== null);
  }

  /** Charges one datagram of `size` (and a new flow when `newFlow`) to `key` if every limit allows it. */
  take(key: string, newFlow: boolean, size: number, now: number): ModelVerdict {
    let b = this.#buckets.get(key);
    if (b === undefined) {
      b = { tokens: this.rates.map((r) => r === null ? NaN : r.burst), last: now, overSince: -1 };
      this.#buckets.set(key, b);
    }
    const elapsed = now - b.last;
    b.last = now;
    for (let i = 0; i < 3; i++) {
      const r = this.rates[i];
      if (r === null || !(elapsed > 0)) continue;
      b.tokens[i] = Math.min(r.burst, b.tokens[i] + elapsed * r.rate / 1000);
    }
    const [f, d, by] = b.tokens;
    const refused = newFlow && f < 1 ? "new_flows" : d < 1 ? "datagrams" : by < size ? "bytes" : "";
    if (refused !== "") {
      if (b.overSince < 0) b.overSince = now;
      return { refused, overForMs: now - b.overSince };
    }
    b.overSince = -1;
    if (newFlow && this.rates[0] !== null) b.tokens[0] -= 1;
    if (this.rates[1] !== null) b.tokens[1] -= 1;
    if (this.rates[2] !== null) b.tokens[2] -= size;
    return { refused: "", overForMs: 0 };
  }

  /** Distinct keys seen (the model forgets none). */
  get size(): number {
    return this.#buckets.size;
  }
}

/** A ban the model asks for when a source stayed over a limit for ban_after. */
export interface ModelAutoBan {
  readonly cidr: string;
  readonly expiresAt: number;
}

/** A listener's limits: the per-IP table, then the per-prefix one, as the core checks them. */
export class ModelLimits {
  readonly perIp: ModelBuckets;
  readonly perPrefix: ModelBuckets;

  constructor(readonly config: LimitsConfig) {
    this.perIp = new ModelBuckets(config.perIp, config.burstMs);
    this.perPrefix = new ModelBuckets(config.perPrefix, config.burstMs);
  }

  /** True when established flows' datagrams are charged (a datagram or byte rate is on). */
  get chargesEstablished(): boolean {
    const c = this.config;
    return c.perIp.datagrams > 0 || c.perIp.bytes > 0 || c.perPrefix.datagrams > 0 || c.perPrefix.bytes > 0;
  }

  /** Null when within the limits, else the automatic ban due (or null inside it when none is). */
  check(ip: string, newFlow: boolean, size: number, now: number): { ban: ModelAutoBan | null } | null {
    const a = sourceAddress(ip);
    const c = this.config;
    const tables: [ModelBuckets, number][] = [
      [this.perIp, a.family === 4 ? 32 : 128],
      [this.perPrefix, a.family === 4 ? c.prefixV4 : c.prefixV6],
    ];
    for (const [table, bits] of tables) {
      if (!table.on) continue;
      const v = table.take(blockText(a, bits), newFlow, size, now);
      if (v.refused === "") continue;
      const due = c.banAfterMs > 0 && v.overForMs >= c.banAfterMs;
      return { ban: due ? { cidr: blockText(a, bits), expiresAt: now + c.banForMs } : null };
    }
    return null;
  }
}

/**
 * Units a limiter let through per key over time, checked against what a token bucket guarantees whatever
 * its state: in any window of T ms at most burst + rate × T (+ `slack`). Keeps each key's last 48 entries;
 * windows starting at kept entries are complete, so the check stays sound.
 */
export class WindowLedger {
  readonly #entries = new Map<string, [number, number][]>();

  /** Records `weight` units for `key` at `now`; returns what broke when some window holds too many. */
  record(
    key: string,
    weight: number,
    now: number,
    rate: number,
    burst: number,
    slack: number,
  ): string | null {
    const list = this.#entries.get(key) ?? [];
    list.push([now, weight]);
    if (list.length > 48) list.shift();
    this.#entries.set(key, list);
    let sum = 0;
    for (let j = list.length - 1; j >= 0; j--) {
      sum += list[j][1];
      const bound = burst + (rate * (now - list[j][0])) / 1000 + slack;
      if (sum > bound + 1e-6) return `${key}: ${sum} since t=${list[j][0]} > bound ${bound}`;
    }
    return null;
  }
}

/** The bytes a protection's limiter tables hold; throws when that is not their entries × 48 B. */
export function limiterMemory(p: ListenerProtection): number {
  const bytes = (p.perIp?.memoryBytes ?? 0) + (p.perPrefix?.memoryBytes ?? 0);
  const entries = (p.perIp?.capacity ?? 0) + (p.perPrefix?.capacity ?? 0);
  if (bytes !== entries * BUCKET_ENTRY_BYTES) {
    throw new Error(`limiter memory ${bytes} for ${entries} entries`);
  }
  return bytes;
}

// ---- bans -------------------------------------------------------------------------------------------------

/** A block as a ban holds it: inside ::ffff:0:0/96 (prefix ≥ 96) it is the IPv4 block it covers. */
export function banBlock(text: string): Cidr {
  const c = parseCidr(text);
  if (typeof c === "string") throw new Error(`model: ${text}: ${c}`);
  const ip = c.prefix >= 96 ? unmapIpv4(c.ip) : c.ip;
  const block = ip.family === c.ip.family ? c : { ip, prefix: c.prefix - 96 };
  return { ip: masked(block.ip, block.prefix), prefix: block.prefix };
}

/** The bans in force, by canonical block. */
export class ModelBans {
  readonly #bans = new Map<string, { block: Cidr; expiresAt: number }>();

  /** Places or replaces a ban (ttl 0 = until removed); returns its canonical block. */
  add(text: string, ttlMs: number, now: number): string {
    const block = banBlock(text);
    const key = `${formatIp(block.ip)}/${block.prefix}`;
    this.#bans.set(key, { block, expiresAt: ttlMs > 0 ? now + ttlMs : Infinity });
    return key;
  }

  /** Places a ban with a known expiry (an automatic one). */
  addUntil(text: string, expiresAt: number): void {
    const block = banBlock(text);
    this.#bans.set(`${formatIp(block.ip)}/${block.prefix}`, { block, expiresAt });
  }

  /** True when a ban on exactly this block is in force at `now`. */
  liveOn(text: string, now: number): boolean {
    const block = banBlock(text);
    return (this.#bans.get(`${formatIp(block.ip)}/${block.prefix}`)?.expiresAt ?? -Infinity) > now;
  }

  /** Lifts the ban on a block (any spelling); true when one was in force. */
  remove(text: string, now: number): boolean {
    const block = banBlock(text);
    const key = `${formatIp(block.ip)}/${block.prefix}`;
    const live = (this.#bans.get(key)?.expiresAt ?? -Infinity) > now;
    this.#bans.delete(key);
    return live;
  }

  /** The canonical blocks of the live bans holding `ip`. */
  holding(ip: string, now: number): string[] {
    const a = sourceAddress(ip);
    const out: string[] = [];
    for (const [key, b] of this.#bans) {
      if (b.expiresAt > now && b.block.ip.family === a.family && cidrContains(b.block, a)) out.push(key);
    }
    return out;
  }

  /** Canonical blocks of the live bans, sorted. */
  live(now: number): string[] {
    return [...this.#bans].filter(([, b]) => b.expiresAt > now).map(([k]) => k).sort();
  }

  /** True when a ban on `ip`'s blocks was in force once and has lapsed by `now`. */
  lapsedFor(ip: string, now: number): boolean {
    const a = sourceAddress(ip);
    for (const b of this.#bans.values()) {
      if (b.expiresAt <= now && b.block.ip.family === a.family && cidrContains(b.block, a)) return true;
    }
    return false;
  }
}

// ---- first-datagram filter ----------------------------------------------------------------------------------

/** The rule evaluated the slow, obvious way. */
export function ruleHolds(rule: FirstDatagramRule, data: Uint8Array): boolean {
  if (data.length < rule.minLength) return false;
  if (rule.maxLength > 0 && data.length > rule.maxLength) return false;
  for (const m of rule.match) {
    for (let i = 0; i < m.bytes.length; i++) {
      const at = m.offset + i;
      if (at >= data.length) return false;
      const mask = m.mask === null ? 0xff : m.mask[i];
      if ((data[at] & mask) !== (m.bytes[i] & mask)) return false;
    }
  }
  if (rule.regex === "") return true;
  let text = "";
  for (let i = 0; i < data.length && i < 512; i++) text += String.fromCharCode(data[i]);
  return new RegExp(rule.regex).test(text);
}
