/**
 * A listener's edge protection at run time: per-source and per-prefix token buckets, the first-datagram
 * filter and the amplification guard, compiled from its `[listeners.limits]`, `[listeners.filter]` and
 * `[listeners.amplification]` tables. The relay core calls in before it allocates a flow; bans live in the
 * core's `BanTable`, shared by every listener.
 *
 * Pure: time is a parameter; the source text is parsed into scratch words, so a refusal allocates nothing.
 *
 * @module
 */

import { BucketTable, BucketVerdict } from "./bucket_table.ts";
import { type CompiledFilter, compileFilter, type FirstDatagramRule } from "./first_datagram_filter.ts";
import { type IpFamily, prefixHash, readIp } from "./ip_words.ts";

/** Three rates per second; 0 = that one is not limited. */
export interface SourceRates {
  readonly newFlows: number;
  readonly datagrams: number;
  readonly bytes: number;
}

/** `[listeners.limits]`: token buckets per source IP and per source prefix. */
export interface LimitsConfig {
  readonly perIp: SourceRates;
  readonly perPrefix: SourceRates;
  /** How much a bucket banks: `burstMs` worth of its rate (at least one unit). */
  readonly burstMs: number;
  /** Prefix lengths the per-prefix buckets group sources by. */
  readonly prefixV4: number;
  readonly prefixV6: number;
  /** Entries of each bucket table (rounded up to a power of two). */
  readonly tableSize: number;
  /** A source over a limit this long without relief is banned (ms); 0 = never. */
  readonly banAfterMs: number;
  /** How long an automatic ban lasts (ms). */
  readonly banForMs: number;
}

/** `[listeners.amplification]`: until a flow has sent `datagrams` datagrams, replies ≤ `ratio` × its bytes. */
export interface AmplificationConfig {
  readonly ratio: number;
  readonly datagrams: number;
}

/** A listener's protection settings; null parts are off. */
export interface ProtectionConfig {
  readonly limits: LimitsConfig | null;
  readonly filter: FirstDatagramRule | null;
  readonly amplification: AmplificationConfig | null;
  /**
   * Native path: compile deny/allow blocks, bans and (with `all_datagrams`) the filter into a kernel socket
   * filter. Default true; false keeps every check in user space.
   */
  readonly kernelFilter?: boolean;
}

/** What `admit` and `charge` decide. */
export const Verdict = { Ok: 0, RateLimited: 1, Filtered: 2 } as const;
/** One of the Verdict codes. */
export type Verdict = typeof Verdict[keyof typeof Verdict];

/** An automatic ban the protection asks the core to place. */
export interface AutoBan {
  readonly cidr: string;
  readonly ttlMs: number;
  readonly reason: string;
}

function table(size: number, rates: SourceRates, burstMs: number): BucketTable | null {
  const rate = (r: number) => r > 0 ? { rate: r, burst: Math.max(1, (r * burstMs) / 1000) } : null;
  const limits = {
    newFlows: rate(rates.newFlows),
    datagrams: rate(rates.datagrams),
    bytes: rate(rates.bytes),
  };
  if (limits.newFlows === null && limits.datagrams === null && limits.bytes === null) return null;
  return new BucketTable(size, limits);
}

const VERDICT_NAMES = ["", "new_flows", "datagrams", "bytes"] as const;

/** The compiled protection of one listener. */
export class ListenerProtection {
  readonly config: ProtectionConfig;
  readonly perIp: BucketTable | null;
  readonly perPrefix: BucketTable | null;
  readonly filter: CompiledFilter | null;
  readonly amplification: AmplificationConfig | null;
  /** True when established flows' datagrams are charged too (a datagram or byte rate is set). */
  readonly chargesEstablished: boolean;
  /** Set by a refused `admit`/`charge` when the source has been over a limit for `banAfterMs`. */
  pendingBan: AutoBan | null = null;
  readonly #words = new Uint32Array(4);
  readonly #seed: number;

