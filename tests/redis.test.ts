// The Redis control plane against a real redis-server (tests/support/redis.ts starts one on a free loopback
// port; the tests skip when redis-server is not installed): udp-gate routing, the disconnect channel, the
// fleet, and an outage. Two Ferry processes of this runtime (`deno main.ts` or `bun main.ts`) share one
// Redis, as two edge VMs would; the keys and channel are udp-gate's, to show the compatibility.
//
// UDP backends answer with their own name, so a reply says which backend a flow is pinned to.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { Redis } from "ioredis";
import { parseBackendValue, RedisRouter } from "../shell/redis/router.ts";
import { RedisConnection } from "../shell/redis/connection.ts";
import { log } from "../shell/process/logging.ts";
import { parseDisconnect } from "../shell/redis/disconnects.ts";
import { fleetValue, withFleetBackends } from "../shell/redis/fleet.ts";
import { escapeGlob, readHeartbeat } from "../shell/redis/heartbeat.ts";
import { configOf } from "./support/fake_control.ts";
import { FerryProcess, ferryTargets, freePorts, killAll } from "./support/ferry_process.ts";
import { killAllRedis, redisMissing, RedisServer } from "./support/redis.ts";
import { Client, EchoBackend, sleep } from "./support/udp.ts";

const TOKEN = "redis-test-token";
const T = { timeout: 20_000 };
const KEY = "udp_gate:backend";
const DISCONNECT = "udp_gate:disconnect";
const PREFIX = "ferrytest:fleet";
const target = ferryTargets()[0];
const bytes = (s: string) => new TextEncoder().encode(s);

const peers: { close(): void }[] = [];
after(() => {
  killAll();
  killAllRedis();
  for (const p of peers) p.close();
});

/** A UDP backend that answers every datagram with `name`. */
async function named(name: string): Promise<EchoBackend> {
  const b = await new EchoBackend().start();
  b.reply = () => bytes(name);
  peers.push(b);
  return b;
}

async function client(): Promise<Client> {
  const c = await new Client().start();
  peers.push(c);
  return c;
}

/** Polls `cond` every 50 ms until it holds or `ms` passes; returns whether it held. */
async function eventually(cond: () => Promise<boolean>, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond().catch(() => false)) return true;
    if (Date.now() > end) return false;
    await sleep(50);
  }
}

const at = (port: number) => `"127.0.0.1:${port}"`;

