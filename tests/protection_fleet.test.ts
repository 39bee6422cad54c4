/**
 * Fleet bans against a real redis-server: a ban placed on one instance is enforced on the other within a
 * second, lifted everywhere, loaded by an instance that joins later, and an automatic ban is shared by
 * itself. Skips when redis-server is not installed.
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
});