  /** Compiles `config`; `seed` keys the source hashes (so they cannot be aimed at one slot from outside). */
  constructor(config: ProtectionConfig, seed: number) {
    this.config = config;
    this.#seed = seed;
    const l = config.limits;
    this.perIp = l === null ? null : table(l.tableSize, l.perIp, l.burstMs);
    this.perPrefix = l === null ? null : table(l.tableSize, l.perPrefix, l.burstMs);
    this.filter = config.filter === null ? null : compileFilter(config.filter);
    this.amplification = config.amplification;
    const charged = (r: SourceRates) => r.datagrams > 0 || r.bytes > 0;
    this.chargesEstablished = l !== null && (charged(l.perIp) || charged(l.perPrefix));
  }

  /** Checks a would-be new flow's first datagram from `ip` against the limits, then the filter. */
  admit(ip: string, data: Uint8Array, now: number): Verdict {
    if (this.#limit(ip, true, data.byteLength, now) !== Verdict.Ok) return Verdict.RateLimited;
    if (this.filter !== null && !this.filter.test(data)) return Verdict.Filtered;
    return Verdict.Ok;
  }

  /** Charges a datagram of an established flow from `ip` to its source's buckets. */
  charge(ip: string, size: number, now: number): Verdict {
    return this.#limit(ip, false, size, now);
  }

  #limit(ip: string, newFlow: boolean, size: number, now: number): Verdict {
    const ipTable = this.perIp, prefixTable = this.perPrefix;
    if (ipTable === null && prefixTable === null) return Verdict.Ok;
    const w = this.#words;
    const family: IpFamily = readIp(ip, w);
    if (family === 0) return Verdict.Ok; // the source policy refuses unparsable text with its own reason
    const l = this.config.limits as LimitsConfig;
    if (ipTable !== null) {
      const v = ipTable.take(prefixHash(family, w, family === 4 ? 32 : 128, this.#seed), newFlow, size, now);
      if (v !== BucketVerdict.Ok) {
        this.#overLimit(ipTable, ip, family, family === 4 ? 32 : 128, v, l);
        return Verdict.RateLimited;
      }
    }
    if (prefixTable !== null) {
      const bits = family === 4 ? l.prefixV4 : l.prefixV6;
      const v = prefixTable.take(prefixHash(family, w, bits, this.#seed), newFlow, size, now);
      if (v !== BucketVerdict.Ok) {
        this.#overLimit(prefixTable, ip, family, bits, v, l);
        return Verdict.RateLimited;
      }
    }
    return Verdict.Ok;
  }

  /** Asks for a ban once a source has stayed over a limit long enough (builds strings only then). */
  #overLimit(
    t: BucketTable,
    ip: string,
    family: 4 | 6,
    bits: number,
    v: BucketVerdict,
    l: LimitsConfig,
  ): void {
    if (l.banAfterMs <= 0 || t.overForMs < l.banAfterMs) return;
    const what = VERDICT_NAMES[v];
    // An IPv4 client on a dual-stack socket (::ffff:a.b.c.d) is banned as the IPv4 block it counted in; a
    // zone ("%eth0") is no part of a block (the source was counted without it, and a CIDR cannot hold one).
    const zone = ip.indexOf("%");
    const bare = zone < 0 ? ip : ip.slice(0, zone);
    const text = family === 4 && bare.includes(":") ? bare.slice(bare.lastIndexOf(":") + 1) : bare;
    this.pendingBan = {
      cidr: `${text}/${bits}`,
      ttlMs: l.banForMs,
      reason: `over the ${what} limit for ${Math.round(t.overForMs / 1000)}s`,
    };
  }

  /**
   * True when a backend reply of `size` bytes must be dropped: the flow has sent fewer than `datagrams`
   * datagrams and the reply would take its bytes back over `ratio` × the bytes it received.
   */
  amplifies(requests: number, bytesIn: number, bytesOut: number, size: number): boolean {
    const a = this.amplification;
    return a !== null && requests < a.datagrams && bytesOut + size > a.ratio * bytesIn;
  }
}

/** Settings with every part off. */
export const NO_PROTECTION: ProtectionConfig = { limits: null, filter: null, amplification: null };