describe("redis values", () => {
  test("a backend key holds ip:port or [v6]:port, trimmed; anything else falls back", () => {
    assert.deepEqual(parseBackendValue(" 10.0.0.1:7000\n"), {
      result: "ok",
      address: { ip: "10.0.0.1", port: 7000, family: 4 },
    });
    assert.equal(parseBackendValue("[2001:db8::1]:53").result, "ok");
    assert.equal(parseBackendValue(null).result, "empty");
    assert.equal(parseBackendValue("  ").result, "empty");
    for (
      const bad of ["garbage", "10.0.0.1", "10.0.0.1:0", "0.0.0.0:53", "224.0.0.1:53", "255.255.255.255:9"]
    ) {
      assert.equal(parseBackendValue(bad).result, "invalid", bad);
    }
    assert.equal(parseBackendValue("[::]:53").result, "invalid");
  });

  test("a disconnect message names ip:port or ip", () => {
    assert.equal(parseDisconnect("10.0.0.1:4000"), "10.0.0.1:4000");
    assert.equal(parseDisconnect(" 10.0.0.1 "), "10.0.0.1");
    assert.equal(parseDisconnect("[2001:db8::1]:53"), "[2001:db8::1]:53");
    assert.equal(parseDisconnect("2001:db8::1"), "2001:db8::1");
    for (const bad of ["", "hello", "10.0.0.1:x", "x".repeat(100), '{"client":"10.0.0.1"}']) {
      assert.equal(parseDisconnect(bad), null, bad);
    }
  });

  test("fleet values replace a cluster's backends, validated like a config file", () => {
    const config = configOf(`
[[listeners]]
name = "l"
address = "127.0.0.1:7000"
cluster = "c"
[clusters.c]
backends = [{ address = "127.0.0.1:7001" }]
`);
    const next = withFleetBackends(
      config,
      "c",
      '[{"address":"127.0.0.1:7002","weight":3,"state":"draining"}]',
    );
    assert.equal(fleetValue(next, "c"), '[{"address":"127.0.0.1:7002","weight":3,"state":"draining"}]');
    assert.equal(fleetValue(next, "nope"), null);
    const bad = [
      "not json",
      '{"address":"127.0.0.1:1"}',
      "[1]",
      '[{"address":"127.0.0.1:1","port":2}]',
      '[{"address":"nowhere"}]',
      '[{"address":"127.0.0.1:1","weight":5000}]',
      '[{"address":"127.0.0.1:1","state":"sideways"}]',
    ];
    for (const value of bad) assert.throws(() => withFleetBackends(config, "c", value), value);
    assert.throws(() => withFleetBackends(config, "other", "[]"));
  });

  test("heartbeats are read defensively; glob characters in the prefix are escaped", () => {
    const now = Date.parse("2030-01-01T00:00:10Z");
    const hb = readHeartbeat(JSON.stringify({ instance: "a", flows: 3, at: now - 2000 }), "a", now);
    assert.equal(hb?.instance, "a");
    assert.equal(hb?.flows, 3);
    assert.equal(hb?.ageSeconds, 2);
    assert.equal(hb?.self, true);
    assert.equal(hb?.lastSeen, "2030-01-01T00:00:08.000Z");
    for (const bad of [null, "nope", "[]", '{"instance":1,"at":1}', '{"instance":"a"}']) {
      assert.equal(readHeartbeat(bad, "a", now), null, String(bad));
    }
    assert.equal(escapeGlob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
  });
});

const missing = redisMissing();
if (missing !== null) console.log(`skipping the redis-server tests: ${missing}`);

describe("redis control plane: routing, disconnects, fleet", { skip: missing ?? false }, () => {
  let redis: RedisServer;
  let r: Redis;
  let a: FerryProcess;
  let b: FerryProcess;
  const backends: Record<string, EchoBackend> = {};
  const flowsOf = async (f: FerryProcess, c: Client) =>
    (await f.json<{ flows: { backend: string | null }[] }>(`/api/v1/flows?client=127.0.0.1:${c.port}`)).flows;
  const poolOf = async (f: FerryProcess) =>
    (await f.json<{ backends: { address: string; state: string; weight: number }[] }>(
      "/api/v1/clusters/pool/backends",
    )).backends.map((x) => `${x.address} ${x.state} ${x.weight}`).sort();
  const addr = (name: string) => `127.0.0.1:${backends[name].port}`;

  after(async () => {
    r?.disconnect();
    a?.kill();
    b?.kill();
    await redis?.stop();
  });

  test(`[${target.name}] two instances start on one redis-server`, { timeout: 30_000 }, async () => {
    redis = await RedisServer.start();
    r = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    r.on("error", () => {});
    for (const name of ["k1", "k2", "fb", "p1", "p2", "p3"]) backends[name] = await named(name);
    const ports = await freePorts("udp", 4);
    const toml = (instance: string, gate: number, pool: number) => `
[relay]
grace_period = "100ms"
[admin]
listen = "127.0.0.1:0"
token = "${TOKEN}"
[redis]
url = "${redis.url}"
disconnect_channel = "${DISCONNECT}"
timeout = "200ms"
[fleet]
instance = "${instance}"
prefix = "${PREFIX}"
heartbeat = "200ms"
[[listeners]]
name = "gate"
address = ${at(gate)}
cluster = "gate"
[[listeners]]
name = "pool"
address = ${at(pool)}
cluster = "pool"
[clusters.gate]
balancer = "redis"
redis_key = "${KEY}"
redis_fallback = "round_robin"
backends = [{ address = ${at(backends.fb.port)} }]
[clusters.pool]
balancer = "round_robin"
backends = [{ address = ${at(backends.p1.port)} }]
`;
    [a, b] = await Promise.all([
      FerryProcess.start(target, toml("edge-a", ports[0], ports[1]), { token: TOKEN, timeoutMs: 20_000 }),
      FerryProcess.start(target, toml("edge-b", ports[2], ports[3]), { token: TOKEN, timeoutMs: 20_000 }),
    ]);
    for (const f of [a, b]) {
      await f.waitLog((l) => l.event === "redis_connected");
      assert.ok(await eventually(async () => (await f.metric("ferry_redis_connected")) === 1));
    }
    // Subscriptions ride on a connection of their own: wait until both instances listen on both channels.
    const subscribed = async () => {
      const counts = await r.call("PUBSUB", "NUMSUB", DISCONNECT, `${PREFIX}:changes`) as (string | number)[];
      return Number(counts[1]) === 2 && Number(counts[3]) === 2;
    };
    assert.ok(await eventually(subscribed), "both instances subscribe to both channels");
  });

  test(`[${target.name}] routing follows the key for new flows only`, T, async () => {
    await r.set(KEY, addr("k1"));
    const c1 = await client();
    assert.equal(await c1.ask("x", a.port("gate"), 3000), "k1");
    await r.set(KEY, ` ${addr("k2")}\n`); // udp-gate's writers may leave whitespace
    assert.equal(await c1.ask("y", a.port("gate"), 3000), "k1", "an existing flow stays pinned");
    const c2 = await client();
    assert.equal(await c2.ask("x", a.port("gate"), 3000), "k2", "a new flow reads the key again");
    assert.equal(await c2.ask("x", b.port("gate"), 3000), "k2", "so does the other instance");
    assert.equal(await a.metric("ferry_redis_routing_lookups_total", { result: "ok" }), 2);
    assert.equal(await b.metric("ferry_redis_routing_lookups_total", { result: "ok" }), 1);
    assert.equal((await flowsOf(a, c1))[0].backend, addr("k1"));
  });

  test(
    `[${target.name}] a disconnect message closes the flow; the next datagram opens a new one`,
    T,
    async () => {
      await r.set(KEY, addr("k1"));
      const c = await client();
      assert.equal(await c.ask("x", a.port("gate"), 3000), "k1");
      await r.set(KEY, addr("k2"));
      const created = await a.metric("ferry_listener_flows_created_total", { listener: "gate" });
      assert.equal(await r.publish(DISCONNECT, `127.0.0.1:${c.port}`), 2, "both instances subscribe");
      assert.ok(await eventually(async () => (await flowsOf(a, c)).length === 0), "the flow is closed");
      assert.equal(
        await a.metric("ferry_listener_flows_closed_total", { listener: "gate", reason: "disconnected" }),
        1,
      );
      assert.equal(
        await c.ask("y", a.port("gate"), 3000),
        "k2",
        "a new flow, routed by the key as it is now",
      );
      assert.equal(await a.metric("ferry_listener_flows_created_total", { listener: "gate" }), created + 1);
      for (const f of [a, b]) {
        assert.ok(
          await eventually(async () =>
            (await f.metric("ferry_redis_disconnects_total", { result: "closed" })) === 1
          ),
        );
      }
    },
  );

  test(`[${target.name}] a fleet change made on one instance reaches the other`, T, async () => {
    const before = await b.metric("ferry_fleet_changes_total", { result: "applied" });
    const added = await a.api("/api/v1/clusters/pool/backends?scope=fleet", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ address: addr("p2"), weight: 2 }),
    });
    assert.equal(added.status, 201, await added.text());
    const want = [`${addr("p1")} up 1`, `${addr("p2")} up 2`].sort();
    assert.deepEqual(await poolOf(a), want);
    assert.ok(await eventually(async () => JSON.stringify(await poolOf(b)) === JSON.stringify(want)));
    assert.equal(await b.metric("ferry_fleet_changes_total", { result: "applied" }), before + 1);
    // And back: drain p1 from the other side.
    const drained = await b.api(`/api/v1/clusters/pool/backends/${addr("p1")}?scope=fleet`, {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ state: "draining" }),
    });
    assert.equal(drained.status, 200, await drained.text());
    const want2 = [`${addr("p1")} draining 1`, `${addr("p2")} up 2`].sort();
    assert.ok(await eventually(async () => JSON.stringify(await poolOf(a)) === JSON.stringify(want2)));
    const c = await client();
    assert.equal(await c.ask("x", a.port("pool"), 3000), "p2", "the drained backend takes no new flow");
    assert.deepEqual(JSON.parse((await r.hget(`${PREFIX}:clusters`, "pool"))!), [
      { address: addr("p1"), weight: 1, state: "draining" },
      { address: addr("p2"), weight: 2, state: "up" },
    ]);
    // The instance that made a change hears it too, and changes nothing.
    assert.equal(await b.metric("ferry_fleet_changes_total", { result: "applied" }), before + 1);
  });

  test(`[${target.name}] GET /fleet lists the live instances from any instance`, T, async () => {
    let list: { instance: string; self: boolean; version: string; runtime: string; flows: number }[] = [];
    assert.ok(
      await eventually(async () => {
        list = (await b.json<{ instances: typeof list }>("/api/v1/fleet")).instances;
        // Heartbeats are written every 200 ms: edge-a's flows show up in one of them.
        return list.length === 2 && list[0].flows >= 1;
      }),
      JSON.stringify(list),
    );
    assert.deepEqual(list.map((i) => [i.instance, i.self]), [["edge-a", false], ["edge-b", true]]);
    assert.equal(list[0].runtime, target.runtime);
    assert.ok(list[0].version !== "", JSON.stringify(list[0]));
    const scope = await a.api("/api/v1/clusters/pool/backends?scope=planet", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ address: addr("p3") }),
    });
    assert.equal(scope.status, 400, await scope.text());
  });

  test(`[${target.name}] an instance that reconnects loads the fleet state first`, T, async () => {
    // Written without an announcement, as if changed while this instance was away.
    const value = JSON.stringify([{ address: addr("p3"), weight: 1, state: "up" }]);
    await r.hset(`${PREFIX}:clusters`, "pool", value);
    const connects = await a.metric("ferry_redis_connects_total");
    await r.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes");
    for (const f of [a, b]) {
      assert.ok(await eventually(async () => (await poolOf(f)).join() === `${addr("p3")} up 1`));
    }
    assert.ok((await a.metric("ferry_redis_connects_total")) > connects);
    // A reload puts the file's backends back; the fleet's state is then loaded over them again.
    const applied = await a.metric("ferry_fleet_changes_total", { result: "applied" });
    process.kill(a.child.pid!, "SIGHUP");
    await a.waitLog((l) => l.event === "reloaded");
    assert.ok(
      await eventually(async () =>
        (await a.metric("ferry_fleet_changes_total", { result: "applied" })) === applied + 1
      ),
    );
    assert.deepEqual(await poolOf(a), [`${addr("p3")} up 1`]);
  });

  test(`[${target.name}] bad values in Redis are counted and change nothing`, T, async () => {
    // The backend key: garbage, a multicast address, port 0, nothing: each flow falls back (round_robin).
    for (const [i, value] of ["garbage", "224.0.0.1:5000", "127.0.0.1:0", null].entries()) {
      if (value === null) await r.del(KEY);
      else await r.set(KEY, value);
      const c = await client();
      assert.equal(await c.ask("x", a.port("gate"), 3000), "fb", `fallback for ${value} (${i})`);
    }
    assert.equal(await a.metric("ferry_redis_routing_lookups_total", { result: "invalid" }), 3);
    assert.equal(await a.metric("ferry_redis_routing_lookups_total", { result: "empty" }), 1);
    // The fleet hash: garbage is rejected on every instance, which keep their backends.
    const pool = await poolOf(a);
    const rejected = await b.metric("ferry_fleet_changes_total", { result: "rejected" });
    for (const value of ["garbage", '[{"address":"nowhere"}]', '[{"address":"127.0.0.1:9","weight":0}]']) {
      await r.hset(`${PREFIX}:clusters`, "pool", value);
      await r.publish(`${PREFIX}:changes`, "pool");
    }
    await r.publish(`${PREFIX}:changes`, "no-such-cluster");
    for (const f of [a, b]) {
      assert.ok(
        await eventually(async () =>
          (await f.metric("ferry_fleet_changes_total", { result: "rejected" })) === rejected + 3
        ),
      );
      assert.deepEqual(await poolOf(f), pool);
    }
    const rejectedLog = a.logs().find((l) => l.event === "fleet_rejected");
    assert.ok(rejectedLog !== undefined, "a rejected change is logged");
    // Put a good value back, so a later reconnect does not load garbage.
    await r.hset(
      `${PREFIX}:clusters`,
      "pool",
      JSON.stringify([{ address: addr("p3"), weight: 1, state: "up" }]),
    );
    // Disconnect messages that name no client are ignored.
    const c = await client();
    await r.set(KEY, addr("k1"));
    assert.equal(await c.ask("x", a.port("gate"), 3000), "k1");
    for (const m of ["hello", "", "127.0.0.1:x", "DISCONNECT ALL"]) await r.publish(DISCONNECT, m);
    assert.ok(
      await eventually(async () =>
        (await a.metric("ferry_redis_disconnects_total", { result: "ignored" })) === 4
      ),
    );
    assert.equal((await flowsOf(a, c)).length, 1, "the flow is still there");
    assert.equal(await c.ask("y", a.port("gate"), 3000), "k1");
  });

  test(
    `[${target.name}] a hung Redis holds up only the new flows waiting on it, for the timeout`,
    T,
    async () => {
      await r.set(KEY, addr("k1"));
      const pinned = await client();
      assert.equal(await pinned.ask("x", a.port("gate"), 3000), "k1");
      const errors = await a.metric("ferry_redis_routing_lookups_total", { result: "error" });
      redis.pause();
      try {
        const fresh = await client();
        const start = Date.now();
        const waiting = fresh.ask("x", a.port("gate"), 3000);
        let answered = false;
        waiting.then(() => (answered = true));
        // Meanwhile the established flow and other clusters answer: before the new flow gives up.
        assert.equal(await pinned.ask("y", a.port("gate"), 3000), "k1");
        const other = await client();
        assert.equal(await other.ask("x", a.port("pool"), 3000), "p3");
        assert.equal(answered, false, "the others did not wait for the lookup");
        assert.equal(await waiting, "fb", "after [redis] timeout the new flow falls back");
        const took = Date.now() - start;
        assert.ok(took >= 180 && took < 2500, `the lookup gave up after ${took} ms (timeout 200 ms)`);
        assert.equal(await a.metric("ferry_redis_routing_lookups_total", { result: "error" }), errors + 1);
      } finally {
        redis.resume();
      }
    },
  );

  test(`[${target.name}] redis_cache reuses an answer; without it every new flow asks`, T, async () => {
    const connection = new RedisConnection(redis.url, 200);
    const router = new RedisRouter(
      { url: redis.url, disconnectChannel: "", timeout: 200 },
      { shared: connection },
      log,
    );
    try {
      assert.ok(await eventually(() => Promise.resolve(connection.stats.connected)));
      await r.set("cache:key", addr("k1"));
      const cached = { key: "cache:key", fallback: "drop" as const, cacheMs: 300 };
      assert.equal((await router.lookup(cached, "c"))?.port, backends.k1.port);
      await r.set("cache:key", addr("k2"));
      assert.equal((await router.lookup(cached, "c"))?.port, backends.k1.port, "within redis_cache");
      assert.equal((await router.lookup({ ...cached, cacheMs: 0 }, "c"))?.port, backends.k2.port);
      await sleep(350);
      assert.equal((await router.lookup(cached, "c"))?.port, backends.k2.port, "after redis_cache");
      assert.deepEqual(router.counts, { ok: 3, empty: 0, invalid: 0, error: 0, cached: 1 });
    } finally {
      router.close();
      connection.close();
    }
  });

  test(`[${target.name}] redis-server killed mid-run: both keep forwarding and reconnect when it returns`, {
    timeout: 30_000,
  }, async () => {
    await r.set(KEY, addr("k1"));
    const ca = await client();
    const cb = await client();
    assert.equal(await ca.ask("x", a.port("gate"), 3000), "k1");
    assert.equal(await cb.ask("x", b.port("pool"), 3000), "p3");
    r.disconnect();
    await redis.crash();
    for (const f of [a, b]) {
      assert.ok(await eventually(async () => (await f.metric("ferry_redis_connected")) === 0));
    }
    // Established flows keep their backends; new flows fall back; other clusters carry on.
    for (let i = 0; i < 3; i++) {
      assert.equal(await ca.ask(`a${i}`, a.port("gate"), 3000), "k1");
      assert.equal(await cb.ask(`b${i}`, b.port("pool"), 3000), "p3");
    }
    const fresh = await client();
    assert.equal(await fresh.ask("x", b.port("gate"), 3000), "fb", "no Redis: the fallback balancer");
    assert.ok((await b.metric("ferry_redis_routing_lookups_total", { result: "error" })) >= 1);
    const listing = await a.api("/api/v1/fleet");
    assert.equal(listing.status, 503, await listing.text());
    const refused = await a.api(`/api/v1/clusters/pool/backends?scope=fleet`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ address: addr("p1") }),
    });
    assert.equal(refused.status, 503, "a fleet change needs Redis");
    assert.deepEqual(await poolOf(a), [`${addr("p3")} up 1`], "and nothing changed");
    await sleep(300);
    await redis.restart();
    for (const f of [a, b]) {
      assert.ok(
        await eventually(async () => (await f.metric("ferry_redis_connected")) === 1, 10_000),
        `${f.target.name} reconnects`,
      );
      await f.waitLog((l) => l.event === "redis_restored");
      assert.ok(f.logs().filter((l) => l.event === "redis_lost").length <= 2, "lost is logged per outage");
    }
    r = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    r.on("error", () => {});
    await r.set(KEY, addr("k2"));
    const after = await client();
    assert.equal(await after.ask("x", a.port("gate"), 3000), "k2", "routing reads Redis again");
    assert.equal(await ca.ask("z", a.port("gate"), 3000), "k1");
    // The restarted Redis is empty: the instances keep their last known fleet state.
    assert.deepEqual(await poolOf(b), [`${addr("p3")} up 1`]);
  });

  test(`[${target.name}] workers = 2: each worker routes through its own connection`, {
    timeout: 20_000,
    // Deno's UDP sockets have no SO_REUSEPORT, so only Bun runs UDP listeners on several workers.
    skip: target.runtime === "deno" ? "UDP workers need Bun (SO_REUSEPORT)" : false,
  }, async () => {
    const [port] = await freePorts("udp", 1);
    const w = await FerryProcess.start(
      target,
      `
[relay]
workers = 2
grace_period = "100ms"
[admin]
listen = "127.0.0.1:0"
token = "${TOKEN}"
[redis]
url = "${redis.url}"
[[listeners]]
name = "gate"
address = ${at(port)}
cluster = "gate"
[clusters.gate]
balancer = "redis"
redis_key = "${KEY}"
`,
      { token: TOKEN, timeoutMs: 20_000 },
    );
    try {
      await r.set(KEY, addr("k1"));
      assert.ok(await eventually(async () => (await w.metric("ferry_redis_connected")) === 1));
      const many = await Promise.all(Array.from({ length: 12 }, () => client()));
      const replies = await Promise.all(many.map((c) => c.ask("x", port, 3000)));
      assert.deepEqual(replies, many.map(() => "k1"));
      assert.equal(await w.metric("ferry_redis_routing_lookups_total", { result: "ok" }), 12);
      const workers = new Set(
        (await w.json<{ flows: { id: string }[] }>("/api/v1/flows")).flows.map((f) => f.id.split(":")[0]),
      );
      assert.equal(workers.size, 2, "both workers admitted flows");
    } finally {
      w.kill();
    }
  });

  test(`[${target.name}] an instance that stops leaves the fleet list at once`, T, async () => {
    await b.stop();
    const list = (await a.json<{ instances: { instance: string }[] }>("/api/v1/fleet")).instances;
    assert.deepEqual(list.map((i) => i.instance), ["edge-a"]);
  });
});

