import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  type ConfigError,
  configToToml,
  formatDuration,
  parseConfigToml,
  parseDuration,
  validateConfig,
} from "../core/config.ts";
import { DEFAULT_CONFIG_TOML } from "../core/default_config.ts";
import type { FerryConfig } from "../core/types.ts";
import { DEFAULT_HEALTH } from "../core/health.ts";

/** Validates, expecting success. */
function ok(raw: unknown): FerryConfig {
  const r = validateConfig(raw);
  if (!r.ok) assert.fail(`expected a valid config, got ${JSON.stringify(r.errors)}`);
  return r.config;
}

/** Validates, expecting failure, and returns the errors. */
function bad(raw: unknown): ConfigError[] {
  const r = validateConfig(raw);
  if (r.ok) assert.fail("expected errors, got a valid config");
  assert.ok(r.errors.length > 0);
  return r.errors;
}

/** The one error at `path`, asserting there is exactly one there. */
function errorAt(errors: ConfigError[], path: string): ConfigError {
  const at = errors.filter((e) => e.path === path);
  assert.equal(at.length, 1, `expected one error at ${path}, got ${JSON.stringify(errors)}`);
  return at[0];
}

/** A minimal valid document, fresh each call so tests can mutate it. Loosely typed: tests poke wrong types in. */
// deno-lint-ignore no-explicit-any
function base(): Record<string, any> {
  return {
    listeners: [{ name: "l1", address: "127.0.0.1:7000", cluster: "game" }],
    clusters: { game: { backends: [{ address: "10.0.0.1:7001" }, { address: "10.0.0.2:7001" }] } },
  };
}

describe("durations", () => {
  test("parseDuration reads units and combinations", () => {
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("30s"), 30_000);
    assert.equal(parseDuration("5m"), 300_000);
    assert.equal(parseDuration("1h"), 3_600_000);
    assert.equal(parseDuration("1m30s"), 90_000);
    assert.equal(parseDuration("1h2m3s4ms"), 3_723_004);
    assert.equal(parseDuration("0"), 0);
    assert.equal(parseDuration("0s"), 0);
  });

  test("parseDuration refuses malformed text", () => {
    for (
      const t of [
        "",
        "30",
        "s",
        "1.5s",
        "30 s",
        " 30s",
        "30s1m",
        "1s1s",
        "-1s",
        "1d",
        "1e3ms",
        "9".repeat(30) + "h",
      ]
    ) {
      assert.equal(typeof parseDuration(t), "string", t);
    }
  });

  test("formatDuration is exact and round-trips", () => {
    assert.equal(formatDuration(0), "0s");
    assert.equal(formatDuration(500), "500ms");
    assert.equal(formatDuration(90_000), "1m30s");
    assert.equal(formatDuration(3_723_004), "1h2m3s4ms");
    assert.equal(formatDuration(86_400_000), "24h");
    for (const ms of [0, 1, 999, 1000, 1001, 59_999, 60_000, 3_599_999, 86_400_000, 123_456_789]) {
      assert.equal(parseDuration(formatDuration(ms)), ms);
    }
  });
});

