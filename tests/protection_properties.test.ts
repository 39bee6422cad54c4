/**
 * fast-check properties of edge protection where a shrunk counterexample says more than a simulation seed:
 * the whole first-datagram rule against a byte-by-byte reference, the amplification guard on one flow
 * through the core, the limiter's bound and memory per source (IPv4-mapped spellings counted as the IPv4
 * source they are), and the ban table's lifecycle (add, remove, expire, match, list) against a list model.
 *
 * @module
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { BanTable } from "../core/ban_table.ts";
import { compileFilter, type FirstDatagramRule } from "../core/first_datagram_filter.ts";
import type { Flow } from "../core/flow.ts";
import { ListenerProtection, Verdict } from "../core/protection.ts";
import { RelayCore } from "../core/relay_core.ts";
import { cluster, config, listener } from "./support/fixtures.ts";
import { limiterMemory, ModelBans, ruleHolds, WindowLedger } from "./support/protection_model.ts";

const NO = { newFlows: 0, datagrams: 0, bytes: 0 };

describe("first-datagram rule (property)", () => {
  test("lengths, masked bytes at offsets and a Latin-1 regex agree with a byte-by-byte reference", () => {
    const alphabet = fc.constantFrom(0x00, 0x51, 0x54, 0xff, 0xe9);
    const match = fc.record({
      offset: fc.integer({ min: 0, max: 8 }),
      bytes: fc.array(alphabet, { minLength: 1, maxLength: 3 }).map((a) => Uint8Array.from(a)),
      mask: fc.option(fc.constantFrom(0xf0, 0x0f, 0xff), { nil: null }),
    }).map(({ offset, bytes, mask }) => ({
      offset,
      bytes,
      mask: mask === null ? null : bytes.map(() => mask),
    }));
    const rule: fc.Arbitrary<FirstDatagramRule> = fc.record({
      minLength: fc.integer({ min: 0, max: 10 }),
      maxLength: fc.constantFrom(0, 0, 8, 64, 600),
      match: fc.array(match, { maxLength: 3 }),
      regex: fc.constantFrom("", "^\\xff", "Q", "\\xe9$", "^[\\x00-\\x7f]*$"),
    });
    const data = fc.oneof(
      fc.array(alphabet, { maxLength: 24 }).map((a) => Uint8Array.from(a)),
      // Past the regex's 512-byte window: a byte there must not count.
      fc.tuple(fc.integer({ min: 500, max: 700 }), alphabet, alphabet).map(([n, fill, last]) => {
        const d = new Uint8Array(n).fill(fill);
        d[n - 1] = last;
        return d;
      }),
    );
    fc.assert(
      fc.property(rule, data, (r, d) => {
        assert.equal(compileFilter(r).test(d), ruleHolds(r, d));
      }),
      { numRuns: 500 },
    );
  });
});

describe("amplification guard (property)", () => {
  test("replies stay within ratio × bytes received until the flow sent `datagrams` datagrams", () => {
    const op = fc.oneof(
      fc.record({ client: fc.integer({ min: 1, max: 300 }) }),
      fc.record({ reply: fc.integer({ min: 1, max: 1500 }) }),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(0.5, 1, 2, 3.5, 10),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 300 }),
        fc.array(op, { maxLength: 40 }),
        (ratio, datagrams, first, ops) => {
          const protection = { limits: null, filter: null, amplification: { ratio, datagrams } };
          const core = new RelayCore(config([cluster()], [listener({ protection })]), { seed: 1 });
          const l = core.listener("l")!;
          const flow = core.fromClient(l, "192.0.2.1", 1000, new Uint8Array(first), 0) as Flow;
          let sentIn = first, sentOut = 0, refused = 0;
          for (const o of ops) {
            if ("client" in o) {
              core.fromClient(l, "192.0.2.1", 1000, new Uint8Array(o.client), 0);
              sentIn += o.client;
              continue;
            }
            const guarded = flow.requests < datagrams;
            const over = guarded && sentOut + o.reply > ratio * sentIn;
            const ok = core.fromBackend(flow, o.reply, 0);
            assert.equal(ok, !over, `reply of ${o.reply} B after ${sentOut} out, ${sentIn} in`);
            if (ok) sentOut += o.reply;
            else refused++;
            if (guarded) assert.ok(sentOut <= ratio * sentIn, `${sentOut} B out for ${sentIn} B in`);
          }
          assert.equal(flow.quality.bytesOut, sentOut);
          assert.equal(l.counters.drops.amplified, refused, "every refusal counted, as amplified");
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("limiter (property)", () => {
  const v4 = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 }))
    .map(([a, b]) => `198.51.${100 + a}.${b}`);
  const source = fc.oneof(v4, v4.map((ip) => `::ffff:${ip}`), fc.ipV6());

  test("however many sources, the tables keep their size and memory", () => {
    fc.assert(
      fc.property(
        fc.array(source, { minLength: 1, maxLength: 600 }),
        fc.constantFrom(4, 16, 64),
        (ips, size) => {
          const p = new ListenerProtection({
            limits: {
              perIp: { newFlows: 1, datagrams: 5, bytes: 0 },
              perPrefix: { newFlows: 2, datagrams: 0, bytes: 100 },
              burstMs: 1000,
              prefixV4: 24,
              prefixV6: 64,
              tableSize: size,
              banAfterMs: 0,
              banForMs: 1000,
            },
            filter: null,
            amplification: null,
          }, 7);
          const memory = limiterMemory(p);
          ips.forEach((ip, i) => p.admit(ip, new Uint8Array(10), i));
          assert.equal(limiterMemory(p), memory);
          assert.ok(p.perIp!.size <= p.perIp!.capacity && p.perPrefix!.size <= p.perPrefix!.capacity);
        },
      ),
      { numRuns: 100 },
    );
  });

  test("no source (in either spelling) gets more than burst + rate × window, per IP and per /24", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(v4, fc.boolean(), fc.integer({ min: 0, max: 400 })), { maxLength: 300 }),
        (steps) => {
          const perIp = { ...NO, newFlows: 4 }, perPrefix = { ...NO, newFlows: 10 };
          const p = new ListenerProtection({
            limits: {
              perIp,
              perPrefix,
              burstMs: 500,
              prefixV4: 24,
              prefixV6: 64,
              tableSize: 4096,
              banAfterMs: 0,
              banForMs: 1000,
            },
            filter: null,
            amplification: null,
          }, 3);
          const ledger = new WindowLedger();
          let now = 0;
          for (const [ip, mapped, dt] of steps) {
            now += dt;
            if (p.admit(mapped ? `::ffff:${ip}` : ip, new Uint8Array(1), now) !== Verdict.Ok) continue;
            const prefix = ip.slice(0, ip.lastIndexOf("."));
            for (const [key, rate] of [[ip, 4], [prefix, 10]] as const) {
              const broken = ledger.record(key, 1, now, rate, Math.max(1, rate / 2), 0);
              if (broken !== null) assert.fail(broken);
            }
          }
          assert.equal(p.perIp!.evictions + p.perPrefix!.evictions, 0, "no eviction: the bound is exact");
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("ban table lifecycle (property)", () => {
  const blocks = [
    "192.0.2.0/24",
    "192.0.2.7",
    "::ffff:192.0.2.0/120",
    "::ffff:192.0.2.7/128",
    "192.0.0.0/16",
    "2001:db8::/32",
    "2001:db8::7/128",
    "::/0",
    "0.0.0.0/0",
  ];
  const sources = ["192.0.2.7", "::ffff:192.0.2.7", "192.0.2.8", "192.0.9.1", "2001:db8::7", "2001:db9::1"];
  const op = fc.oneof(
    fc.record({ add: fc.constantFrom(...blocks), ttl: fc.constantFrom(0, 5, 50, 500) }),
    fc.record({ remove: fc.constantFrom(...blocks) }),
    fc.record({ match: fc.constantFrom(...sources) }),
    fc.record({ wait: fc.integer({ min: 0, max: 200 }) }),
    fc.constant({ expire: true }),
  );

  test("match, list and size agree with a list of blocks, expiry included", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const table = new BanTable();
        const model = new ModelBans();
        let now = 0;
        for (const o of ops) {
          if ("add" in o) {
            table.add({ cidr: o.add, ttlMs: o.ttl, reason: "p", origin: "api" }, now);
            model.add(o.add, o.ttl, now);
          } else if ("remove" in o) {
            // The list below purged lapsed bans after the last step, so the table holds only live ones.
            assert.equal(table.remove(o.remove), model.remove(o.remove, now), `remove ${o.remove}`);
          } else if ("match" in o) {
            assert.equal(table.match(o.match, now) !== null, model.holding(o.match, now).length > 0, o.match);
          } else if ("wait" in o) now += o.wait;
          else table.expire(now);
          assert.deepEqual(table.list(now).map((b) => b.cidr).sort(), model.live(now));
          assert.equal(table.size, model.live(now).length);
        }
      }),
      { numRuns: 300 },
    );
  });
});
