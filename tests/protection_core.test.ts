/**
 * Edge protection through the relay core and the config file: limits, filters, bans and the amplification
 * guard refuse before a flow is allocated, with the right counted drop; the TOML keys validate and
 * round-trip.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { configToToml, parseConfigToml } from "../core/config.ts";
import type { Flow } from "../core/flow.ts";
import { Drop, type Listener } from "../core/listener.ts";
import type { LimitsConfig, ProtectionConfig } from "../core/protection.ts";
import { RelayCore } from "../core/relay_core.ts";
import { bytes, cluster, config, listener } from "./support/fixtures.ts";

const NO_RATES = { newFlows: 0, datagrams: 0, bytes: 0 };

function limits(over: Partial<LimitsConfig>): LimitsConfig {
  return {
    perIp: NO_RATES,
    perPrefix: NO_RATES,
    burstMs: 1000,
    prefixV4: 24,
    prefixV6: 64,
    tableSize: 1024,
    banAfterMs: 0,
    banForMs: 60_000,
    ...over,
  };
}

function setup(protection: ProtectionConfig): { core: RelayCore; l: Listener } {
  const core = new RelayCore(config([cluster()], [listener({ protection })]), { seed: 1 });
  return { core, l: core.listener("l")! };
}

const isFlow = (r: Flow | Drop): r is Flow => typeof r === "object";

describe("protection in the relay core", () => {
  test("new flows per IP: over the limit is rate_limited and allocates no flow", () => {
    const { core, l } = setup({
      limits: limits({ perIp: { ...NO_RATES, newFlows: 2 } }),
      filter: null,
      amplification: null,
    });
    assert.ok(isFlow(core.fromClient(l, "192.0.2.1", 1000, bytes(10), 0)));
    assert.ok(isFlow(core.fromClient(l, "192.0.2.1", 1001, bytes(10), 0)));
    assert.equal(core.fromClient(l, "192.0.2.1", 1002, bytes(10), 0), Drop.RateLimited);
    assert.equal(core.flowCount, 2);
    assert.equal(l.counters.drops.rate_limited, 1);
    assert.ok(
      isFlow(core.fromClient(l, "192.0.2.1", 1000, bytes(10), 0)),
      "established flows are not charged",
    );
    assert.ok(isFlow(core.fromClient(l, "192.0.2.2", 1000, bytes(10), 0)), "another source is independent");
    assert.ok(isFlow(core.fromClient(l, "192.0.2.1", 1002, bytes(10), 500)), "refilled after 500 ms at 2/s");
  });

  test("datagrams per prefix charge established flows of the whole /24", () => {
    const { core, l } = setup({
      limits: limits({ perPrefix: { ...NO_RATES, datagrams: 3 } }),
      filter: null,
      amplification: null,
    });
    assert.ok(isFlow(core.fromClient(l, "198.51.100.1", 1, bytes(10), 0)));
    assert.ok(isFlow(core.fromClient(l, "198.51.100.1", 1, bytes(10), 0)));
    assert.ok(isFlow(core.fromClient(l, "198.51.100.2", 1, bytes(10), 0)));
    assert.equal(core.fromClient(l, "198.51.100.1", 1, bytes(10), 0), Drop.RateLimited);
    assert.equal(core.fromClient(l, "198.51.100.3", 1, bytes(10), 0), Drop.RateLimited);
    assert.ok(isFlow(core.fromClient(l, "198.51.101.3", 1, bytes(10), 0)), "the next /24 has its own bucket");
    assert.equal(l.counters.drops.rate_limited, 2);
  });

  test("a source over a limit for ban_after is banned automatically for ban_for", () => {
    const { core, l } = setup({
      limits: limits({ perIp: { ...NO_RATES, newFlows: 1 }, banAfterMs: 1000, banForMs: 5000 }),
      filter: null,
      amplification: null,
    });
    assert.ok(isFlow(core.fromClient(l, "203.0.113.9", 1, bytes(1), 0)));
    for (let t = 0; t < 1000; t += 100) {
      assert.equal(core.fromClient(l, "203.0.113.9", 2 + t, bytes(1), t), Drop.RateLimited);
    }
    assert.equal(core.protection.bans.size, 0, "0.9 s over the limit is not yet enough");
    assert.equal(
      core.fromClient(l, "203.0.113.9", 5000, bytes(1), 950),
      Drop.RateLimited,
      "refilled? no: 1/s",
    );
    assert.equal(core.fromClient(l, "203.0.113.9", 5001, bytes(1), 999), Drop.RateLimited);
    // At 1000 ms one token is back, so it passes; the stretch restarts.
    assert.ok(isFlow(core.fromClient(l, "203.0.113.9", 5002, bytes(1), 1000)));
    for (let t = 1000; t <= 2100; t += 100) core.fromClient(l, "203.0.113.9", 6000 + t, bytes(1), t);
    const [ban] = core.protection.bans.list(2100);
    assert.equal(ban.cidr, "203.0.113.9/32");
    assert.equal(ban.origin, "auto");
    assert.match(ban.reason, /new_flows/);
    assert.equal(core.protection.autoBans.length, 1);
    assert.equal(core.fromClient(l, "203.0.113.9", 9999, bytes(1), 2200), Drop.Banned);
    assert.ok(l.counters.drops.banned >= 1);
    assert.ok(isFlow(core.fromClient(l, "203.0.113.9", 9998, bytes(1), 2100 + 5000)), "the ban lapsed");
  });

  test("an established flow still over its limit neither re-places nor shortens a ban (regression)", () => {
    const { core, l } = setup({
      limits: limits({ perIp: { ...NO_RATES, datagrams: 1 }, banAfterMs: 100, banForMs: 5000 }),
      filter: null,
      amplification: null,
    });
    assert.ok(isFlow(core.fromClient(l, "203.0.113.9", 1, bytes(1), 0)));
    for (let t = 0; t < 1000; t++) core.fromClient(l, "203.0.113.9", 1, bytes(1), t);
    assert.equal(core.protection.autoBanCount, 1, "one automatic ban, announced once");
    assert.equal(
      core.protection.bans.get("203.0.113.9")!.expiresAt,
      core.protection.autoBans[0].createdAt + 5000,
    );
    // An operator's longer ban on the same block is not cut down to ban_for by the source's flow.
    core.protection.bans.add({ cidr: "203.0.113.9", ttlMs: 0, reason: "operator", origin: "api" }, 1000);
    for (let t = 1000; t < 2000; t++) core.fromClient(l, "203.0.113.9", 1, bytes(1), t);
    const ban = core.protection.bans.get("203.0.113.9")!;
    assert.equal(ban.reason, "operator");
    assert.equal(ban.expiresAt, Infinity);
    assert.equal(core.protection.autoBanCount, 1);
  });

  test("a zoned source over a limit is banned as its address without the zone (regression)", () => {
    const { core, l } = setup({
      limits: limits({ perIp: { ...NO_RATES, newFlows: 1 }, banAfterMs: 100, banForMs: 5000 }),
      filter: null,
      amplification: null,
    });
    for (let t = 0; t <= 200; t += 10) core.fromClient(l, "fe80::1%eth0", 1000 + t, bytes(1), t);
    assert.deepEqual(core.protection.bans.list(200).map((b) => b.cidr), ["fe80::1/128"]);
    assert.equal(core.protection.autoBanCount, 1);
  });

  test("bans refuse new flows (UDP and TCP) but leave established ones", () => {
    const core = new RelayCore(
      config([cluster()], [listener(), listener({ name: "t", protocol: "tcp" })]),
      { seed: 1 },
    );
    const l = core.listener("l")!;
    assert.ok(isFlow(core.fromClient(l, "10.9.0.1", 1, bytes(5), 0)));
    core.protection.bans.add({ cidr: "10.9.0.0/16", ttlMs: 0, reason: "test", origin: "api" }, 0);
    assert.equal(core.fromClient(l, "10.9.3.4", 1, bytes(5), 1), Drop.Banned);
    assert.ok(isFlow(core.fromClient(l, "10.9.0.1", 1, bytes(5), 1)));
    assert.equal(core.openConnection(core.listener("t")!, "10.9.3.4", 1, 1), Drop.Banned);
    assert.equal(core.protection.bans.get("10.9.0.0/16")?.hits, 2);
  });

  test("TCP connections pay the new-flows limit per source", () => {
    const core = new RelayCore(
      config([cluster()], [
        listener({
          name: "t",
          protocol: "tcp",
          protection: {
            limits: limits({ perIp: { ...NO_RATES, newFlows: 1 } }),
            filter: null,
            amplification: null,
          },
        }),
      ]),
      { seed: 1 },
    );
    const t = core.listener("t")!;
    assert.equal(typeof core.openConnection(t, "192.0.2.30", 1, 0), "object");
    assert.equal(core.openConnection(t, "192.0.2.30", 2, 0), Drop.RateLimited);
    assert.equal(typeof core.openConnection(t, "192.0.2.31", 1, 0), "object");
    assert.equal(t.counters.drops.rate_limited, 1);
  });

  test("top talkers count TCP connections as new flows and shed ones as drops (regression)", () => {
    const core = new RelayCore(
      config([cluster()], [listener({ name: "t", protocol: "tcp", maxFlows: 1 })]),
      { seed: 1 },
    );
    const t = core.listener("t")!;
    assert.equal(typeof core.openConnection(t, "192.0.2.30", 1, 0), "object");
    assert.equal(core.openConnection(t, "192.0.2.31", 1, 0), Drop.Shed);
    const top = core.topTalkers();
    assert.deepEqual(top.flows.top(5).map((e) => [e.key, e.count]), [["192.0.2.30", 1]]);
    assert.deepEqual(top.drops.top(5).map((e) => [e.key, e.count]), [["192.0.2.31", 1]]);
  });

  test("the first-datagram filter admits only matching flows, later datagrams are free", () => {
    const { core, l } = setup({
      limits: null,
      filter: {
        minLength: 4,
        maxLength: 0,
        match: [{ offset: 0, bytes: Uint8Array.of(0xfe, 0xed), mask: null }],
        regex: "",
      },
      amplification: null,
    });
    assert.equal(core.fromClient(l, "192.0.2.7", 1, bytes(10), 0), Drop.Filtered);
    assert.equal(core.flowCount, 0);
    assert.ok(isFlow(core.fromClient(l, "192.0.2.7", 1, Uint8Array.of(0xfe, 0xed, 0, 0), 0)));
    assert.ok(isFlow(core.fromClient(l, "192.0.2.7", 1, bytes(10), 0)));
    assert.equal(l.counters.drops.filtered, 1);
  });

  test("the amplification guard caps replies at ratio × bytes received for the first datagrams", () => {
    const { core, l } = setup({ limits: null, filter: null, amplification: { ratio: 2, datagrams: 2 } });
    const f = core.fromClient(l, "192.0.2.8", 1, bytes(10), 0) as Flow;
    assert.ok(core.fromBackend(f, 15, 1));
    assert.ok(!core.fromBackend(f, 10, 1), "15 + 10 > 2 × 10");
    assert.equal(l.counters.drops.amplified, 1);
    core.fromClient(l, "192.0.2.8", 1, bytes(10), 2);
    assert.ok(core.fromBackend(f, 500, 3), "after 2 client datagrams the guard is off");
  });

  test("top talkers rank sources by datagrams, new flows and drops", () => {
    const { core, l } = setup({
      limits: limits({ perIp: { ...NO_RATES, newFlows: 1 } }),
      filter: null,
      amplification: null,
    });
    for (let i = 0; i < 5; i++) core.fromClient(l, "192.0.2.50", 100, bytes(100), 0);
    for (let i = 0; i < 4; i++) core.fromClient(l, "192.0.2.50", 200 + i, bytes(100), 0);
    core.fromClient(l, "192.0.2.51", 1, bytes(10), 0);
    const top = core.topTalkers();
    assert.deepEqual(top.datagrams.top(1), [{ key: "192.0.2.50", count: 5, error: 0 }], "accepted datagrams");
    assert.equal(top.bytes.top(1)[0].count, 500);
    assert.equal(top.drops.top(1)[0].count, 4);
    assert.equal(top.flows.top(2).length, 2);
  });
});

describe("protection config", () => {
  const base = `
[[listeners]]
name = "game"
address = "127.0.0.1:7777"
cluster = "c"
[listeners.limits]
new_flows_per_ip = 20
datagrams_per_prefix = 50000
burst = "2s"
prefix_v6 = 48
ban_after = "10s"
ban_for = "10m"
[listeners.filter]
min_length = 4
max_length = 1200
regex = "^\\\\xff"
[[listeners.filter.match]]
offset = 0
hex = "ff ff ff ff"
[listeners.amplification]
ratio = 3
datagrams = 2
[clusters.c]
backends = [{ address = "127.0.0.1:9000" }]
`;

  test("reads every key with its defaults and round-trips through configToToml", () => {
    const r = parseConfigToml(base);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    const p = r.config.listeners[0].protection!;
    assert.equal(p.limits!.perIp.newFlows, 20);
    assert.equal(p.limits!.perPrefix.datagrams, 50_000);
    assert.equal(p.limits!.burstMs, 2000);
    assert.equal(p.limits!.prefixV4, 24);
    assert.equal(p.limits!.prefixV6, 48);
    assert.equal(p.limits!.banAfterMs, 10_000);
    assert.equal(p.limits!.banForMs, 600_000);
    assert.deepEqual([...p.filter!.match[0].bytes], [0xff, 0xff, 0xff, 0xff]);
    assert.equal(p.filter!.regex, "^\\xff");
    assert.deepEqual(p.amplification, { ratio: 3, datagrams: 2 });
    const again = parseConfigToml(configToToml(r.config));
    assert.ok(again.ok);
    assert.deepEqual(again.config.listeners[0].protection, p);
  });

  test("bad values get a clear error at their path", () => {
    const r = parseConfigToml(
      base.replace("prefix_v6 = 48", "prefix_v6 = 129\nnew_flow_per_ip = 1").replace(
        'hex = "ff ff ff ff"',
        'hex = "fff"',
      )
        .replace('regex = "^\\\\xff"', 'regex = "("'),
    );
    assert.ok(!r.ok);
    const paths = r.errors.map((e) => e.path).sort();
    assert.deepEqual(paths, [
      "listeners[0].filter.match[0].hex",
      "listeners[0].filter.regex",
      "listeners[0].limits.new_flow_per_ip",
      "listeners[0].limits.prefix_v6",
    ]);
  });

  test("filter and amplification are refused on a tcp listener", () => {
    const r = parseConfigToml(base.replace('cluster = "c"', 'cluster = "c"\nprotocol = "tcp"'));
    assert.ok(!r.ok);
    assert.ok(r.errors.some((e) => e.path === "listeners[0].filter" && /udp/.test(e.message)));
  });

  test('the README\'s "Protecting an edge" config is valid and turns every part on', () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const section = readme.slice(readme.indexOf("## Protecting an edge"));
    const toml = section.slice(
      section.indexOf("```toml") + 7,
      section.indexOf("```", section.indexOf("```toml") + 7),
    );
    const r = parseConfigToml(toml);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    const p = r.config.listeners[0].protection!;
    assert.ok(p.limits !== null && p.filter !== null && p.amplification !== null);
    assert.equal(p.filter.allDatagrams, true);
    assert.equal(p.limits.banAfterMs, 10_000);
  });
});
