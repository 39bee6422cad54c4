/**
 * The UDP driver over the runtime's own sockets (Bun.udpSocket or Deno.listenDatagram, whichever runs the
 * test), with real datagrams on 127.0.0.1. The same checks run over the native driver in
 * tests/native_udp.test.ts (tests/support/udp_suite.ts).
 */
import { UdpRelay } from "../shell/datapath/udp_relay.ts";
import { CoreLoop } from "../shell/relay/core_loop.ts";
import type { UdpSockets } from "../shell/datapath/udp_sockets.ts";
import { bunUdpSockets } from "../shell/datapath/bun/udp.ts";
import { denoUdpSockets } from "../shell/datapath/deno/udp.ts";
import { cleanups, rig, udpDriverSuite } from "./support/udp_suite.ts";
import process from "node:process";
import { Relay } from "../shell/relay/relay.ts";
import { detectPlatform } from "../shell/process/platform.ts";
import { procUdpDrops } from "../shell/datapath/proc_udp_drops.ts";
import { addr, backend, cluster, config, listener } from "./support/fixtures.ts";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { EchoBackend, sleep, until } from "./support/udp.ts";

const sockets: UdpSockets = "Bun" in globalThis ? bunUdpSockets : denoUdpSockets;

udpDriverSuite({
  name: sockets.name,
  driver: (core) => Promise.resolve(new UdpRelay(new CoreLoop(core, () => performance.now()), sockets)),
  // Connected sockets surface ICMP port unreachable as ECONNREFUSED; Deno's unconnected ones cannot.
  seesRefusals: sockets.name === "bun",
});

// Regression (issue 12, finding 5): on Bun, the ICMP port unreachable a departed client's kernel sends
// back for a reply was counted as a send error although the reply had been counted as sent.
describe(`a reply to a departed client (${sockets.name})`, () => {
  const cleanup = cleanups();
  test("is counted once: out, and (where the runtime sees the ICMP) client_unreachable, never send_error", async () => {
    const r = await rig(
      (core) => Promise.resolve(new UdpRelay(new CoreLoop(core, () => performance.now()), sockets)),
      cleanup,
      1,
    );
    const echo = r.backends[0];
    echo.reply = () => null;
    const c = await r.client();
    c.send("bye", r.port);
    assert.ok(await until(() => echo.received.length === 1));
    c.close();
    echo.sendTo(new TextEncoder().encode("late"), echo.received[0].port);
    assert.ok(await until(() => r.l.counters.datagramsOut === 1));
    await sleep(200);
    assert.equal(r.l.counters.drops.send_error, 0);
    assert.equal(r.l.counters.clientUnreachable, sockets.name === "bun" ? 1 : 0);
  });
});

// Issue 12, finding 5: kernel drops at a runtime-path listener were invisible; the kernel's count in
// /proc/net/udp is shown instead (Linux).
describe("kernel drops at a runtime-path listener", () => {
  const cleanup = cleanups();
  test(
    "are read from /proc/net/udp for the listener's own socket",
    { skip: process.platform !== "linux" },
    async () => {
      const echo = await new EchoBackend().start();
      cleanup(() => echo.close());
      const base = config(
        [cluster({ backends: [backend(`127.0.0.1:${echo.port}`)] })],
        [listener({ address: addr("127.0.0.1:0"), datapath: "runtime" })],
      );
      const relay = await Relay.start(
        { ...base, relay: { ...base.relay, datapath: "runtime" } },
        detectPlatform(),
        {
          seed: 1,
        },
      );
      cleanup(() => relay.stop());
      const port = relay.address("l")?.port ?? 0;
      assert.equal(procUdpDrops({ ip: "127.0.0.1", port, family: 4 }), 0);
      assert.equal(relay.rxqOverflows("l"), 0);
    },
  );
});
