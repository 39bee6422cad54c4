/**
 * Edge protection's pure parts: allocation-free IP reading, the bucket table, the ban table, first-datagram
 * filters and the Space-Saving summaries — unit tests and fast-check properties against simple models.
 *
 * @module
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { type Cidr, cidrContains, parseCidr, parseIp, unmapIpv4 } from "../core/address.ts";
import { BanTable } from "../core/ban_table.ts";
import { BucketTable, BucketVerdict } from "../core/bucket_table.ts";
import { compileFilter, parseHex } from "../core/first_datagram_filter.ts";
import { SpaceSaving } from "../core/heavy_hitters.ts";
import { readIp } from "../core/ip_words.ts";

const words = () => new Uint32Array(4);

describe("readIp", () => {
  test("reads IPv4, IPv6, mapped IPv4 and refuses junk", () => {
    const w = words();
    assert.equal(readIp("10.1.2.3", w), 4);
    assert.equal(w[0], 0x0a010203);
    assert.equal(readIp("::ffff:192.0.2.1", w), 4);
    assert.equal(w[0], 0xc0000201);
    assert.equal(readIp("2001:db8::1", w), 6);
    assert.deepEqual([...w], [0x20010db8, 0, 0, 1]);
    assert.equal(readIp("::", w), 6);
    assert.deepEqual([...w], [0, 0, 0, 0]);
    assert.equal(readIp("fe80::1%eth0", w), 6);
    for (
      const bad of [
        "",
        "1.2.3",
        "1.2.3.4.5",
        "256.0.0.1",
        "01.2.3.4",
        "1::2::3",
        ":1",
        "1:",
        "g::1",
        "1.2.3.4:",
      ]
    ) {
      assert.equal(readIp(bad, w), 0, bad);
    }
  });

  test("agrees with parseIp on random addresses (property)", () => {
    const w = words();
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (text) => {
        const ref = parseIp(text);
        const fam = readIp(text, w);
        assert.notEqual(ref, null);
        const bytes = ref!.bytes;
        const mapped = ref!.family === 6 && bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff &&
          bytes[11] === 0xff;
        const v4 = ref!.family === 4 ? bytes : mapped ? bytes.slice(12) : null;
        if (v4 !== null) {
          assert.equal(fam, 4);
          assert.equal(w[0], ((v4[0] << 24) | (v4[1] << 16) | (v4[2] << 8) | v4[3]) >>> 0);
        } else {
          assert.equal(fam, 6);
          for (let i = 0; i < 16; i++) assert.equal((w[i >> 2] >>> (24 - 8 * (i & 3))) & 0xff, bytes[i]);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe("BucketTable", () => {
  const rate = (r: number, burst: number) => ({ rate: r, burst });

  test("a source gets its burst, then its rate; others are independent", () => {
    const t = new BucketTable(64, { newFlows: rate(10, 5), datagrams: null, bytes: null });
    let ok = 0;
    for (let i = 0; i < 20; i++) if (t.take(1, true, 100, 0) === BucketVerdict.Ok) ok++;
    assert.equal(ok, 5);
    assert.equal(t.take(1, true, 100, 0), BucketVerdict.NewFlows);
    assert.equal(t.take(1, false, 100, 0), BucketVerdict.Ok, "a datagram that starts no flow is not limited");
    assert.equal(t.take(2, true, 100, 0), BucketVerdict.Ok);
    assert.equal(t.take(1, true, 100, 100), BucketVerdict.Ok, "100 ms at 10/s refills one");
    assert.equal(t.take(1, true, 100, 100), BucketVerdict.NewFlows);
  });

  test("bytes and datagrams; over-limit time is tracked until one passes", () => {
    const t = new BucketTable(64, { newFlows: null, datagrams: rate(1000, 1000), bytes: rate(1000, 1500) });
    assert.equal(t.take(7, false, 1500, 0), BucketVerdict.Ok);
    assert.equal(t.take(7, false, 10, 0), BucketVerdict.Bytes);
    assert.equal(t.take(7, false, 100, 50), BucketVerdict.Bytes);
    assert.equal(t.overForMs, 50);
    assert.equal(t.take(7, false, 100, 200), BucketVerdict.Ok);
    assert.equal(t.take(7, false, 5000, 201), BucketVerdict.Bytes);
    assert.equal(t.overForMs, 0, "the stretch restarted");
  });

  test("memory is fixed whatever the number of sources", () => {
    const t = new BucketTable(1000, { newFlows: rate(1, 1), datagrams: null, bytes: null });
    assert.equal(t.capacity, 1024);
    for (let k = 0; k < 100_000; k++) t.take(k * 2654435761, true, 1, k);
    assert.equal(t.size, 1024);
    assert.ok(t.evictions > 90_000);
  });

  test("an established flow's datagrams do not starve its source's new-flow bucket (regression)", () => {
    const t = new BucketTable(64, { newFlows: rate(1, 1), datagrams: rate(1000, 1000), bytes: null });
    assert.equal(t.take(1, true, 10, 0), BucketVerdict.Ok);
    for (let now = 10; now <= 5000; now += 10) assert.equal(t.take(1, false, 10, now), BucketVerdict.Ok);
    assert.equal(t.take(1, true, 10, 5000), BucketVerdict.Ok, "5 s at 1 new flow/s refilled the bucket");
  });

  test("never admits more than burst + rate × time per source (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 50 })), {
          maxLength: 400,
        }),
        (r, burst, steps) => {
          // 8 sources in a 4-entry table: evictions happen, and must only ever refill to the burst.
          const t = new BucketTable(4, { newFlows: rate(r, burst), datagrams: null, bytes: null });
          const admitted = new Array(8).fill(0);
          let now = 0;
          for (const [src, dt] of steps) {
            now += dt;
            if (t.take(src, true, 1, now) === BucketVerdict.Ok) admitted[src]++;
          }
          // Each eviction can hand a source at most one fresh burst.
          const bound = (burst + (r * now) / 1000) + burst * t.evictions;
          for (const a of admitted) assert.ok(a <= bound + 1e-9, `${a} > ${bound}`);
          if (t.evictions === 0) {
            for (const a of admitted) {
              assert.ok(a <= burst + (r * now) / 1000 + 1e-9);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("BanTable", () => {
  test("matches by block, longest prefix first, counts hits, expires", () => {
    const bans = new BanTable();
    assert.equal(
      typeof bans.add({ cidr: "10.1.0.0/16", ttlMs: 1000, reason: "flood", origin: "api" }, 0),
      "object",
    );
    bans.add({ cidr: "10.1.2.3", ttlMs: 0, reason: "one", origin: "api" }, 0);
    bans.add({ cidr: "2001:db8::/32", ttlMs: 0, reason: "v6", origin: "api" }, 0);
    assert.equal(bans.match("10.1.2.3", 1)?.reason, "one");
    assert.equal(bans.match("10.1.9.9", 1)?.reason, "flood");
    assert.equal(bans.match("::ffff:10.1.9.9", 1)?.reason, "flood");
    assert.equal(bans.match("10.2.0.1", 1), null);
    assert.equal(bans.match("2001:db8:1::5", 1)?.reason, "v6");
    assert.equal(bans.match("2001:db9::5", 1), null);
    assert.equal(bans.match("not an ip", 1), null);
    assert.equal(bans.get("10.1.255.255/16")?.hits, 2);
    assert.equal(bans.match("10.1.9.9", 1000), null, "expired at its TTL");
    assert.deepEqual(bans.list(1000).map((b) => b.cidr).sort(), ["10.1.2.3/32", "2001:db8::/32"]);
    assert.ok(bans.remove("10.1.2.3/32"));
    assert.ok(!bans.remove("10.1.2.3/32"));
    assert.equal(typeof bans.add({ cidr: "10.0.0.0/33", ttlMs: 0, reason: "", origin: "api" }, 0), "string");
  });

  test("agrees with a linear scan of cidrContains (property)", () => {
    // IPv4-mapped addresses and blocks too: the table reads a mapped source as IPv4, so the model unmaps the
    // source, and a block inside ::ffff:0:0/96 (prefix ≥ 96) is the IPv4 block it covers.
    const mapped = fc.ipV4().map((ip) => `::ffff:${ip}`);
    const v4cidr = fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([ip, p]) => `${ip}/${p}`);
    const v6cidr = fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 })).map(([ip, p]) => `${ip}/${p}`);
    const mappedCidr = fc.tuple(mapped, fc.integer({ min: 80, max: 128 })).map(([ip, p]) => `${ip}/${p}`);
    const unmapBlock = (b: Cidr): Cidr => {
      const ip = b.prefix >= 96 ? unmapIpv4(b.ip) : b.ip;
      return ip.family === b.ip.family ? b : { ip, prefix: b.prefix - 96 };
    };
    fc.assert(
      fc.property(
        fc.array(fc.oneof(v4cidr, v6cidr, mappedCidr), { maxLength: 12 }),
        fc.array(fc.oneof(fc.ipV4(), fc.ipV6(), mapped), { minLength: 1, maxLength: 20 }),
        (cidrs, ips) => {
          const bans = new BanTable();
          const blocks: Cidr[] = [];
          for (const c of cidrs) {
            const parsed = parseCidr(c);
            if (typeof parsed === "string") continue;
            bans.add({ cidr: c, ttlMs: 0, reason: c, origin: "api" }, 0);
            blocks.push(unmapBlock(parsed));
          }
          for (const ip of ips) {
            const addr = unmapIpv4(parseIp(ip)!);
            const expect = blocks.some((b) => b.ip.family === addr.family && cidrContains(b, addr));
            assert.equal(bans.match(ip, 1) !== null, expect, `${ip} in ${cidrs.join(",")}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test("a ban on an IPv4-mapped block holds its IPv4 sources, either spelling (regression)", () => {
    const bans = new BanTable();
    const ban = bans.add({ cidr: "::ffff:192.0.2.0/120", ttlMs: 0, reason: "mapped", origin: "api" }, 0);
    assert.equal(typeof ban === "object" && ban.cidr, "192.0.2.0/24");
    assert.equal(bans.match("::ffff:192.0.2.9", 1)?.reason, "mapped");
    assert.equal(bans.match("192.0.2.9", 1)?.reason, "mapped");
    assert.equal(bans.match("192.0.3.9", 1), null);
    assert.equal(bans.get("192.0.2.0/24")?.hits, 2);
    assert.ok(bans.remove("::ffff:192.0.2.77/120"), "lifted by the spelling it was placed with");
    assert.equal(bans.size, 0);
    bans.add({ cidr: "::/0", ttlMs: 0, reason: "all v6", origin: "api" }, 0);
    assert.equal(bans.match("2001:db8::1", 1)?.reason, "all v6");
    assert.equal(bans.match("::ffff:192.0.2.9", 1), null, "a mapped source is an IPv4 client");
  });
});

describe("first-datagram filter", () => {
  test("bytes at an offset with a mask, a length range and a Latin-1 regex", () => {
    const magic = parseHex("ff ff ff ff");
    assert.ok(magic instanceof Uint8Array);
    const f = compileFilter({
      minLength: 6,
      maxLength: 64,
      match: [{ offset: 0, bytes: magic as Uint8Array, mask: null }, {
        offset: 4,
        bytes: Uint8Array.of(0x50),
        mask: Uint8Array.of(0xf0),
      }],
      regex: "",
    });
    assert.ok(f.test(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x5a, 0)));
    assert.ok(!f.test(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x6a, 0)), "masked nibble differs");
    assert.ok(!f.test(Uint8Array.of(0xff, 0xff, 0xff, 0xfe, 0x5a, 0)));
    assert.ok(!f.test(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x5a)), "too short");
    assert.ok(!f.test(new Uint8Array(65).fill(0xff)), "too long");
    const r = compileFilter({ minLength: 0, maxLength: 0, match: [], regex: "^\\xffTSource" });
    assert.ok(r.test(Uint8Array.from("\xffTSource Engine Query", (c) => c.charCodeAt(0))));
    assert.ok(!r.test(Uint8Array.from("TSource", (c) => c.charCodeAt(0))));
    assert.equal(typeof parseHex("abc"), "string");
    assert.equal(typeof parseHex("zz"), "string");
  });

  test("bytes rule agrees with a reference on random data (property)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 40 }),
        fc.integer({ min: 0, max: 40 }),
        fc.uint8Array({ minLength: 1, maxLength: 6 }),
        (data, offset, bytes) => {
          const f = compileFilter({
            minLength: 0,
            maxLength: 0,
            match: [{ offset, bytes, mask: null }],
            regex: "",
          });
          const expect = offset + bytes.length <= data.length &&
            bytes.every((b, i) => data[offset + i] === b);
          assert.equal(f.test(data), expect);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("Space-Saving", () => {
  test("exact while it has room; reset forgets", () => {
    const s = new SpaceSaving(4);
    for (const [k, n] of [["a", 5], ["b", 3], ["c", 1]] as const) for (let i = 0; i < n; i++) s.add(k, 1);
    assert.deepEqual(s.top(2), [{ key: "a", count: 5, error: 0 }, { key: "b", count: 3, error: 0 }]);
    assert.equal(s.maxError, 0);
    s.reset();
    assert.deepEqual(s.top(10), []);
    assert.equal(s.total, 0);
  });

  test("error bound: count − error ≤ true ≤ count, error ≤ N/k, every item over N/k kept (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 16 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 9 })), {
          maxLength: 600,
        }),
        (k, stream) => {
          const s = new SpaceSaving(k);
          const truth = new Map<string, number>();
          let total = 0;
          for (const [key, w] of stream) {
            // A skewed stream: low keys are much more frequent.
            const name = `10.0.0.${key % 7 === 0 ? 1 : key}`;
            s.add(name, w);
            truth.set(name, (truth.get(name) ?? 0) + w);
            total += w;
          }
          assert.equal(s.total, total);
          const top = s.top(k);
          assert.ok(s.maxError <= total / k + 1e-9);
          for (const h of top) {
            const t = truth.get(h.key) ?? 0;
            assert.ok(h.count >= t, `${h.key}: ${h.count} < true ${t}`);
            assert.ok(h.count - h.error <= t, `${h.key}: ${h.count} - ${h.error} > true ${t}`);
            assert.ok(h.error <= total / k + 1e-9);
          }
          const kept = new Set(top.map((h) => h.key));
          for (const [key, t] of truth) if (t > total / k) assert.ok(kept.has(key), `${key} (${t}) missing`);
        },
      ),
      { numRuns: 300 },
    );
  });
});
