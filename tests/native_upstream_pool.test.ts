/**
 * The native driver's upstream socket pool end to end, under whichever runtime runs the test: a flow
 * closed by `responses` hands its connected socket to a later flow (after the quarantine), a reused socket
 * never hands an old flow's reply to the new flow's client (counted `late` instead), `reuse_upstream =
 * false` turns it off, and the pool is emptied when its backend goes down or is removed. Skipped, with the
 * reason, where the native path cannot run.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { RelayCore } from "../core/relay_core.ts";
import type { UdpListener as Listener } from "../core/listener.ts";
import type { ClusterConfig } from "../core/types.ts";
import { CoreLoop } from "../shell/relay/core_loop.ts";
import { NativeUdp } from "../shell/datapath/native/native_udp.ts";
import type { Libc } from "../shell/datapath/native/ffi.ts";
import {
  AF_INET,
  MMSGHDR,
  MSG_DONTWAIT,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  writeIovec,
  writeMsghdr,
  writeSockaddr,
} from "../shell/datapath/native/layout.ts";
import { POOL_QUARANTINE_MS, SWEEP_MS } from "../shell/datapath/native/upstream_pool.ts";
import { nativeSupport } from "../shell/datapath/native/select.ts";
import { cleanups } from "./support/udp_suite.ts";
import { addr, backend, cluster, config, listener } from "./support/fixtures.ts";
import { Client, EchoBackend, sleep, until } from "./support/udp.ts";

const support = await nativeSupport();
const skip = "reason" in support ? `native data path unavailable: ${support.reason}` : false;
if (skip) console.log(`native upstream pool tests skipped: ${skip}`);
const clock = () => performance.now();
const cleanup = cleanups();
const text = (d: Uint8Array | null) => d === null ? null : new TextDecoder().decode(d);

/** A core with one native listener "l" in front of cluster "c" (its backends on the given ports). */
async function rig(ports: number[], c: Partial<ClusterConfig> = {}) {
  if (!("libc" in support)) throw new Error(support.reason);
  const cfg = (list: number[]) =>
    config(
      [cluster({ backends: list.map((p) => backend(`127.0.0.1:${p}`)), responses: 1, ...c })],
      [listener({ address: addr("127.0.0.1:0") })],
    );
  const core = new RelayCore(cfg(ports), { seed: 1 });
  const hub = new CoreLoop(core, clock);
  const native = new NativeUdp(hub, support.libc);
  cleanup(async () => {
    hub.stop();
    native.stop();
    await native.closed;
  });
  const bound = await native.bind(core.listener("l") as Listener, false);
  const client = async () => {
    const cl = await new Client().start();
    cleanup(() => cl.close());
    return cl;
  };
  return { core, native, hub, port: bound.port, client, cfg, l: core.listener("l") as Listener };
}

/**
 * A UDP peer on a raw libc socket, so its sends are synchronous: a test can queue a datagram at the relay
 * and another at a second socket in one JS turn, before the relay's loop runs again.
 */
function rawPeer(libc: Libc) {
  const mem = libc.alloc(4096);
  const { dv, u8, addr: base } = mem;
  const fd = libc.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  writeSockaddr(u8, 0, { ip: "127.0.0.1", port: 0, family: 4 });
  assert.equal(libc.bind(fd, libc.ref(mem, 0, 16), 16), 0);
  dv.setUint32(32, 16, true);
  assert.equal(libc.getsockname(fd, libc.ref(mem, 0, 16), libc.ref(mem, 32, 4)), 0);
  const port = (u8[2] << 8) | u8[3];
  // mmsghdr @64 (name @160, iovec @128 → data @256).
  const msg = libc.ref(mem, 64, MMSGHDR.size);
  const peer = {
    port,
    /** Sends `s` to 127.0.0.1:`to` now. */
    send(s: string, to: number) {
      const bytes = new TextEncoder().encode(s);
      u8.set(bytes, 256);
      writeSockaddr(u8, 160, { ip: "127.0.0.1", port: to, family: 4 });
      writeIovec(dv, 128, base + 256, bytes.byteLength);
      writeMsghdr(dv, 64, base + 160, 16, base + 128, 1, 0, 0);
      assert.ok(libc.sendmsg(fd, msg, 0) >= 0);
    },
    /** The next datagram and its source port, or null after `ms`. */
    async next(ms = 1000): Promise<{ data: string; from: number } | null> {
      const end = performance.now() + ms;
      while (performance.now() < end) {
        writeIovec(dv, 128, base + 256, 2048);
        writeMsghdr(dv, 64, base + 160, 16, base + 128, 1, 0, 0);
        if (libc.recvmmsg(fd, msg, 1, MSG_DONTWAIT) === 1) {
          const len = dv.getUint32(64 + MMSGHDR.len, true);
          return { data: new TextDecoder().decode(u8.slice(256, 256 + len)), from: (u8[162] << 8) | u8[163] };
        }
        await sleep(2);
      }
      return null;
    },
  };
  cleanup(() => {
    libc.close(fd);
    libc.free(mem);
  });
  return peer;
}