describe("validateConfig: defaults", () => {
  test("an empty document is valid, with admin defaults and nothing else", () => {
    const c = ok({});
    assert.deepEqual(c.admin, { listen: { ip: "127.0.0.1", port: 9901, family: 4 }, token: "" });
    assert.deepEqual(c.listeners, []);
    assert.deepEqual(c.clusters, []);
  });

  test("listener, sources, cluster and backend defaults are filled", () => {
    const c = ok(base());
    assert.deepEqual(c.listeners[0], {
      name: "l1",
      protocol: "udp",
      address: { ip: "127.0.0.1", port: 7000, family: 4 },
      cluster: "game",
      maxFlows: 0,
      maxDatagramSize: 1500,
      sources: { reject: ["port0", "unspecified", "multicast", "broadcast"], deny: [], allow: [] },
      datapath: "auto",
      recvBuffer: null,
      sendBuffer: null,
    });
    assert.deepEqual(c.clusters[0], {
      name: "game",
      balancer: "round_robin",
      affinity: "ip_port",
      requests: 0,
      responses: 0,
      reuseUpstream: true,
      frontTimeout: 60_000,
      backTimeout: 60_000,
      proxyProtocol: "off",
      hashSeed: 0,
      failOpen: true,
      maglevTableSize: 65537,
      connectTimeout: 5_000,
      idleTimeout: 600_000,
      proxyProtocolVersion: 2,
      health: DEFAULT_HEALTH,
      external: null,
      backends: [
        { address: { ip: "10.0.0.1", port: 7001, family: 4 }, weight: 1, state: "up" },
        { address: { ip: "10.0.0.2", port: 7001, family: 4 }, weight: 1, state: "up" },
      ],
    });
  });

  test("relay defaults, and relay keys are checked", () => {
    assert.deepEqual(ok({}).relay, {
      gracePeriod: 30_000,
      workers: 1,
      logLevel: "info",
      logFormat: "auto",
      datapath: "auto",
    });
    const errors = bad({
      relay: { grace_period: "soon", workers: 0, log_level: "loud", log_fromat: "json" },
    });
    assert.deepEqual(errors.map((e) => e.path).sort(), [
      "relay.grace_period",
      "relay.log_fromat",
      "relay.log_level",
      "relay.workers",
    ]);
    assert.match(
      errors.find((e) => e.path === "relay.log_fromat")?.message ?? "",
      /did you mean `log_format`/,
    );
  });

  test("TCP cluster knobs: connect_timeout > 0, proxy_protocol_version 1 or 2", () => {
    const errors = bad({
      clusters: { t: { connect_timeout: 0, proxy_protocol_version: 3, idle_timeout: "x" } },
    });
    assert.deepEqual(errors.map((e) => e.path).sort(), [
      "clusters.t.connect_timeout",
      "clusters.t.idle_timeout",
      "clusters.t.proxy_protocol_version",
    ]);
  });

  test("health: a udp check needs a payload; payloads and expectations decode; errors name the key", () => {
    const h = ok({
      clusters: {
        g: {
          health: {
            mode: "udp",
            send: "\\xff\\xff\\xff\\xffTSource Engine Query\\x00",
            expect_prefix: "\\xff\\xff\\xff\\xffI",
            interval: "2s",
            fall: 2,
          },
        },
      },
    }).clusters[0].health;
    assert.equal(h.mode, "udp");
    assert.equal(h.send?.length, 25);
    assert.deepEqual([...(h.send ?? []).slice(0, 5)], [0xff, 0xff, 0xff, 0xff, 0x54]);
    assert.deepEqual(h.expect, { kind: "prefix", bytes: new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x49]) });
    assert.equal(h.interval, 2000);
    const errors = bad({
      clusters: {
        a: { health: { mode: "udp" } },
        b: { health: { mode: "tcp", send: "\\xzz", expect_regex: "(", max_fails: -1, intreval: "1s" } },
        c: { health: { expect: "a", expect_prefix: "b", send: "x", send_hex: "01" } },
      },
    });
    assert.deepEqual(errors.map((e) => e.path).sort(), [
      "clusters.a.health.send",
      "clusters.b.health.expect_regex",
      "clusters.b.health.intreval",
      "clusters.b.health.max_fails",
      "clusters.b.health.send",
      "clusters.c.health",
      "clusters.c.health.send_hex",
    ]);
  });

  test("redis routing, the disconnect channel and the fleet", () => {
    const c = ok({
      redis: { url: "redis://127.0.0.1:6379" },
      fleet: { instance: "edge-fra-1" },
      clusters: { g: { balancer: "redis", redis_key: "udp_gate:backend", redis_fallback: "maglev" }, h: {} },
    });
    assert.deepEqual(c.redis, {
      url: "redis://127.0.0.1:6379",
      disconnectChannel: "ferry:disconnect",
      timeout: 200,
    });
    assert.deepEqual(c.fleet, { instance: "edge-fra-1", prefix: "ferry:fleet", heartbeat: 5000 });
    assert.equal(c.clusters[0].balancer, "external");
    assert.deepEqual(c.clusters[0].external, { key: "udp_gate:backend", fallback: "maglev", cacheMs: 0 });
    assert.equal(c.clusters[1].external, null);
    const round = parseConfigToml(configToToml(c));
    assert.ok(round.ok && round.config.clusters[0].balancer === "external");
    const errors = bad({
      redis: { url: "http://x" },
      fleet: { instance: "bad name" },
      clusters: { a: { balancer: "redis", redis_fallback: "nope" }, b: { redis_key: "k" } },
    });
    assert.deepEqual(errors.map((e) => e.path).sort(), [
      "clusters.a.redis_fallback",
      "clusters.b.redis_key",
      "fleet.instance",
      "redis.url",
    ]);
    assert.deepEqual(bad({ clusters: { a: { balancer: "redis" } } }).map((e) => e.path), [
      "clusters.a.balancer",
    ]);
  });

  test("clusters come out in name order; a cluster may have no backends", () => {
    const c = ok({ clusters: { zeta: {}, alpha: {}, mid: { backends: [] } } });
    assert.deepEqual(c.clusters.map((x) => x.name), ["alpha", "mid", "zeta"]);
    assert.deepEqual(c.clusters[0].backends, []);
  });

  test("durations accept strings and integer milliseconds; one timeout may be 0", () => {
    const raw = base();
    raw.clusters.game.front_timeout = "1m30s";
    raw.clusters.game.back_timeout = 0;
    const c = ok(raw);
    assert.equal(c.clusters[0].frontTimeout, 90_000);
    assert.equal(c.clusters[0].backTimeout, 0);
    raw.clusters.game.back_timeout = 2500;
    assert.equal(ok(raw).clusters[0].backTimeout, 2500);
  });

  test("IPv6 addresses and CIDRs are parsed", () => {
    const raw = base();
    raw.listeners[0].address = "[::1]:53";
    raw.listeners[0].sources = { deny: ["2001:db8::/32"], allow: ["10.0.0.0/8", "192.0.2.7"] };
    const l = ok(raw).listeners[0];
    assert.deepEqual(l.address, { ip: "::1", port: 53, family: 6 });
    assert.equal(l.sources.deny[0].prefix, 32);
    assert.equal(l.sources.allow[1].prefix, 32);
    assert.deepEqual(l.sources.reject, ["port0", "unspecified", "multicast", "broadcast"]);
  });

  test("udp and tcp may share an address", () => {
    const raw = base();
    raw.listeners.push({ name: "l2", protocol: "tcp", address: "127.0.0.1:7000", cluster: "game" });
    assert.equal(ok(raw).listeners.length, 2);
  });
});

