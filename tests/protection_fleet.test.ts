/**
 * Fleet bans against a real redis-server: a ban placed on one instance is enforced on every other within a
 * second (each refuses a new flow from the block), lifted everywhere, loaded by an instance that joins
 * later, and an automatic ban is shared by itself; a ban with a TTL lapses on every instance at the same
 * wall-clock time (each admits the source again) and an instance joining after that neither loads it nor
 * leaves it in the hash. Skips when redis-server is not installed.
 *
 * @module
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { Drop } from "../core/listener.ts";
import { RelayCore } from "../core/relay_core.ts";
import { RedisConnection } from "../shell/redis/connection.ts";
import { FleetBans } from "../shell/redis/fleet_bans.ts";
import { coreProtection } from "../shell/relay/protection_control.ts";
import { bytes, cluster, config, listener } from "./support/fixtures.ts";
import { killAllRedis, redisMissing, RedisServer } from "./support/redis.ts";

const missing = redisMissing();
if (missing !== null) console.log(`skipping the fleet ban tests: ${missing}`);
after(() => killAllRedis());

const log = getLogger(["ferry-test", "fleet-bans"]);
const settings = (instance: string) => ({ instance, prefix: "ferrytest:fleet", heartbeat: 5000 });

async function until(cond: () => boolean, ms = 1000): Promise<number> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - start;
}

describe("fleet bans through redis", { skip: missing ?? false, timeout: 20_000 }, () => {
  test("added on one instance, enforced on all within a second, removed everywhere, loaded on join", async () => {
    const redis = await RedisServer.start();
    const open: { close(): void }[] = [];
    const stops: FleetBans[] = [];
    const instance = (name: string, limits = false) => {
      const core = new RelayCore(
        config([cluster()], [
          listener(
            limits
              ? {
                protection: {
                  limits: {
                    perIp: { newFlows: 1, datagrams: 0, bytes: 0 },
                    perPrefix: { newFlows: 0, datagrams: 0, bytes: 0 },
                    burstMs: 1000,
                    prefixV4: 24,
                    prefixV6: 64,
                    tableSize: 64,
                    banAfterMs: 100,
                    banForMs: 60_000,
                  },
                  filter: null,
                  amplification: null,
                },
              }
              : {},
          ),
        ]),
        { seed: 1 },
      );
      const connection = new RedisConnection(redis.url, 500);
      open.push(connection);
      const local = coreProtection(() => core, { clock: () => performance.now(), wall: Date.now });
      const bans = new FleetBans(connection, settings(name), local, Date.now, 2000, log);
      stops.push(bans);
      return { core, connection, bans, api: bans.shared(), l: core.listener("l")! };
    };
    try {
      const a = instance("a");
      const b = instance("b", true);
      await until(() => a.connection.stats.connected && b.connection.stats.connected, 5000);
      // Subscriptions are ready once a round trip on each subscriber has happened.
      await Promise.all([a.connection.subscriber.ping(), b.connection.subscriber.ping()]);
      const now = () => performance.now();

      await a.api.addBan({ cidr: "192.0.2.0/24", ttlMs: 600_000, reason: "flood from test" });
      const took = await until(() => b.core.protection.bans.size === 1);
      assert.ok(took < 1000, `${took} ms`);
      assert.equal(b.core.fromClient(b.l, "192.0.2.9", 1, bytes(3), now()), Drop.Banned);
      const onB = b.core.protection.bans.get("192.0.2.0/24")!;
      assert.equal(onB.origin, "fleet");
      assert.equal(onB.reason, "flood from test");
      assert.ok(Math.abs(onB.expiresAt - now() - 600_000) < 2000, "expires at the same time everywhere");

      // A third instance joining later loads it from the hash.
      const c = instance("c");
      await until(() => c.core.protection.bans.size === 1, 5000);

      await a.api.removeBan("192.0.2.7/24");
      await until(() => b.core.protection.bans.size === 0 && c.core.protection.bans.size === 0);
      assert.equal(a.core.protection.bans.size, 0);

      // A short ban lapses on every instance by itself.
      await b.api.addBan({ cidr: "2001:db8::/48", ttlMs: 300, reason: "short" });
      await until(() => a.core.protection.bans.size === 1);
      await until(() => a.core.protection.bans.match("2001:db8::1", now()) === null, 2000);

      // An automatic ban on b (1 new flow/s, banned after 100 ms over) reaches a.
      const start = now();
      for (let i = 0; now() - start < 150; i++) {
        b.core.fromClient(b.l, "203.0.113.5", 1000 + i, bytes(3), now());
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(b.core.protection.bans.get("203.0.113.5/32") !== undefined, "b banned the source itself");
      await until(() => a.core.protection.bans.get("203.0.113.5/32") !== undefined, 1000);
      assert.equal(a.core.protection.bans.get("203.0.113.5/32")!.origin, "fleet");
    } finally {
      for (const s of stops) s.stop();
      for (const o of open) o.close();
      redis.kill();
    }
  });

  test("a ban reaches every instance within a second, is enforced by each, and lapses on each at its TTL", async () => {
    const redis = await RedisServer.start();
    const open: { close(): void }[] = [];
    const stops: FleetBans[] = [];
    const now = () => performance.now();
    const instance = (name: string) => {
      const core = new RelayCore(config([cluster()], [listener()]), { seed: 1 });
      const connection = new RedisConnection(redis.url, 500);
      open.push(connection);
      const local = coreProtection(() => core, { clock: now, wall: Date.now });
      const bans = new FleetBans(connection, settings(name), local, Date.now, 2000, log);
      stops.push(bans);
      return { name, core, connection, bans, api: bans.shared(), l: core.listener("l")! };
    };
    try {
      const all = [instance("a"), instance("b"), instance("c")];
      await until(() => all.every((i) => i.connection.stats.connected), 5000);
      await Promise.all(all.map((i) => i.connection.subscriber.ping()));
      const [a] = all;
      const TTL = 1500;
      let port = 1;
      const fate = (i: (typeof all)[number]) => {
        const r = i.core.fromClient(i.l, "198.51.100.77", port++, bytes(3), now());
        return r === Drop.Banned ? "banned" : typeof r === "object" ? "flow" : `drop ${r}`;
      };
      for (const i of all) assert.equal(fate(i), "flow", `${i.name} admits the source before the ban`);

      const added = now();
      const wallAdded = Date.now();
      await a.api.addBan({ cidr: "198.51.100.0/24", ttlMs: TTL, reason: "short flood" });
      // Added on one instance, enforced on all within a second: each instance refuses a new flow.
      for (const i of all) {
        await until(() => i.core.protection.bans.size === 1, 1000 - (now() - added));
        assert.equal(fate(i), "banned", `${i.name} enforces the ban`);
      }
      assert.ok(now() - added < 1000, `enforced everywhere after ${Math.round(now() - added)} ms`);
      // Expiring everywhere: the same wall-clock lapse on every instance, and a new flow after it.
      for (const i of all) {
        const listed = (await i.api.bans()).find((b) => b.cidr === "198.51.100.0/24");
        assert.ok(listed !== undefined, `${i.name} lists the ban`);
        const lapse = Date.parse(listed.expiresAt!);
        assert.ok(Math.abs(lapse - (wallAdded + TTL)) < 250, `${i.name} lapses at ${lapse - wallAdded} ms`);
      }
      await until(() => now() - added >= TTL - 200, TTL);
      for (const i of all) {
        // On a machine so loaded the wait overshot the TTL, the lapse checks below still hold.
        if (now() - added < TTL - 20) {
          assert.equal(fate(i), "banned", `${i.name} still bans just before its TTL`);
        }
      }
      await until(() => all.every((i) => i.core.protection.bans.match("198.51.100.1", now()) === null), TTL);
      assert.ok(now() - added >= TTL - 250, `lapsed after ${Math.round(now() - added)} ms, TTL ${TTL}`);
      for (const i of all) {
        assert.equal(fate(i), "flow", `${i.name} admits the source after the ban lapsed`);
        assert.equal((await i.api.bans()).length, 0, `${i.name} no longer lists it`);
      }
      // An instance joining later does not load the lapsed ban, and clears it from the shared hash.
      const d = instance("d");
      await until(() => d.connection.stats.connected, 5000);
      await d.bans.loadAll();
      assert.equal(d.core.protection.bans.size, 0, "a lapsed ban is not loaded");
      assert.equal(fate(d), "flow");
      const left = await d.connection.run((c) => c.hgetall("ferrytest:fleet:bans"), 1000);
      assert.deepEqual(Object.keys(left), [], "the lapsed ban left the hash");
    } finally {
      for (const s of stops) s.stop();
      for (const o of open) o.close();
      redis.kill();
    }
  });
});
