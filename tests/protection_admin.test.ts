/**
 * The edge-protection admin routes over a real relay core: bans placed, listed with hits, refused and
 * lifted; top talkers listed and reset; the protection metric families; the worker-pool merge.
 *
 * @module
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createAdminApp } from "../admin/app.ts";
import type { BanInfo, TopSnapshot } from "../core/protection_api.ts";
import { Drop } from "../core/listener.ts";
import { RelayCore } from "../core/relay_core.ts";
import {
  coreProtection,
  mergeBans,
  poolProtection,
  protectionCall,
} from "../shell/relay/protection_control.ts";
import { FakeControl } from "./support/fake_control.ts";
import { bytes, cluster, config, listener } from "./support/fixtures.ts";
import { parsePrometheus } from "./support/prometheus.ts";

const TOKEN = "t";

function setup() {
  const core = new RelayCore(config([cluster()], [listener()]), { seed: 1 });
  let now = 1000;
  const clocks = { clock: () => now, wall: () => 1_700_000_000_000 + now };
  const control = Object.assign(new FakeControl(), { protection: coreProtection(() => core, clocks) });
  const app = createAdminApp(control, { token: TOKEN });
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await app.request(path, {
      method,
      headers: {
        authorization: `Bearer ${TOKEN}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text.startsWith("{") ? JSON.parse(text) : undefined, text };
  };
  return { core, call, advance: (ms: number) => (now += ms), l: core.listener("l")! };
}

describe("bans API", () => {
  test("POST places a ban the core enforces; GET lists it with hits; DELETE lifts it", async () => {
    const { core, call, advance, l } = setup();
    const placed = await call("POST", "/api/v1/bans", { cidr: "192.0.2.77/24", ttl: "10m", reason: "flood" });
    assert.equal(placed.status, 201, placed.text);
    assert.equal(placed.json.ban.cidr, "192.0.2.0/24");
    assert.equal(placed.json.ban.ttlSeconds, 600);
    assert.equal(placed.json.ban.origin, "api");
    assert.equal(core.fromClient(l, "192.0.2.5", 1, bytes(4), 1001), Drop.Banned);
    assert.equal(l.counters.drops.banned, 1);
    const listed = await call("GET", "/api/v1/bans");
    assert.equal(listed.json.bans.length, 1);
    assert.equal(listed.json.bans[0].hits, 1);
    advance(60_000);
    assert.equal((await call("GET", "/api/v1/bans")).json.bans[0].ttlSeconds, 540);
    const metrics = await call("GET", "/metrics");
    assert.equal(metrics.status, 200);
    const fams = parsePrometheus(metrics.text);
    assert.equal(fams.get("ferry_bans")?.samples[0].value, 1);
    assert.equal((await call("DELETE", "/api/v1/bans?cidr=192.0.2.0/24")).status, 200);
    assert.equal((await call("DELETE", "/api/v1/bans?cidr=192.0.2.0/24")).status, 404);
    assert.equal(typeof core.fromClient(l, "192.0.2.5", 1, bytes(4), 70_000), "object");
  });

  test("a ban expires by its TTL; bad requests are 400s naming the field", async () => {
    const { call, advance } = setup();
    await call("POST", "/api/v1/bans", { cidr: "2001:db8::/32", ttl: 5 });
    assert.equal((await call("GET", "/api/v1/bans")).json.bans.length, 1);
    advance(5000);
    assert.equal((await call("GET", "/api/v1/bans")).json.bans.length, 0);
    for (
      const [body, path] of [
        [{ cidr: "10.0.0.0/33" }, "cidr"],
        [{}, "cidr"],
        [{ cidr: "10.0.0.1", ttl: "forever" }, "ttl"],
        [{ cidr: "10.0.0.1", reason: 3 }, "reason"],
        [{ cidr: "10.0.0.1", extra: 1 }, "extra"],
      ] as const
    ) {
      const r = await call("POST", "/api/v1/bans", body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.ok(r.json.errors.some((e: { path: string }) => e.path === path), r.text);
    }
  });
});

describe("top API", () => {
  test("ranks sources and resets", async () => {
    const { core, call, l } = setup();
    for (let i = 0; i < 6; i++) core.fromClient(l, "198.51.100.1", 1, bytes(100), 1000);
    core.fromClient(l, "198.51.100.2", 1, bytes(10), 1000);
    const r = await call("GET", "/api/v1/top?n=1");
    assert.equal(r.status, 200, r.text);
    const top = r.json as TopSnapshot;
    assert.deepEqual(top.datagrams.top, [{ source: "198.51.100.1", count: 6, error: 0 }]);
    assert.equal(top.bytes.total, 610);
    assert.equal(top.flows.total, 2);
    assert.equal((await call("DELETE", "/api/v1/top")).status, 200);
    assert.equal(((await call("GET", "/api/v1/top")).json as TopSnapshot).datagrams.total, 0);
    assert.equal((await call("GET", "/api/v1/top?reset=maybe")).status, 400);
  });

  test("routes are 404s without a protection control", async () => {
    const app = createAdminApp(new FakeControl(), { token: TOKEN });
    const res = await app.request("/api/v1/bans", { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 404);
  });
});

describe("worker pool merge", () => {
  test("bans go to every worker, hits and top counts are summed", async () => {
    const cores = [0, 1].map(() => new RelayCore(config([cluster()], [listener()]), { seed: 1 }));
    const clocks = { clock: () => 10, wall: () => 1_700_000_000_000 };
    const pool = poolProtection((op) => Promise.resolve(cores.map((c) => protectionCall(c, clocks, op))));
    const ban = await pool.addBan({ cidr: "10.0.0.0/8", ttlMs: 0, reason: "x" });
    assert.equal(ban.cidr, "10.0.0.0/8");
    for (const c of cores) {
      assert.equal(c.fromClient(c.listener("l")!, "10.1.1.1", 1, bytes(1), 11), Drop.Banned);
    }
    const bans: BanInfo[] = await pool.bans();
    assert.equal(bans.length, 1);
    assert.equal(bans[0].hits, 2);
    const top = await pool.top(5, false);
    assert.equal(top.drops.top[0].count, 2, "both workers' drops of 10.1.1.1");
    assert.equal((await pool.metrics()).bans, 1);
    assert.ok(await pool.removeBan("10.0.0.0/8"));
    assert.equal(mergeBans([[], []]).length, 0);
  });
});