describe("validateConfig: errors", () => {
  test("unknown keys at every level, with did-you-mean", () => {
    const raw = base();
    raw.listners = [];
    raw.admin = { lisen: "127.0.0.1:1" };
    raw.listeners[0].maxFlows = 3;
    raw.listeners[0].sources = { rejct: [] };
    raw.clusters.game.balancr = "random";
    raw.clusters.game.backends[1].wieght = 2;
    raw.clusters.game.zzzzzzzz = 1;
    const errors = bad(raw);
    assert.match(errorAt(errors, "listners").message, /did you mean `listeners`\?/);
    assert.match(errorAt(errors, "admin.lisen").message, /did you mean `listen`\?/);
    assert.match(errorAt(errors, "listeners[0].maxFlows").message, /did you mean `max_flows`\?/);
    assert.match(errorAt(errors, "listeners[0].sources.rejct").message, /did you mean `reject`\?/);
    assert.match(errorAt(errors, "clusters.game.balancr").message, /did you mean `balancer`\?/);
    assert.match(errorAt(errors, "clusters.game.backends[1].wieght").message, /did you mean `weight`\?/);
    const far = errorAt(errors, "clusters.game.zzzzzzzz").message;
    assert.match(far, /unknown key/);
    assert.doesNotMatch(far, /did you mean/);
    assert.equal(errors.length, 7);
  });

  test("wrong types", () => {
    const raw = base();
    raw.admin = "127.0.0.1:9901";
    raw.listeners[0].name = 7;
    raw.listeners[0].max_flows = "many";
    raw.listeners[0].sources = [];
    raw.clusters.game.fail_open = "yes";
    raw.clusters.game.front_timeout = true;
    raw.clusters.game.backends = { address: "10.0.0.1:1" };
    const errors = bad(raw);
    assert.match(errorAt(errors, "admin").message, /expected a table/);
    assert.match(errorAt(errors, "listeners[0].name").message, /expected a string, got the number 7/);
    assert.match(errorAt(errors, "listeners[0].max_flows").message, /expected an integer/);
    assert.match(errorAt(errors, "listeners[0].sources").message, /expected a table, got an array/);
    assert.match(errorAt(errors, "clusters.game.fail_open").message, /expected true or false/);
    assert.match(errorAt(errors, "clusters.game.front_timeout").message, /expected a duration/);
    assert.match(errorAt(errors, "clusters.game.backends").message, /expected an array/);
    assert.equal(errors.length, 7);
  });

  test("bad enum values suggest the nearest", () => {
    const raw = base();
    raw.listeners[0].protocol = "UDP";
    raw.clusters.game.balancer = "round-robin";
    raw.clusters.game.affinity = "port";
    raw.clusters.game.proxy_protocol = "all";
    raw.clusters.game.backends[0].state = "drain";
    raw.clusters.game.backends[1].state = "external";
    const errors = bad(raw);
    assert.match(errorAt(errors, "listeners[0].protocol").message, /did you mean "udp"/);
    assert.match(errorAt(errors, "clusters.game.balancer").message, /did you mean "round_robin"/);
    assert.match(errorAt(errors, "clusters.game.affinity").message, /not one of/);
    assert.match(errorAt(errors, "clusters.game.proxy_protocol").message, /not one of/);
    assert.match(errorAt(errors, "clusters.game.backends[0].state").message, /not one of/);
    assert.match(errorAt(errors, "clusters.game.backends[1].state").message, /not one of/);
  });

  test("the external balancer cannot be named in a file", () => {
    const raw = base();
    raw.clusters.game.balancer = "external";
    errorAt(bad(raw), "clusters.game.balancer");
  });

  test("out-of-range and non-integer numbers", () => {
    const raw = base();
    raw.listeners[0].max_flows = 10_000_001;
    raw.listeners[0].max_datagram_size = 0;
    raw.clusters.game.hash_seed = 2 ** 32;
    raw.clusters.game.requests = -1;
    raw.clusters.game.responses = 1.5;
    raw.clusters.game.maglev_table_size = 1_000_033;
    raw.clusters.game.backends[0].weight = 1001;
    raw.clusters.game.backends[1].weight = 0;
    const errors = bad(raw);
    assert.match(errorAt(errors, "listeners[0].max_flows").message, /out of range \(0\.\.10000000\)/);
    assert.match(errorAt(errors, "listeners[0].max_datagram_size").message, /out of range \(1\.\.65507\)/);
    assert.match(errorAt(errors, "clusters.game.hash_seed").message, /out of range/);
    assert.match(errorAt(errors, "clusters.game.requests").message, /out of range/);
    assert.match(errorAt(errors, "clusters.game.responses").message, /expected an integer/);
    assert.match(errorAt(errors, "clusters.game.maglev_table_size").message, /out of range/);
    assert.match(errorAt(errors, "clusters.game.backends[0].weight").message, /out of range \(1\.\.1000\)/);
    assert.match(errorAt(errors, "clusters.game.backends[1].weight").message, /out of range/);
    assert.equal(errors.length, 8);
  });

  test("NaN, infinities and huge numbers are refused, not coerced", () => {
    const raw = base();
    raw.listeners[0].max_flows = NaN;
    raw.clusters.game.hash_seed = Infinity;
    raw.clusters.game.requests = 1e300;
    raw.clusters.game.front_timeout = -Infinity;
    raw.clusters.game.back_timeout = 1e300;
    const errors = bad(raw);
    for (
      const p of [
        "listeners[0].max_flows",
        "clusters.game.hash_seed",
        "clusters.game.requests",
        "clusters.game.front_timeout",
        "clusters.game.back_timeout",
      ]
    ) errorAt(errors, p);
  });

  test("bad durations", () => {
    const raw = base();
    raw.clusters.game.front_timeout = "30 seconds";
    raw.clusters.game.back_timeout = "25h";
    const errors = bad(raw);
    assert.match(errorAt(errors, "clusters.game.front_timeout").message, /not a duration/);
    assert.match(errorAt(errors, "clusters.game.back_timeout").message, /out of range \(0s\.\.24h\)/);
    raw.clusters.game.front_timeout = -5;
    raw.clusters.game.back_timeout = 1.5;
    const again = bad(raw);
    assert.match(errorAt(again, "clusters.game.front_timeout").message, /out of range/);
    assert.match(errorAt(again, "clusters.game.back_timeout").message, /integer milliseconds/);
  });

  test("both timeouts 0 is an error on the cluster", () => {
    const raw = base();
    raw.clusters.game.front_timeout = "0s";
    raw.clusters.game.back_timeout = 0;
    const errors = bad(raw);
    assert.match(errorAt(errors, "clusters.game").message, /never expire/);
    assert.equal(errors.length, 1);
  });

  test("bad addresses", () => {
    const raw = base();
    raw.admin = { listen: "localhost:9901" };
    raw.listeners[0].address = "127.0.0.1:0";
    raw.listeners.push({ name: "l2", address: "127.0.0.1", cluster: "game" });
    raw.listeners.push({ name: "l3", address: "::1:53", cluster: "game" });
    raw.listeners.push({ name: "l4", cluster: "game" });
    raw.clusters.game.backends[0].address = "10.0.0.1:70000";
    raw.clusters.game.backends[1] = { weight: 2 };
    const errors = bad(raw);
    assert.match(errorAt(errors, "admin.listen").message, /not an IP address/);
    assert.match(errorAt(errors, "listeners[0].address").message, /port 0 is out of range/);
    assert.match(errorAt(errors, "listeners[1].address").message, /no port/);
    assert.match(errorAt(errors, "listeners[2].address").message, /brackets/);
    assert.match(errorAt(errors, "listeners[3].address").message, /missing required key `address`/);
    assert.match(errorAt(errors, "clusters.game.backends[0].address").message, /not a port/);
    assert.match(errorAt(errors, "clusters.game.backends[1].address").message, /missing required/);
    assert.equal(errors.length, 7);
  });

  test("admin may listen on port 0 (an ephemeral port)", () => {
    assert.equal(ok({ admin: { listen: "127.0.0.1:0" } }).admin.listen.port, 0);
  });

  test("bad CIDRs and source classes", () => {
    const raw = base();
    raw.listeners[0].sources = {
      reject: ["loopback", "lopback", "loopback", 3],
      deny: ["10.0.0.0/33", "10.0.0.0/8"],
      allow: ["not-an-ip/8", 5],
    };
    const errors = bad(raw);
    assert.match(errorAt(errors, "listeners[0].sources.reject[1]").message, /did you mean "loopback"/);
    assert.match(errorAt(errors, "listeners[0].sources.reject[2]").message, /listed twice/);
    assert.match(errorAt(errors, "listeners[0].sources.reject[3]").message, /expected a string/);
    assert.match(errorAt(errors, "listeners[0].sources.deny[0]").message, /prefix length/);
    assert.match(errorAt(errors, "listeners[0].sources.allow[0]").message, /not an IP address/);
    assert.match(errorAt(errors, "listeners[0].sources.allow[1]").message, /expected a string/);
    assert.equal(errors.length, 6);
  });

  test("maglev table size must be prime and hold the backends", () => {
    const raw = base();
    raw.clusters.game.maglev_table_size = 65536;
    assert.match(errorAt(bad(raw), "clusters.game.maglev_table_size").message, /65536 is not prime/);
    raw.clusters.game.maglev_table_size = 3;
    raw.clusters.game.balancer = "maglev";
    raw.clusters.game.backends = [1, 2, 3, 4].map((i) => ({ address: `10.0.0.${i}:1` }));
    assert.match(errorAt(bad(raw), "clusters.game.maglev_table_size").message, /cannot hold 4 backends/);
    raw.clusters.game.maglev_table_size = 5;
    assert.equal(ok(raw).clusters[0].maglevTableSize, 5);
  });

  test("names: format, and duplicate listener names", () => {
    const raw = base();
    raw.listeners[0].name = "Bad Name";
    raw.listeners.push({ name: "dup", address: "127.0.0.1:7001", cluster: "game" });
    raw.listeners.push({ name: "dup", address: "127.0.0.1:7002", cluster: "game" });
    raw.listeners.push({ name: "x".repeat(65), address: "127.0.0.1:7003", cluster: "game" });
    raw.clusters["Bad.Cluster"] = {};
    const errors = bad(raw);
    assert.match(errorAt(errors, "listeners[0].name").message, /not a valid name/);
    assert.match(
      errorAt(errors, "listeners[2].name").message,
      /duplicate listener name "dup" \(also listeners\[1\]\)/,
    );
    assert.match(errorAt(errors, "listeners[3].name").message, /not a valid name/);
    assert.match(errorAt(errors, 'clusters."Bad.Cluster"').message, /not a valid cluster name/);
    assert.equal(errors.length, 4);
  });

  test("duplicate listener protocol+address (canonical form compared)", () => {
    const raw = base();
    raw.listeners[0].address = "[::1]:7000";
    raw.listeners.push({ name: "l2", address: "[0:0::1]:7000", cluster: "game" });
    const errors = bad(raw);
    assert.match(errorAt(errors, "listeners[1].address").message, /already used by listeners\[0\]/);
  });

  test("duplicate backend address", () => {
    const raw = base();
    raw.clusters.game.backends.push({ address: "10.0.0.1:7001", weight: 5 });
    const errors = bad(raw);
    assert.match(
      errorAt(errors, "clusters.game.backends[2].address").message,
      /duplicate backend.*backends\[0\]/,
    );
    assert.equal(errors.length, 1);
  });

  test("listener naming an undefined cluster", () => {
    const raw = base();
    raw.listeners[0].cluster = "gmae";
    const errors = bad(raw);
    assert.match(
      errorAt(errors, "listeners[0].cluster").message,
      /no cluster named "gmae".*did you mean "game"/,
    );
    assert.equal(errors.length, 1);
    errorAt(
      bad({ listeners: [{ name: "a", address: "127.0.0.1:1", cluster: "nope" }] }),
      "listeners[0].cluster",
    );
  });

  test("a broken cluster is reported once, not again at its listeners", () => {
    const raw = base();
    raw.clusters.game.weight = 3;
    const errors = bad(raw);
    assert.equal(errors.length, 1);
    assert.equal(errors[0].path, "clusters.game.weight");
  });

  test("max_datagram_size is refused on tcp listeners", () => {
    const raw = base();
    raw.listeners[0].protocol = "tcp";
    raw.listeners[0].max_datagram_size = 1500;
    assert.match(errorAt(bad(raw), "listeners[0].max_datagram_size").message, /only applies to udp/);
    delete raw.listeners[0].max_datagram_size;
    assert.equal(ok(raw).listeners[0].protocol, "tcp");
  });

  test("many errors at once are all reported", () => {
    const errors = bad({
      admin: { listen: "nope", token: 1, extra: true },
      listeners: [
        { name: "a", address: "1.2.3.4", cluster: "missing", max_flows: -1, protocol: "sctp" },
        "not a table",
      ],
      clusters: {
        c: {
          balancer: "magleb",
          front_timeout: "x",
          maglev_table_size: 10,
          backends: [{ address: "bad" }, { address: "1.1.1.1:1", weight: 0 }, null],
        },
      },
      bogus: 1,
    });
    // Reported in file order by section, whatever order the checks ran in.
    const sections = errors.map((e) => e.path.split(/[.[]/, 1)[0]);
    const order = ["bogus", "admin", "listeners", "clusters"];
    assert.deepEqual(sections, [...sections].sort((a, b) => order.indexOf(a) - order.indexOf(b)));
    const paths = errors.map((e) => e.path).sort();
    assert.deepEqual(paths, [
      "admin.extra",
      "admin.listen",
      "admin.token",
      "bogus",
      "clusters.c.backends[0].address",
      "clusters.c.backends[1].weight",
      "clusters.c.backends[2]",
      "clusters.c.balancer",
      "clusters.c.front_timeout",
      "clusters.c.maglev_table_size",
      "listeners[0].address",
      "listeners[0].cluster",
      "listeners[0].max_flows",
      "listeners[0].protocol",
      "listeners[1]",
    ]);
  });

  test("non-object and odd inputs never throw", () => {
    const throwing = {};
    Object.defineProperty(throwing, "admin", {
      enumerable: true,
      get() {
        throw new Error("boom");
      },
    });
    const proxy = new Proxy({}, {
      ownKeys() {
        throw new Error("no keys");
      },
    });
    const cyclic: Record<string, unknown> = { listeners: [] };
    (cyclic.listeners as unknown[]).push(cyclic);
    const inputs: unknown[] = [
      null,
      undefined,
      0,
      NaN,
      "config",
      true,
      [],
      [{}],
      new Date(0),
      new Map(),
      Symbol("s"),
      () => 1,
      10n,
      Object.create(null),
      throwing,
      proxy,
      cyclic,
      { listeners: null, clusters: null, admin: null },
      { listeners: [null, 1, [], "x"], clusters: { a: null, b: [], c: 1 } },
      { clusters: { a: { backends: [null, [], { address: {} }] } } },
      {
        listeners: [{
          name: {},
          address: [],
          cluster: 1n,
          sources: { reject: "all", deny: {}, allow: null },
        }],
      },
      { __proto__: { admin: { listen: "bad" } } },
      JSON.parse('{"__proto__": {"x": 1}, "constructor": 1}'),
      { clusters: { constructor: {}, __proto__: {} } },
    ];
    for (const input of inputs) {
      const r = validateConfig(input);
      if (r.ok) continue;
      assert.ok(r.errors.length > 0);
      for (const e of r.errors) {
        assert.equal(typeof e.path, "string");
        assert.equal(typeof e.message, "string");
      }
    }
    assert.equal(validateConfig(null).ok, false);
    assert.equal(errorAt(bad([]), "").path, "");
    assert.equal(errorAt(bad(throwing), "").path, "");
    // Inherited keys are not config: an object whose prototype has `admin` still gets the default.
    assert.equal(ok({ __proto__: { admin: { listen: "bad" } } }).admin.listen.port, 9901);
    errorAt(bad(JSON.parse('{"__proto__": {"x": 1}}')), "__proto__");
  });
});

describe("TOML", () => {
  test("the default config validates", () => {
    const r = parseConfigToml(DEFAULT_CONFIG_TOML);
    if (!r.ok) assert.fail(JSON.stringify(r.errors));
    assert.equal(r.config.listeners[0].name, "echo-demo");
    assert.equal(r.config.listeners[0].address.port, 7000);
    const demo = r.config.clusters.find((c) => c.name === "demo");
    assert.equal(demo?.balancer, "maglev");
    assert.deepEqual(demo?.backends.map((b) => b.address.port), [7001, 7002]);
    assert.equal(r.config.admin.listen.port, 9901);
    // The TCP demo relays to the admin API itself, so it works with nothing else running.
    const tcp = r.config.listeners.find((l) => l.protocol === "tcp");
    const admin = r.config.clusters.find((c) => c.name === tcp?.cluster);
    assert.deepEqual(admin?.backends.map((b) => b.address), [r.config.admin.listen]);
  });

  test('a syntax error is one error at path "" with its line', () => {
    const r = parseConfigToml('[admin]\nlisten = "127.0.0.1:1"\ntoken = = 3\n[x]\n');
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.errors.length, 1);
    assert.equal(r.errors[0].path, "");
    assert.match(r.errors[0].message, /line 3/);
  });

  test("a redefined table is a syntax error", () => {
    const r = parseConfigToml("[admin]\n[admin]\n");
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.errors[0].message, /line 2/);
  });

  test("TOML dates and floats are type errors, not crashes", () => {
    const r = parseConfigToml("[admin]\ntoken = 1979-05-27\n[clusters.a]\nhash_seed = 1.5\nrequests = nan\n");
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.match(errorAt(r.errors, "admin.token").message, /got a date/);
    errorAt(r.errors, "clusters.a.hash_seed");
    errorAt(r.errors, "clusters.a.requests");
  });

  test("an integer too large for TOML to read exactly is reported with its line", () => {
    const r = parseConfigToml("[clusters.a]\nhash_seed = 99999999999999999999\n");
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.errors[0].message, /line 2/);
  });

  test("configToToml round-trips the default config", () => {
    const first = parseConfigToml(DEFAULT_CONFIG_TOML);
    if (!first.ok) return assert.fail(JSON.stringify(first.errors));
    const text = configToToml(first.config);
    const second = parseConfigToml(text);
    if (!second.ok) return assert.fail(JSON.stringify(second.errors) + "\n" + text);
    assert.deepEqual(second.config, first.config);
  });

  test("configToToml round-trips a config using every key", () => {
    const text = `
[admin]
listen = "[::1]:9000"
token = "s3cret\\"quoted\\""

[[listeners]]
name = "dns"
protocol = "udp"
address = "0.0.0.0:53"
cluster = "resolvers"
max_flows = 100000
max_datagram_size = 4096
[listeners.sources]
reject = ["port0", "loopback"]
deny = ["10.1.2.3/8", "2001:db8::/32"]
allow = ["0.0.0.0/0", "::/0", "192.0.2.1"]

[[listeners]]
name = "web_tcp-1"
protocol = "tcp"
address = "[2001:DB8:0:0::1]:443"
cluster = "web"
max_flows = 0
[listeners.sources]
reject = []

[clusters.web]
balancer = "least_flows"
backends = []

[clusters.resolvers]
balancer = "maglev"
affinity = "ip"
requests = 1
responses = 1
front_timeout = "1m30s"
back_timeout = 2500
proxy_protocol = "every"
hash_seed = 4294967295
fail_open = false
maglev_table_size = 251
backends = [
  { address = "10.0.0.1:53", weight = 1000, state = "up" },
  { address = "10.0.0.2:53", weight = 3, state = "draining" },
  { address = "[fe80::1]:53", state = "down" },
]
`;
    const first = parseConfigToml(text);
    if (!first.ok) return assert.fail(JSON.stringify(first.errors));
    const c = first.config;
    assert.deepEqual(c.clusters.map((x) => x.name), ["resolvers", "web"]);
    assert.equal(c.clusters[0].backTimeout, 2500);
    assert.equal(c.listeners[1].address.ip, "2001:db8::1");
    assert.equal(c.listeners[1].maxDatagramSize, 1500);
    assert.deepEqual(c.listeners[1].sources.reject, []);
    const out = configToToml(c);
    assert.match(out, /front_timeout = "1m30s"/);
    assert.match(out, /back_timeout = "2s500ms"/);
    const second = parseConfigToml(out);
    if (!second.ok) return assert.fail(JSON.stringify(second.errors) + "\n" + out);
    assert.deepEqual(second.config, c);
    // And the text is a fixed point: writing the re-read config gives the same text.
    assert.equal(configToToml(second.config), out);
  });

  test("configToToml of an empty config round-trips", () => {
    const c = ok({});
    const r = parseConfigToml(configToToml(c));
    if (!r.ok) return assert.fail(JSON.stringify(r.errors));
    assert.deepEqual(r.config, c);
  });
});