describe("two instances, maglev, the same hash_seed, no Redis", () => {
  let c: FerryProcess;
  let d: FerryProcess;
  after(() => {
    c?.kill();
    d?.kill();
  });

  test(`[${target.name}] send each client to the same backend`, { timeout: 30_000 }, async () => {
    const hs = await Promise.all(["h0", "h1", "h2", "h3"].map(named));
    const ports = await freePorts("udp", 2);
    const toml = (port: number) => `
[admin]
listen = "127.0.0.1:0"
token = "${TOKEN}"
[[listeners]]
name = "hash"
address = ${at(port)}
cluster = "hash"
[clusters.hash]
balancer = "maglev"
hash_seed = 20240601
backends = [${hs.map((h) => `{ address = ${at(h.port)} }`).join(", ")}]
`;
    [c, d] = await Promise.all(ports.map((p) => FerryProcess.start(target, toml(p), { token: TOKEN })));
    const clients = await Promise.all(Array.from({ length: 24 }, () => client()));
    const viaC = await Promise.all(clients.map((x) => x.ask("x", c.port("hash"), 3000)));
    const viaD = await Promise.all(clients.map((x) => x.ask("x", d.port("hash"), 3000)));
    assert.deepEqual(viaC, viaD);
    assert.ok(new Set(viaC).size >= 2, `clients spread over backends: ${viaC.join(" ")}`);
    assert.ok(!viaC.includes(null));
    // Not in a fleet: scope=fleet and GET /fleet say so.
    const scoped = await c.api(`/api/v1/clusters/hash/backends?scope=fleet`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ address: "127.0.0.1:9" }),
    });
    assert.equal(scoped.status, 409);
    assert.match((await scoped.json()).error, /not in a fleet/);
    assert.equal((await c.api("/api/v1/fleet")).status, 409);
    const families = await c.metrics();
    assert.equal(families.find((f) => f.name === "ferry_redis_connected")?.samples.length, 0);
  });
});
