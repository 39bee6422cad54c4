/**
 * Regression (issue 12, finding 1): a removed UDP listener's socket leaked. With a live flow on a listener,
 * a config without it and then at once the original config back got EADDRINUSE, and the rollback of that
 * failed apply left the port held by Ferry for good. Now a listener re-added on the same address while it
 * still drains takes its socket (and its flows) back, and a failed apply re-binds what it closed. Both UDP
 * data paths, on 127.0.0.1 only.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { Relay } from "../shell/relay/relay.ts";
import { detectPlatform } from "../shell/process/platform.ts";
import { nativeSupport } from "../shell/datapath/native/select.ts";
import type { FerryConfig } from "../core/types.ts";
import { addr, backend, cluster, config, listener } from "./support/fixtures.ts";
import { Client, EchoBackend, until } from "./support/udp.ts";
import { cleanups } from "./support/udp_suite.ts";
import { freePorts } from "./support/ferry_process.ts";

const native = await nativeSupport();
const cleanup = cleanups();

/** Whether a fresh socket can bind 127.0.0.1:`port` (Ferry let go of it). */
async function portFree(port: number): Promise<boolean> {
  const s = dgram.createSocket("udp4");
  const ok = await new Promise<boolean>((res) => {
    s.once("error", () => res(false));
    s.bind(port, "127.0.0.1", () => res(true));
  });
  if (ok) await new Promise<void>((res) => s.close(() => res()));
  return ok;
}

/** `portFree`, retried for a second: Deno lets go of a closed socket once its pending receive is cancelled. */
async function portFreeSoon(port: number): Promise<boolean> {
  const end = Date.now() + 1000;
  while (!(await portFree(port))) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

for (const datapath of ["runtime", "native"] as const) {
  const skip = datapath === "native" && "reason" in native ? native.reason : false;
  describe(`removed UDP listeners (${datapath})`, { skip }, () => {
    async function setup(): Promise<{ relay: Relay; cfg: FerryConfig; port: number; client: Client }> {
      const echo = await new EchoBackend().start();
      cleanup(() => echo.close());
      const [port] = await freePorts("udp", 1);
      const base = config(
        [cluster({ backends: [backend(`127.0.0.1:${echo.port}`)], frontTimeout: 300, backTimeout: 300 })],
        [listener({ address: addr(`127.0.0.1:${port}`), datapath })],
      );
      const cfg = { ...base, relay: { ...base.relay, datapath } };
      const relay = await Relay.start(cfg, detectPlatform(), { seed: 1 });
      cleanup(() => relay.stop());
      const client = await new Client().start();
      cleanup(() => client.close());
      assert.equal(await client.ask("one", port), "one");
      return { relay, cfg, port, client };
    }

    test("removed then re-added at once: the listener takes its socket and flow back", async () => {
      const { relay, cfg, port, client } = await setup();
      await relay.apply({ ...cfg, listeners: [] });
      await relay.apply(cfg); // was: EADDRINUSE
      assert.equal(relay.core.flowCount, 1);
      assert.equal(await client.ask("two", port), "two");
      assert.equal(relay.core.listener("l")?.counters.flowsCreated, 1, "the same flow carried on");
      // Removed for real: once its flow idles out, the port is let go.
      await relay.apply({ ...cfg, listeners: [] });
      assert.ok(await until(() => relay.core.flowCount === 0, 3000));
      assert.ok(await portFreeSoon(port), "port still held after the last flow closed");
    });

    test("a failed apply that re-added a draining listener leaves nothing held", async () => {
      const { relay, cfg, port, client } = await setup();
      const held = dgram.createSocket("udp4");
      await new Promise<void>((r) => held.bind(0, "127.0.0.1", () => r()));
      cleanup(() => held.close());
      await relay.apply({ ...cfg, listeners: [] });
      const bad = listener({ name: "x", address: addr(`127.0.0.1:${held.address().port}`), datapath });
      await assert.rejects(relay.apply({ ...cfg, listeners: [...cfg.listeners, bad] }));
      assert.equal(relay.core.listener("l")?.removed, true, "still removed, as before the failed apply");
      assert.ok(await until(() => relay.core.flowCount === 0, 3000));
      assert.ok(await portFreeSoon(port), "port held for good after the rollback");
      await relay.apply(cfg);
      assert.equal(await client.ask("back", port), "back");
    });

    test("a failed apply that moved a listener rolls back to its old socket, serving", async () => {
      const { relay, cfg, port, client } = await setup();
      const [other] = await freePorts("udp", 1);
      const held = dgram.createSocket("udp4");
      await new Promise<void>((r) => held.bind(0, "127.0.0.1", () => r()));
      cleanup(() => held.close());
      const moved = [
        listener({ address: addr(`127.0.0.1:${other}`), datapath }),
        listener({ name: "x", address: addr(`127.0.0.1:${held.address().port}`), datapath }),
      ];
      await assert.rejects(relay.apply({ ...cfg, listeners: moved }));
      const l = relay.core.listener("l");
      assert.equal(l?.removed, false);
      assert.equal(l?.draining, false);
      assert.equal(relay.address("l")?.port, port);
      assert.equal(await client.ask("still", port), "still");
      const fresh = await new Client().start();
      cleanup(() => fresh.close());
      assert.equal(await fresh.ask("new client", port), "new client", "the restored listener admits");
      assert.ok(await portFreeSoon(other));
    });

    test("a failed apply re-binds a listener it had already closed", async () => {
      const { relay, cfg, port, client } = await setup();
      relay.core.closeAll("disconnected");
      const [other] = await freePorts("udp", 1);
      const held = dgram.createSocket("udp4");
      await new Promise<void>((r) => held.bind(0, "127.0.0.1", () => r()));
      cleanup(() => held.close());
      const moved = [
        listener({ address: addr(`127.0.0.1:${other}`), datapath }),
        listener({ name: "x", address: addr(`127.0.0.1:${held.address().port}`), datapath }),
      ];
      await assert.rejects(relay.apply({ ...cfg, listeners: moved }));
      assert.equal(relay.address("l")?.port, port);
      assert.equal(await client.ask("rebound", port), "rebound");
    });
  });
}
