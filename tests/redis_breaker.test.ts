/**
 * Regression (issue 12, finding 6): with Redis hung (SIGSTOP: the connection stays up, nothing answers)
 * every new flow waited the whole `[redis] timeout` and `ferry_redis_connected` stayed 1. Now a circuit
 * breaker opens after consecutive timeouts: lookups fall back at once, the state is reported, and a probe
 * closes it when Redis answers again. The state machine's own tests first, then a real redis-server.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { Breaker } from "../shell/redis/breaker.ts";
import { RedisConnection } from "../shell/redis/connection.ts";
import { connectionMetrics } from "../shell/redis/metrics.ts";
import { RedisRouter } from "../shell/redis/router.ts";
import { killAllRedis, redisMissing, RedisServer } from "./support/redis.ts";
import { sleep } from "./support/udp.ts";

describe("the breaker's state machine", () => {
  test("opens after N consecutive timeouts, probes after the backoff, doubles it while probes fail", () => {
    const b = new Breaker({ threshold: 3, backoffMs: 100, maxBackoffMs: 300 });
    b.timeout(0);
    b.timeout(1);
    b.success(); // an answer in between resets the run
    b.timeout(2);
    b.timeout(3);
    assert.equal(b.state, "closed");
    b.timeout(4);
    assert.equal(b.state, "open");
    assert.equal(b.trips, 1);
    assert.equal(b.allow(), false);
    assert.equal(b.shortCircuited, 1);
    assert.equal(b.probeDue(50), false);
    assert.equal(b.probeDue(104), true);
    assert.equal(b.state, "half_open");
    assert.equal(b.allow(), false, "flows still fall back while the probe is out");
    b.probeFailed(110);
    assert.equal(b.openUntil, 310);
    assert.equal(b.probeDue(310), true);
    b.probeFailed(310);
    assert.equal(b.openUntil, 610, "capped at maxBackoffMs");
    assert.equal(b.probeDue(610), true);
    b.success();
    assert.equal(b.state, "closed");
    assert.equal(b.allow(), true);
    assert.equal(b.trips, 1, "re-opens after failed probes are not new trips");
    for (let i = 0; i < 3; i++) b.timeout(700);
    assert.equal(b.openUntil, 800, "the backoff starts over after a close");
  });
});

const missing = redisMissing();
after(() => killAllRedis());

describe("a hung Redis", { skip: missing ?? false }, () => {
  test(
    "routing falls back at once after a few timeouts, reports it, and recovers",
    { timeout: 30_000 },
    async () => {
      const server = await RedisServer.start();
      const timeout = 300;
      const connection = new RedisConnection(server.url, timeout);
      const router = new RedisRouter(
        { url: server.url, disconnectChannel: "", timeout },
        { shared: connection },
        getLogger(["ferry", "test"]),
      );
      try {
        await new Promise<void>((r) => connection.onReady(r));
        await connection.run((c) => c.set("ferry:backend:c", "127.0.0.1:7001"));
        const routing = { key: "ferry:backend:c", fallback: "maglev", cacheMs: 0 } as const;
        assert.equal((await router.lookup(routing, "c"))?.port, 7001);
        server.pause();
        const took: number[] = [];
        for (let i = 0; i < 10; i++) {
          const t = performance.now();
          assert.equal(await router.lookup(routing, "c"), null);
          took.push(performance.now() - t);
        }
        // The first three wait out the timeout; the breaker then answers the rest at once.
        assert.ok(took.slice(0, 3).every((ms) => ms >= timeout - 20), `first: ${took.slice(0, 3)}`);
        assert.ok(took.slice(3).every((ms) => ms < timeout / 3), `then: ${took.slice(3).map(Math.round)}`);
        const m = connectionMetrics(connection);
        assert.equal(m.connectionsUp, 0, "a hung Redis is not reported as connected");
        assert.equal(m.breakerOpen, 1);
        assert.equal(m.breakerTrips, 1);
        assert.equal(router.counts.error, 10);
        server.resume();
        // The probe after the 1 s backoff finds Redis answering again.
        const end = performance.now() + 5000;
        while (connection.breaker.state !== "closed" && performance.now() < end) await sleep(50);
        assert.equal(connection.breaker.state, "closed");
        assert.equal((await router.lookup(routing, "c"))?.port, 7001);
        assert.equal(connectionMetrics(connection).connectionsUp, 1);
      } finally {
        server.resume();
        connection.close();
        server.kill();
      }
    },
  );
});
