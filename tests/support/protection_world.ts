/**
 * The world the edge-protection simulation (tests/simulation_protection.test.ts) draws from: a small
 * population of IPv4, IPv6 and IPv4-mapped sources, ban blocks in every spelling, and random
 * `[listeners.limits]`, `[listeners.filter]` and `[listeners.amplification]` settings, from one seeded RNG.
 *
 * @module
 */

import { Drop, type Listener } from "../../core/listener.ts";
import type { BytesAt, FirstDatagramRule } from "../../core/first_datagram_filter.ts";
import type { LimitsConfig, ProtectionConfig } from "../../core/protection.ts";
import type { ListenerConfig } from "../../core/types.ts";
import { Rng } from "../../core/rng.ts";
import { listener } from "./fixtures.ts";

/** The flow limit of listeners with max_flows = 0. */
export const AUTO_MAX_FLOWS = 40;

export const IPS = [
  "192.0.2.1",
  "192.0.2.2",
  "192.0.2.3",
  "::ffff:192.0.2.1",
  "::ffff:192.0.2.4",
  "192.0.3.7",
  "198.51.100.2",
  "::ffff:198.51.100.2",
  "2001:db8::1",
  "2001:db8::2",
  "2001:db8:0:1::9",
  "2001:db8:1::5",
  "fe80::1%eth0", // a zone: the same source as fe80::1
  "224.0.0.5", // multicast: refused by the source policy, after the limits
];
export const PORTS = [1000, 1001, 1002];
export const BAN_BLOCKS = [
  "192.0.2.0/24",
  "192.0.2.1",
  "192.0.2.3/32",
  "::ffff:192.0.2.0/120",
  "::ffff:192.0.2.1/128",
  "192.0.0.0/16",
  "198.51.100.2/32",
  "::ffff:198.51.100.0/120",
  "2001:db8::/32",
  "2001:db8::/64",
  "2001:db8:0:1::/64",
  "2001:db8::1/128",
  "fe80::/64",
  "::/0",
];
export const BAN_TTLS = [0, 30, 300, 3000];
export const ALPHABET = [0x00, 0xff, 0x54, 0x51];
export const REGEXES = ["", "", "", "^\\xff", "Q", "^[\\x00-\\x7f]*$"];
export const NAMES = ["p1", "p2"];
/** Client-side drop reasons: with no external cluster, every client datagram ends in one of these or is in. */
export const CLIENT_DROPS = [
  "truncated",
  "no_backend",
  "invalid",
  "shed",
  "fd_limit",
  "rate_limited",
  "filtered",
  "banned",
];
export const REASON_OF: Record<number, string> = {
  [Drop.Truncated]: "truncated",
  [Drop.Invalid]: "invalid",
  [Drop.Shed]: "shed",
  [Drop.RateLimited]: "rate_limited",
  [Drop.Filtered]: "filtered",
  [Drop.Banned]: "banned",
};

/** Seeded random choices and random protection settings. */
export class ProtectionWorld {
  readonly rng: Rng;
  now = 1_000;
  step = 0;
  /** How often each path was reached, so a test can tell the run exercised it. */
  readonly hits = new Map<string, number>();
  /** The last operations, for a failure message. */
  readonly ring: string[] = [];

  /** A world drawn from `seed`; `trace` prints every operation. */
  constructor(readonly seed: number, readonly trace = false) {
    this.rng = new Rng(Math.imul(seed, 0x2545f491) ^ 0x70726f74);
  }

  hit(key: string): void {
    this.hits.set(key, (this.hits.get(key) ?? 0) + 1);
  }
  label(text: string): void {
    if (this.trace) console.log(`seed ${this.seed} step ${this.step} t=${this.now}: ${text}`);
    this.ring.push(`t=${this.now} ${text}`);
    if (this.ring.length > 12) this.ring.shift();
  }

  int(n: number): number {
    return this.rng.nextInt(n);
  }
  chance(p: number): boolean {
    return this.rng.nextFloat() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.rng.nextInt(items.length)];
  }

  randomLimits(): LimitsConfig {
    const rates = () => ({
      newFlows: this.pick([0, 0, 1, 3, 10]),
      datagrams: this.pick([0, 0, 5, 20, 100]),
      bytes: this.pick([0, 0, 300, 3000, 20_000]),
    });
    return {
      perIp: rates(),
      perPrefix: rates(),
      burstMs: this.pick([200, 1000, 2000]),
      prefixV4: this.pick([16, 24, 28]),
      prefixV6: this.pick([32, 48, 64]),
      tableSize: this.pick([4, 16, 64, 1024, 1024]),
      banAfterMs: this.pick([0, 0, 100, 500]),
      banForMs: this.pick([200, 2000]),
    };
  }

  randomFilter(): FirstDatagramRule {
    const match: BytesAt[] = [];
    for (let i = this.int(3); i > 0; i--) {
      const bytes = Uint8Array.from({ length: 1 + this.int(2) }, () => this.pick(ALPHABET));
      const mask = this.chance(0.3) ? bytes.map(() => this.pick([0xf0, 0x0f, 0xff])) : null;
      match.push({ offset: this.pick([0, 1, 4]), bytes, mask });
    }
    return {
      minLength: this.pick([0, 0, 2, 4]),
      maxLength: this.pick([0, 0, 64, 300]),
      match,
      regex: this.pick(REGEXES),
    };
  }

  randomProtection(): ProtectionConfig {
    return {
      limits: this.chance(0.75) ? this.randomLimits() : null,
      filter: this.chance(0.4) ? this.randomFilter() : null,
      amplification: this.chance(0.5)
        ? { ratio: this.pick([0.5, 1, 3]), datagrams: this.pick([1, 2, 4]) }
        : null,
    };
  }

  randomListener(name: string, i: number): ListenerConfig {
    return listener({
      name,
      address: { ip: "127.0.0.1", port: 7000 + i, family: 4 },
      maxFlows: this.pick([0, 4, 50]),
      protection: this.randomProtection(),
    });
  }

  /** A TCP listener: limits only (the filter and the guard are UDP's). */
  randomTcpListener(name: string): ListenerConfig {
    return listener({
      name,
      protocol: "tcp",
      address: { ip: "127.0.0.1", port: 7100, family: 4 },
      maxFlows: this.pick([0, 4, 50]),
      protection: {
        limits: this.chance(0.8) ? this.randomLimits() : null,
        filter: null,
        amplification: null,
      },
    });
  }

  datagram(l: Listener): Uint8Array {
    const r = this.rng.nextFloat();
    const size = r < 0.03 ? 0 : r < 0.06 ? 1501 : r < 0.15 ? this.int(1501) : 1 + this.int(120);
    // Random bytes where the filter looks (the first few), one filler after them: cheap for long datagrams.
    const data = new Uint8Array(size).fill(this.pick(ALPHABET));
    for (let i = 0; i < size && i < 8; i++) data[i] = this.pick(ALPHABET);
    const rule = l.protection?.filter?.rule;
    if (rule !== undefined && this.chance(0.6)) {
      for (const m of rule.match) {
        for (let i = 0; i < m.bytes.length && m.offset + i < size; i++) data[m.offset + i] = m.bytes[i];
      }
    }
    return data;
  }
}
