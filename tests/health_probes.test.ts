/**
 * Active and passive health with real backends on 127.0.0.1, through a whole Relay on the runtime running
 * the test.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { DEFAULT_HEALTH, type HealthSettings } from "../core/health.ts";
import type { ClusterConfig } from "../core/types.ts";
import { Relay } from "../shell/relay/relay.ts";
import { RelayControl } from "../shell/relay/change_target.ts";
import { detectPlatform } from "../shell/process/platform.ts";
import { addr, backend, cluster, config, listener } from "./support/fixtures.ts";
import { Client, EchoBackend, sleep, until } from "./support/udp.ts";

const platform = detectPlatform();
const cleanup: (() => void)[] = [];
after(() => {
  for (const f of cleanup.splice(0)) f();
});

const PING = new TextEncoder().encode("ping");
const FAST: HealthSettings = {
  ...DEFAULT_HEALTH,
  mode: "udp",
  interval: 100,
  timeout: 80,
  jitter: 10,
  rise: 2,
  fall: 2,
  send: PING,
  maxFails: 0,
};

async function start(c: Partial<ClusterConfig>, protocol: "udp" | "tcp" = "udp"): Promise<Relay> {
  const relay = await Relay.start(
    config([cluster(c)], [listener({ protocol, address: addr("127.0.0.1:0") })]),
    platform,
    { seed: 1 },
  );
  cleanup.push(() => relay.stop());
  return relay;
}

function stateOf(relay: Relay, key: string): string | undefined {
  return relay.core.cluster("c")?.backend(key)?.state;
}

async function deadUdpPort(): Promise<number> {
  const b = await new EchoBackend().start();
  const port = b.port;
  b.close();
  return port;
}

describe(`health probes on ${platform.runtime}`, () => {
  test("a UDP backend that stops answering goes down after fall, gets no new flows, and comes back after rise", async () => {
    const a = await new EchoBackend().start();
    const b = await new EchoBackend().start();
    cleanup.push(() => a.close(), () => b.close());
    let silent = false;
    a.reply = (d) => (silent ? null : d);
    const ka = `127.0.0.1:${a.port}`;
    const relay = await start({ health: FAST, backends: [backend(ka), backend(`127.0.0.1:${b.port}`)] });
    assert.equal(relay.health.size, 2);
    await sleep(250);
    assert.equal(stateOf(relay, ka), "up");
    silent = true;
    assert.ok(await until(() => stateOf(relay, ka) === "down", 2000), "marked down");
    // The admin API's view of it, through the real control.
    const control = new RelayControl(relay, {
      version: "test",
      runtimeVersion: "test",
      configPath: null,
      load: () => Promise.reject(new Error("no file")),
      now: Date.now,
      memory: () => ({ rss: 0, heapUsed: 0 }),
    });
    const seen = (await control.metrics()).clusters[0].backends.find((x) => x.address === ka);
    assert.equal(seen?.state, "down");
    assert.equal(seen?.health.status, "down");
    assert.equal(seen?.health.probed, true);
    assert.match(seen?.health.lastError ?? "", /no reply within 80 ms/);
    assert.ok(Math.abs(Date.parse(seen?.health.since ?? "") - Date.now()) < 5000);
    const port = relay.address("l")?.port as number;
    const clients = await Promise.all([1, 2, 3, 4].map(() => new Client().start()));
    for (const c of clients) cleanup.push(() => c.close());
    const before = a.received.filter((r) => new TextDecoder().decode(r.data) !== "ping").length;
    for (const c of clients) assert.equal(await c.ask("hello", port), "hello");
    const after = a.received.filter((r) => new TextDecoder().decode(r.data) !== "ping").length;
    assert.equal(after, before, "no new flow went to the down backend");
    silent = false;
    assert.ok(await until(() => stateOf(relay, ka) === "up", 2000), "marked up again");
    const h = relay.core.cluster("c")?.backend(ka)?.health;
    assert.ok((h?.okStreak ?? 0) >= 2);
  });

  test("a reply that does not match expect is a failure", async () => {
    const a = await new EchoBackend().start();
    cleanup.push(() => a.close());
    const ka = `127.0.0.1:${a.port}`;
    const expect = { kind: "exact" as const, bytes: new TextEncoder().encode("pong") };
    const relay = await start({ health: { ...FAST, expect }, backends: [backend(ka)] });
    assert.ok(await until(() => stateOf(relay, ka) === "down", 2000));
    assert.match(relay.core.cluster("c")?.backend(ka)?.health.lastError ?? "", /unexpected reply/);
    a.reply = () => new TextEncoder().encode("pong");
    assert.ok(await until(() => stateOf(relay, ka) === "up", 2000));
  });

  test("a TCP probe to a closed port fails; to a listening one succeeds", async () => {
    const server = net.createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    cleanup.push(() => server.close());
    const open = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const closed = `127.0.0.1:${await deadUdpPort()}`;
    const relay = await start({
      health: { ...FAST, mode: "tcp", send: null },
      backends: [backend(open), backend(closed)],
    }, "tcp");
    assert.ok(await until(() => stateOf(relay, closed) === "down", 2000));
    assert.equal(stateOf(relay, open), "up");
    assert.match(relay.core.cluster("c")?.backend(closed)?.health.lastError ?? "", /refused/);
  });

  for (const failOpen of [true, false]) {
    test(`every backend down: fail_open = ${failOpen}`, async () => {
      const a = await new EchoBackend().start();
      cleanup.push(() => a.close());
      a.reply = (d) => (new TextDecoder().decode(d) === "ping" ? null : d); // data echoes, probes get nothing
      const ka = `127.0.0.1:${a.port}`;
      const relay = await start({ failOpen, health: FAST, backends: [backend(ka)] });
      assert.ok(await until(() => stateOf(relay, ka) === "down", 2000));
      const c = await new Client().start();
      cleanup.push(() => c.close());
      const port = relay.address("l")?.port as number;
      const answer = await c.ask("data", port, 400);
      const l = relay.core.listener("l");
      if (failOpen) {
        assert.equal(answer, "data");
        assert.equal(relay.core.cluster("c")?.counters.failOpen, 1);
      } else {
        assert.equal(answer, null);
        assert.equal(l?.counters.drops.no_backend, 1);
      }
    });
  }

  test("passive: refusals mark a backend down (UDP ICMP where the runtime sees it, else TCP connect)", async () => {
    const dead = `127.0.0.1:${await deadUdpPort()}`;
    const live = await new EchoBackend().start();
    cleanup.push(() => live.close());
    const passive = { ...DEFAULT_HEALTH, maxFails: 2, failTimeout: 60_000 };
    if (platform.runtime === "bun") {
      const relay = await start({
        health: passive,
        backends: [backend(dead), backend(`127.0.0.1:${live.port}`)],
      });
      const c = await new Client().start();
      cleanup.push(() => c.close());
      const port = relay.address("l")?.port as number;
      // Round robin: the first client goes to the dead backend; its datagrams draw ICMP refusals.
      for (let i = 0; i < 5; i++) {
        c.send(`x${i}`, port);
        await sleep(30);
      }
      assert.ok(await until(() => stateOf(relay, dead) === "down", 2000), "UDP refusals mark it down");
      assert.match(relay.core.cluster("c")?.backend(dead)?.health.lastError ?? "", /refused/);
    } else {
      // Deno's unconnected UDP sockets cannot see ICMP refusals; TCP connect refusals count the same way.
      const relay = await start({ health: passive, backends: [backend(dead)] }, "tcp");
      const port = relay.address("l")?.port as number;
      for (let i = 0; i < 2; i++) {
        await new Promise<void>((resolve) => {
          const s = net.connect(port, "127.0.0.1");
          s.on("error", () => resolve());
          s.on("close", () => resolve());
        });
      }
      assert.ok(await until(() => stateOf(relay, dead) === "down", 2000), "connect refusals mark it down");
      assert.match(relay.core.cluster("c")?.backend(dead)?.health.lastError ?? "", /refused/);
    }
  });
});