describe("honest defaults and checks", () => {
  test('an empty send or expect means unset: "" is any reply, as the reference says', () => {
    const h = ok({ clusters: { c: { health: { mode: "tcp", send: "", expect: "", expect_prefix: "" } } } })
      .clusters[0].health;
    assert.equal(h.send, null);
    assert.equal(h.expect, null);
    errorAt(bad({ clusters: { c: { health: { mode: "udp", send: "" } } } }), "clusters.c.health.send");
  });

  test("a token no HTTP client can send is refused", () => {
    for (const token of [" ", "two words", "caf\u00e9", "tab\there", "\u0000"]) {
      assert.match(errorAt(bad({ admin: { token } }), "admin.token").message, /visible ASCII/);
    }
    assert.equal(
      ok({ admin: { token: "Z2l2ZS1tZS1hLXRva2Vu~._-+/=" } }).admin.token,
      "Z2l2ZS1tZS1hLXRva2Vu~._-+/=",
    );
  });

  test("the admin API on a non-loopback address needs a token", () => {
    assert.match(errorAt(bad({ admin: { listen: "0.0.0.0:9901" } }), "admin.token").message, /no token/);
    ok({ admin: { listen: "0.0.0.0:9901", token: "t" } });
    ok({ admin: { listen: "[::1]:9901" } });
  });

  test("a listener on the admin API's own address is refused", () => {
    const clusters = { c: {} };
    const errors = bad({
      admin: { listen: "127.0.0.1:9901" },
      listeners: [{ name: "a", protocol: "tcp", address: "127.0.0.1:9901", cluster: "c" }],
      clusters,
    });
    assert.match(errorAt(errors, "listeners[0].address").message, /already used by admin\.listen/);
    // UDP on the same port is another socket.
    ok({ listeners: [{ name: "a", address: "127.0.0.1:9901", cluster: "c" }], clusters });
  });

  test("errors in a file name their line", () => {
    const r = parseConfigToml('[relay]\nworkers = 1\n\n[[listeners]]\nname = "x"\nadress = "1.2.3.4:5"\n');
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(errorAt(r.errors, "listeners[0].adress").line, 6);
    assert.equal(errorAt(r.errors, "listeners[0].address").line, 4);
  });
});

