/**
 * Kernel socket filters on a real loopback socket through the native data path: datagrams a deny block or
 * a ban refuses never reach user space (the core counts nothing), a lifted ban lets them through again,
 * and `kernel_filter = false` leaves the same drops to user space. Skips without the native data path.
 *
 * @module
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { parseCidr } from "../core/address.ts";
import type { Listener } from "../core/listener.ts";
import { RelayCore } from "../core/relay_core.ts";
import type { ListenerConfig } from "../core/types.ts";
import { NativeUdp } from "../shell/datapath/native/native_udp.ts";
import { nativeSupport } from "../shell/datapath/native/select.ts";
import { CoreLoop } from "../shell/relay/core_loop.ts";
import { addr, backend, cluster, config, listener } from "./support/fixtures.ts";
import { EchoBackend, sleep } from "./support/udp.ts";

const support = await nativeSupport();
const skip = "reason" in support ? `native data path unavailable: ${support.reason}` : false;
if (skip) console.log(`kernel filter tests skipped: ${skip}`);
const clock = () => performance.now();

async function peer(host: string): Promise<Socket & { replies: string[] }> {
  const s = Object.assign(createSocket("udp4"), { replies: [] as string[] });
  s.on("message", (m) => s.replies.push(new TextDecoder().decode(m)));
  await new Promise<void>((res) => s.bind(0, host, () => res()));
  return s;
}

async function rig(l: Partial<ListenerConfig>) {
  if (!("libc" in support)) throw new Error("no native support");
  const echo = await new EchoBackend().start();
  const deny = parseCidr("127.0.0.2/32");
  if (typeof deny === "string") throw new Error(deny);
  const core = new RelayCore(
    config([cluster({ backends: [backend(`127.0.0.1:${echo.port}`)] })], [
      listener({
        address: addr("127.0.0.1:0"),
        sources: { reject: ["port0"], deny: [deny], allow: [] },
        ...l,
      }),
    ]),
    { seed: 1 },
  );
  const hub = new CoreLoop(core, clock);
  const native = new NativeUdp(hub, support.libc, {}, {});
  const lst = core.listener("l") as Listener;
  const { port } = await native.bind(lst, false);
  const peers = [await peer("127.0.0.2"), await peer("127.0.0.3")];
  const send = (p: Socket, text: string) =>
    new Promise<void>((res) => p.send(text, port, "127.0.0.1", () => res()));
  return {
    core,
    native,
    l: lst,
    peers,
    send,
    async stop() {
      for (const p of peers) p.close();
      hub.stop();
      native.stop();
      await native.closed;
      echo.close();
    },
  };
}

/** Sends `text` until a reply arrives (or `ms` pass); true when one did. */
async function answered(r: Awaited<ReturnType<typeof rig>>, p: Socket & { replies: string[] }, ms = 1500) {
  const start = performance.now();
  const before = p.replies.length;
  while (performance.now() - start < ms) {
    await r.send(p, "ping");
    await sleep(20);
    if (p.replies.length > before) return true;
  }
  return false;
}

describe("kernel socket filter on the native path", { skip, timeout: 20_000 }, () => {
  test("deny blocks and bans drop in the kernel; lifting a ban lets traffic through", async () => {
    const r = await rig({});
    try {
      const status = r.native.kernelFilters.status(r.l);
      assert.ok(status !== undefined && status.instructions > 0, JSON.stringify(status));
      const [denied, other] = r.peers;
      for (let i = 0; i < 20; i++) await r.send(denied, `flood ${i}`);
      assert.ok(await answered(r, other), "an allowed source is relayed");
      await sleep(50);
      assert.equal(r.l.counters.drops.invalid, 0, "the denied source never reached user space");
      assert.equal(denied.replies.length, 0);

      r.core.protection.bans.add({ cidr: "127.0.0.3/32", ttlMs: 0, reason: "test", origin: "api" }, clock());
      await sleep(400); // the refresh timer
      const repliesBefore = other.replies.length;
      for (let i = 0; i < 10; i++) await r.send(other, "banned?");
      await sleep(200);
      assert.equal(other.replies.length, repliesBefore, "banned in the kernel");
      assert.equal(r.l.counters.drops.banned, 0, "no banned datagram reached the core");
      assert.equal(r.core.protection.bans.get("127.0.0.3/32")?.hits, 0);

      r.core.protection.bans.remove("127.0.0.3/32");
      assert.ok(await answered(r, other), "relayed again once the ban is lifted");
    } finally {
      await r.stop();
    }
  });

  test("kernel_filter = false leaves the same drops to user space", async () => {
    const r = await rig({
      protection: { limits: null, filter: null, amplification: null, kernelFilter: false },
    });
    try {
      assert.equal(r.native.kernelFilters.status(r.l)?.instructions, 0);
      const [denied, other] = r.peers;
      for (let i = 0; i < 20; i++) await r.send(denied, `flood ${i}`);
      assert.ok(await answered(r, other));
      await sleep(50);
      assert.equal(r.l.counters.drops.invalid, 20, "user space refused every denied datagram");
    } finally {
      await r.stop();
    }
  });
});