describe("native upstream socket pool", { skip }, () => {
  test("a flow closed by responses hands its socket to a later flow after the quarantine", async () => {
    const echo = await new EchoBackend().start();
    cleanup(() => echo.close());
    const r = await rig([echo.port]);
    const a = await r.client(), b = await r.client();
    assert.equal(await a.ask("a", r.port), "a");
    assert.ok(await until(() => r.native.pool.size === 1));
    // Within the quarantine a new flow opens its own socket ...
    assert.equal(await b.ask("b1", r.port), "b1");
    // ... after it, the next takes the pooled one.
    await sleep(POOL_QUARANTINE_MS + 30);
    assert.equal(await a.ask("a2", r.port), "a2");
    const ports = echo.received.map((x) => x.port);
    assert.notEqual(ports[1], ports[0]);
    assert.ok(ports[2] === ports[0] || ports[2] === ports[1], `${ports}`);
    assert.equal(r.native.pool.stats.reused, 1);
    assert.equal(r.l.counters.flowsClosed.responses, 3);
    assert.equal(r.l.counters.drops.late, 0);
  });

  test("a reused socket never hands an old flow's reply to the new flow: it is counted late", async () => {
    if (!("libc" in support)) return;
    const libc = support.libc;
    const be = rawPeer(libc);
    const r = await rig([be.port]);
    const a = await r.client();
    // Flow 1: a's query and its answer; the flow closes, its socket u goes to the pool.
    a.send("q1", r.port);
    const q1 = await be.next();
    assert.equal(q1?.data, "q1");
    const u = (q1 as { from: number }).from;
    be.send("q1", u);
    assert.equal(text(await a.next()), "q1");
    assert.ok(await until(() => r.native.pool.size === 1));
    // A duplicate within the quarantine: read there, counted late.
    be.send("dup-in-quarantine", u);
    assert.ok(await until(() => r.l.counters.drops.late === 1));
    await sleep(POOL_QUARANTINE_MS + 30);
    // In one JS turn (the relay's loop cannot run in between): a new client's query arrives, then a late
    // duplicate reaches u. The loop sees the query first (epoll lists it first), takes u for the new flow
    // and drains it there: the duplicate is counted late, never read as the new flow's reply.
    const c = rawPeer(libc);
    c.send("q2", r.port);
    be.send("dup-after-quarantine", u);
    const q2 = await be.next();
    assert.deepEqual(q2, { data: "q2", from: u }); // the pooled socket was reused
    be.send("q2", u);
    assert.deepEqual(await c.next(), { data: "q2", from: r.port });
    assert.equal(await c.next(150), null); // nothing of flow 1 reached c
    assert.equal(await a.next(50), null);
    assert.equal(r.l.counters.drops.late, 2);
    assert.equal(r.l.counters.datagramsOut, 2);
    assert.equal(r.native.pool.stats.reused, 1);
  });

  test("reuse_upstream = false: every flow opens its own socket", async () => {
    const echo = await new EchoBackend().start();
    cleanup(() => echo.close());
    const r = await rig([echo.port], { reuseUpstream: false });
    const a = await r.client();
    assert.equal(await a.ask("a1", r.port), "a1");
    await sleep(POOL_QUARANTINE_MS + 30);
    assert.equal(await a.ask("a2", r.port), "a2");
    assert.notEqual(echo.received[0].port, echo.received[1].port);
    assert.equal(r.native.pool.size, 0);
    assert.equal(r.native.pool.stats.reused, 0);
  });

  test("emptied when its backend goes down, or is removed by a reconfiguration", async () => {
    const one = await new EchoBackend().start(), two = await new EchoBackend().start();
    cleanup(() => one.close());
    cleanup(() => two.close());
    const r = await rig([one.port]);
    const a = await r.client();
    assert.equal(await a.ask("x", r.port), "x");
    assert.ok(await until(() => r.native.pool.size === 1));
    assert.ok(r.core.setBackendState("c", `127.0.0.1:${one.port}`, "down"));
    assert.ok(await until(() => r.native.pool.size === 0, SWEEP_MS * 4));
    assert.ok(r.core.setBackendState("c", `127.0.0.1:${one.port}`, "up"));
    assert.equal(await a.ask("y", r.port), "y");
    assert.ok(await until(() => r.native.pool.size === 1));
    r.core.applyConfig(r.cfg([two.port]));
    assert.ok(await until(() => r.native.pool.size === 0, SWEEP_MS * 4));
    assert.equal(r.native.pool.stats.closed, 2);
    // The socket was closed, not kept: the next flow goes to the new backend on a new socket.
    assert.equal(await a.ask("z", r.port), "z");
    assert.equal(two.received.length, 1);
  });
});