describe("sockets that would clash", () => {
  test("a wildcard listener overlaps a specific one on its port and family", () => {
    const clusters = { c: {} };
    const errors = bad({
      listeners: [
        { name: "a", address: "127.0.0.1:5000", cluster: "c" },
        { name: "b", address: "0.0.0.0:5000", cluster: "c" },
        { name: "d", protocol: "tcp", address: "0.0.0.0:9901", cluster: "c" },
      ],
      clusters,
    });
    assert.match(errorAt(errors, "listeners[1].address").message, /overlaps listeners\[0\]/);
    assert.match(errorAt(errors, "listeners[2].address").message, /overlaps admin\.listen/);
    ok({
      listeners: [
        { name: "a", address: "127.0.0.1:5000", cluster: "c" },
        { name: "b", address: "[::]:5000", cluster: "c" },
        { name: "e", protocol: "tcp", address: "0.0.0.0:5000", cluster: "c" },
      ],
      clusters,
    });
  });
});

describe("keys that wait for a restart", () => {
  test("the declaration marks workers, [redis] and [fleet]; a change of them is named", async () => {
    const { restartChanges, restartKeys } = await import("../core/config/restart.ts");
    assert.ok(restartKeys().includes("relay.workers"));
    assert.ok(restartKeys().includes("redis.url"));
    assert.ok(!restartKeys().includes("relay.log_level"));
    const a = ok({});
    const b = ok({ relay: { workers: 4, log_level: "debug" } });
    assert.deepEqual(restartChanges(a, b), ["relay.workers"]);
    assert.deepEqual(restartChanges(a, a), []);
  });
});
