/**
 * The native UDP driver (libc through FFI: epoll, recvmmsg, sendmmsg) under whichever runtime runs the
 * test: the UDP driver suite of the runtime path, rerun over it. Skipped, with the reason, where the
 * native path cannot run (not Linux x86_64/aarch64, no libc, no FFI permission).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";
import { RelayCore } from "../core/relay_core.ts";
import type { Listener } from "../core/listener.ts";
import type { ClusterConfig, ListenerConfig } from "../core/types.ts";
import { CoreLoop } from "../shell/relay/core_loop.ts";
import { Relay } from "../shell/relay/relay.ts";
import { decodeProxyV2 } from "../core/proxy_v2.ts";
import { detectPlatform } from "../shell/process/platform.ts";
import type { UdpSockets } from "../shell/datapath/udp_sockets.ts";
import { bunUdpSockets } from "../shell/datapath/bun/udp.ts";
import { denoUdpSockets } from "../shell/datapath/deno/udp.ts";
import {
  type NativeListenerKnobs,
  NativeUdp,
  type NativeUdpOptions,
} from "../shell/datapath/native/native_udp.ts";
import type { Libc } from "../shell/datapath/native/ffi.ts";
import { Errno } from "../shell/datapath/native/errno.ts";
import {
  AF_INET,
  MSG_DONTWAIT,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  writeIovec,
  writeMsghdr,
  writeSockaddr,
} from "../shell/datapath/native/layout.ts";
import { nativeSupport } from "../shell/datapath/native/select.ts";
import { cleanups, udpDriverSuite } from "./support/udp_suite.ts";
import { addr, backend, cluster, config, listener } from "./support/fixtures.ts";
import { Client, EchoBackend, sleep, until } from "./support/udp.ts";

const sockets: UdpSockets = "Bun" in globalThis ? bunUdpSockets : denoUdpSockets;
const support = await nativeSupport();
const clock = () => performance.now();
// Bun does not print why a suite was skipped: say it once here.
if ("reason" in support) console.log(`native UDP tests skipped: ${support.reason}`);

/** A core loop (the event hub and timer owner) with a native driver, as Relay builds them. */
export function nativeDriver(core: RelayCore, options: NativeUdpOptions = {}, libc?: Libc) {
  if (!("libc" in support)) throw new Error(support.reason);
  const hub = new CoreLoop(core, clock);
  const native = new NativeUdp(hub, libc ?? support.libc, {}, options);
  return {
    hub,
    native,
    bind: native.bind.bind(native),
    async stop() {
      hub.stop();
      native.stop();
      await native.closed;
    },
  };
}

udpDriverSuite({
  name: `native (${sockets.name} FFI)`,
  driver: (core) => Promise.resolve(nativeDriver(core)),
  seesRefusals: true,
  skip: "reason" in support ? `native data path unavailable: ${support.reason}` : false,
});

// ---- what only the native path does ------------------------------------------------------------------------

const cleanup = cleanups();
const skip = "reason" in support ? `native data path unavailable: ${support.reason}` : false;

/** A native rig on one listener; `l` may carry the native knobs (recvBuffer, sendBuffer). */
async function nativeRig(
  c: Partial<ClusterConfig> = {},
  l: Partial<ListenerConfig & NativeListenerKnobs> = {},
  options: NativeUdpOptions = {},
  libc?: Libc,
  host: "127.0.0.1" | "::1" = "127.0.0.1",
) {
  const backends = [await new EchoBackend().start()];
  cleanup(() => backends[0].close());
  const cfg = config(
    [cluster({ backends: [backend(`127.0.0.1:${backends[0].port}`)], ...c })],
    [listener({ address: addr(host === "::1" ? "[::1]:0" : "127.0.0.1:0"), ...l })],
  );
  const core = new RelayCore(cfg, { seed: 1 });
  const d = nativeDriver(core, options, libc);
  cleanup(() => d.stop());
  const lst = core.listener("l") as Listener;
  const bound = await d.bind(lst, false);
  const client = async () => {
    const cl = await new Client({ host }).start();
    cleanup(() => cl.close());
    return cl;
  };
  return { core, d, native: d.native, l: lst, port: bound.port, backends, client };
}

/**
 * A client on a raw libc socket: its sends are synchronous and in order (Deno's node:dgram may put a burst
 * on the wire in reverse), so a test can make a burst land in one recvmmsg batch and check its order.
 */
function rawClient(libc: Libc, port: number) {
  const mem = libc.alloc(4096);
  const { dv, u8, addr } = mem;
  const fd = libc.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  writeSockaddr(u8, 0, { ip: "127.0.0.1", port, family: 4 });
  assert.equal(libc.connect(fd, libc.ref(mem, 0, 16), 16), 0);
  // msghdr @64 → iovec @128 → data @256.
  writeMsghdr(dv, 64, 0, 0, addr + 128, 1, 0, 0);
  const msg = libc.ref(mem, 64, 64);
  return {
    send(text: string) {
      const bytes = new TextEncoder().encode(text);
      u8.set(bytes, 256);
      writeIovec(dv, 128, addr + 256, bytes.byteLength);
      assert.ok(libc.sendmsg(fd, msg, 0) >= 0);
    },
    async next(ms = 1000): Promise<string | null> {
      const end = performance.now() + ms;
      writeIovec(dv, 128, addr + 256, 2048);
      while (performance.now() < end) {
        if (libc.recvmmsg(fd, msg, 1, MSG_DONTWAIT) === 1) {
          return new TextDecoder().decode(u8.slice(256, 256 + dv.getUint32(64 + 56, true)));
        }
        await sleep(2);
      }
      return null;
    },
    close() {
      libc.close(fd);
      libc.free(mem);
    },
  };
}

/** A libc whose chosen calls fail with chosen errnos, once per queued errno. */
function faultyLibc(real: Libc) {
  const queued: Record<string, number[]> = { socket: [], sendmsg: [], sendmmsg: [] };
  let fake: number | null = null;
  const failing = <A extends unknown[]>(name: string, f: (...a: A) => number) => (...a: A): number => {
    const e = queued[name].shift();
    if (e === undefined) return f(...a);
    fake = e;
    return -1;
  };
  const libc: Libc = {
    ...real,
    errno: () => {
      const e = fake ?? real.errno();
      fake = null;
      return e;
    },
    socket: failing("socket", real.socket),
    sendmsg: failing("sendmsg", real.sendmsg),
    sendmmsg: failing("sendmmsg", real.sendmmsg),
  };
  return { libc, queued };
}

describe("native data path specifics", { skip }, () => {
  test("IPv6: a [::1] listener relays ::1 clients to an IPv4 backend", async () => {
    const r = await nativeRig({}, {}, {}, undefined, "::1");
    const c = await r.client();
    assert.equal(await c.ask("six", r.port), "six");
    assert.deepEqual(c.lastFrom, { address: "::1", port: r.port });
    assert.equal([...r.core.flows()][0].clientIp, "::1");
    assert.equal(r.l.counters.datagramsOut, 1);
  });

  for (const host of ["127.0.0.1", "::1"] as const) {
    test(`PKTINFO (forced on ${host}): replies carry the arrival address and still arrive`, async () => {
      const r = await nativeRig({}, {}, { pktinfo: "always" }, undefined, host);
      const c = await r.client();
      for (let i = 0; i < 3; i++) assert.equal(await c.ask(`p${i}`, r.port), `p${i}`);
      assert.deepEqual(c.lastFrom, { address: host, port: r.port });
      assert.equal(r.native.stats(r.l)?.pktinfo, true);
      assert.equal(r.native.errors.get("sendmmsg"), 0);
    });
  }

  test("SO_RCVBUF/SO_SNDBUF: asked sizes are set and the granted ones reported", async () => {
    const r = await nativeRig({}, { recvBuffer: 256 * 1024, sendBuffer: 128 * 1024 });
    const s = r.native.stats(r.l);
    const rmemMax = Number(readFileSync("/proc/sys/net/core/rmem_max", "utf8"));
    const wmemMax = Number(readFileSync("/proc/sys/net/core/wmem_max", "utf8"));
    // Linux doubles the asked size (bookkeeping overhead), after capping it at the sysctl maximum.
    assert.equal(s?.recvBuffer, 2 * Math.min(256 * 1024, rmemMax));
    assert.equal(s?.sendBuffer, 2 * Math.min(128 * 1024, wmemMax));
    assert.equal(s?.pktinfo, false); // a specific address needs none
    assert.equal(s?.reusePort, false);
  });

  test("SO_RXQ_OVFL: kernel receive-queue drops are counted, and the books balance", async () => {
    const r = await nativeRig({}, { recvBuffer: 1 }); // the kernel's minimum: a burst must overflow it
    const c = await r.client();
    let sent = 0;
    const payload = new Uint8Array(1000).fill(7);
    await new Promise<void>((done) => {
      let pending = 300;
      for (let i = 0; i < 300; i++) {
        c.send(payload, r.port, (ok) => {
          if (ok) sent++;
          if (--pending === 0) done();
        });
      }
    });
    await sleep(200);
    // Drops are reported with the next datagram that gets in: send one once the queue is empty.
    assert.equal(await c.ask("probe", r.port, 2000) !== null || true, true);
    await until(() => r.l.counters.datagramsIn + (r.native.stats(r.l)?.rxqOverflows ?? 0) === sent + 1);
    const drops = r.native.stats(r.l)?.rxqOverflows ?? 0;
    assert.ok(drops > 0, "the burst overflowed the queue");
    assert.equal(r.l.counters.datagramsIn + drops, sent + 1);
  });

  // Regression (issue 12, finding 5): the count only moved with the next datagram that got in (it read 0
  // after thousands of drops). Now it is read when asked.
  test("kernel receive-queue drops show without a further datagram", async () => {
    const r = await nativeRig({}, { recvBuffer: 1 });
    const c = await r.client();
    let sent = 0;
    const payload = new Uint8Array(1000).fill(7);
    await new Promise<void>((done) => {
      let pending = 300;
      for (let i = 0; i < 300; i++) {
        c.send(payload, r.port, (ok) => {
          if (ok) sent++;
          if (--pending === 0) done();
        });
      }
    });
    assert.ok(
      await until(() => r.l.counters.datagramsIn + (r.native.stats(r.l)?.rxqOverflows ?? 0) === sent),
    );
    assert.ok((r.native.stats(r.l)?.rxqOverflows ?? 0) > 0, "the burst overflowed the queue");
    assert.equal(r.native.stats(r.l)?.upstreamRxqOverflows, 0, "no reply was lost upstream");
  });

  test("injected EMFILE, ENOBUFS, EMSGSIZE, EAGAIN: each counted by errno and costing one datagram", async () => {
    if (!("libc" in support)) return;
    const { libc, queued } = faultyLibc(support.libc);
    const r = await nativeRig({}, {}, {}, libc);
    const c = await r.client();
    const b = () => r.core.cluster("c")?.backends[0].counters;
    queued.socket.push(Errno.EMFILE); // the new flow's upstream cannot open
    assert.equal(await c.ask("lost", r.port, 300), null);
    assert.equal(r.l.counters.flowsClosed.aborted, 1);
    assert.equal(r.l.counters.drops.send_error, 1);
    assert.equal(r.native.errors.get("socket/connect", Errno.EMFILE), 1);
    assert.equal(await c.ask("ok", r.port), "ok"); // a fresh flow
    queued.sendmsg.push(Errno.ENOBUFS, Errno.EMSGSIZE);
    assert.equal(await c.ask("a", r.port, 300), null);
    assert.equal(await c.ask("b", r.port, 300), null);
    assert.equal(r.native.errors.get("send", Errno.ENOBUFS), 1);
    assert.equal(r.native.errors.get("send", Errno.EMSGSIZE), 1);
    assert.equal(b()?.sendErrors, 3);
    queued.sendmmsg.push(Errno.EAGAIN); // the reply to the client cannot go
    assert.equal(await c.ask("c", r.port, 300), null);
    assert.equal(r.native.errors.get("sendmmsg", Errno.EAGAIN), 1);
    assert.equal(r.l.counters.drops.send_error, 4);
    assert.equal(r.backends[0].received.length, 2); // "ok" and "c"
    assert.equal(await c.ask("d", r.port), "d");
    assert.equal(r.l.counters.datagramsIn, 6); // the core accepted every datagram; the sends failed after
  });

  test("EMSGSIZE for real: a PROXY header on a 65507-byte datagram exceeds what UDP carries", async () => {
    const r = await nativeRig({ proxyProtocol: "every" }, { maxDatagramSize: 65_507 });
    const c = await r.client();
    c.send(new Uint8Array(65_507).fill(1), r.port);
    assert.ok(await until(() => r.native.errors.get("send", Errno.EMSGSIZE) === 1));
    assert.equal(r.l.counters.drops.send_error, 1);
    r.backends[0].reply = () => new TextEncoder().encode("ack");
    assert.equal(await c.ask("small", r.port), "ack");
  });

  test("UDP GSO both ways: bursts of one flow ride in one send, arrive as separate datagrams, in order", async () => {
    const r = await nativeRig();
    if (!r.native.stats(r.l)?.gso) return; // a kernel without UDP_SEGMENT: nothing to check
    if (!("libc" in support)) return;
    const c = rawClient(support.libc, r.port);
    cleanup(() => c.close());
    const got: string[] = [];
    for (let round = 0; round < 20 && (r.native.gsoSaved.up === 0 || r.native.gsoSaved.down === 0); round++) {
      for (let k = 0; k < 8; k++) c.send(`burst ${round} ${k}`.padEnd(40, "."));
      for (let k = 0; k < 8; k++) got.push(await c.next() ?? "(none)");
      const want = Array.from({ length: 8 }, (_, k) => `burst ${round} ${k}`.padEnd(40, "."));
      assert.deepEqual(got.splice(0), want);
    }
    assert.ok(r.native.gsoSaved.up > 0, "a burst went upstream as one GSO send");
    assert.ok(r.native.gsoSaved.down > 0, "replies went back as one GSO send");
    assert.equal(r.l.counters.datagramsIn, r.backends[0].received.length);
    assert.equal(r.l.counters.datagramsOut, r.l.counters.datagramsIn);
    assert.deepEqual(r.native.errors.snapshot(), {});
    // The backend saw each burst in order too (the echo replies in the order it received).
    const seen = r.backends[0].received.map((x) => new TextDecoder().decode(x.data));
    assert.deepEqual(
      seen,
      [...seen].sort((a, b) => {
        const [ra, ka] = a.split(" ").slice(1, 3).map((x) => parseInt(x));
        const [rb, kb] = b.split(" ").slice(1, 3).map((x) => parseInt(x));
        return ra - rb || ka - kb;
      }),
    );
  });

  test("a GSO send the kernel refuses: the flow falls back to one send per datagram, nothing lost", async () => {
    if (!("libc" in support)) return;
    const { libc, queued } = faultyLibc(support.libc);
    const r = await nativeRig({}, {}, {}, libc);
    if (!r.native.stats(r.l)?.gso) return;
    const c = await r.client();
    assert.equal(await c.ask("open", r.port), "open"); // the flow exists: bursts now form runs
    let received = 0;
    for (let round = 0; round < 20 && r.native.errors.get("send(gso)") === 0; round++) {
      queued.sendmsg.push(Errno.EINVAL); // the next sendmsg (a GSO run, or a lone datagram) is refused
      for (let k = 0; k < 4; k++) c.send("x".repeat(32), r.port);
      while (await c.next(300) !== null) received++;
      queued.sendmsg.length = 0;
    }
    assert.equal(
      r.native.errors.get("send(gso)", Errno.EINVAL),
      1,
      JSON.stringify(r.native.errors.snapshot()),
    );
    const saved = r.native.gsoSaved.up;
    for (let k = 0; k < 4; k++) c.send("y".repeat(32), r.port);
    for (let k = 0; k < 4; k++) assert.notEqual(await c.next(1000), null);
    assert.equal(r.native.gsoSaved.up, saved, "that flow no longer uses GSO upstream");
    // Lone datagrams refused with EINVAL were lost and counted; GSO runs were resent one by one.
    assert.equal(r.l.counters.datagramsIn - r.l.counters.drops.send_error, r.backends[0].received.length);
    assert.ok(received > 0);
  });

  test("external resolution: the held datagram goes out (with its PROXY header) once resolved", async () => {
    const r = await nativeRig({ balancer: "external", backends: [], proxyProtocol: "first" });
    const asked: string[] = [];
    r.d.hub.setResolver(async (flow) => {
      asked.push(`${flow.clientIp}:${flow.clientPort}`);
      await sleep(20);
      return { ip: "127.0.0.1", port: r.backends[0].port, family: 4 };
    });
    r.backends[0].reply = (d) => d.subarray(28); // echo the payload without the header
    const c = await r.client();
    assert.equal(await c.ask("resolved", r.port), "resolved");
    assert.deepEqual(asked, [`127.0.0.1:${c.port}`]);
    const first = r.backends[0].received[0].data;
    assert.equal(new TextDecoder().decode(first.subarray(28)), "resolved");
    const h = decodeProxyV2(first);
    assert.ok(typeof h === "object" && "client" in h);
    assert.equal(h.client.port, c.port);
    r.backends[0].reply = null;
    assert.equal(await c.ask("again", r.port), "again"); // established: no header, no second resolve
    assert.equal(asked.length, 1);
  });

  test("idle: the loop sleeps off-thread (no rounds, next to no CPU) and wakes for the next datagram", async () => {
    const r = await nativeRig();
    const c = await r.client();
    assert.equal(await c.ask("before", r.port), "before");
    await sleep(100);
    const rounds = r.native.loopStats.rounds;
    const cpu = process.cpuUsage();
    await sleep(1000);
    const used = process.cpuUsage(cpu);
    assert.equal(r.native.loopStats.rounds, rounds);
    assert.ok(r.native.loopStats.sleeps > 0);
    // The whole test process, runner included: an idle spin would burn ~1 s.
    assert.ok((used.user + used.system) / 1000 < 150, `idle CPU ${(used.user + used.system) / 1000} ms`);
    assert.equal(await c.ask("after", r.port), "after");
  });

  test("timers keep firing while a burst is being relayed", async () => {
    const r = await nativeRig();
    const clients = await Promise.all(Array.from({ length: 8 }, () => r.client()));
    let worst = 0;
    let last = performance.now();
    const tick = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - last);
      last = now;
    }, 5);
    const payload = new Uint8Array(200);
    for (let round = 0; round < 50; round++) {
      for (const c of clients) for (let k = 0; k < 8; k++) c.send(payload, r.port);
      await sleep(1);
    }
    await until(() => r.l.counters.datagramsOut >= r.l.counters.datagramsIn && r.l.counters.datagramsIn > 0);
    clearInterval(tick);
    assert.ok(r.l.counters.datagramsIn > 0);
    assert.ok(worst < 250, `a 5 ms timer was held up ${worst.toFixed(1)} ms`);
  });

  test("stop closes every socket and frees the loop", async () => {
    const fds = () => readdirSync("/proc/self/fd").length;
    const before = fds();
    const r = await nativeRig();
    const clients = await Promise.all(Array.from({ length: 5 }, () => r.client()));
    for (const c of clients) assert.equal(await c.ask("x", r.port), "x");
    assert.equal(r.native.upstreams, 5);
    for (const c of clients) c.close();
    r.backends[0].close();
    await r.d.stop();
    assert.equal(r.native.upstreams, 0);
    assert.ok(fds() <= before, `fds ${fds()} > ${before}`);
  });
});

describe("Relay: the data path per listener", { skip }, () => {
  test("native, runtime and auto (following relay.datapath) listeners side by side", async () => {
    const echo = await new EchoBackend().start();
    cleanup(() => echo.close());
    const base = config(
      [cluster({ backends: [backend(`127.0.0.1:${echo.port}`)] })],
      [
        listener({ name: "n", address: addr("127.0.0.1:0"), datapath: "native" }),
        listener({ name: "r", address: addr("127.0.0.1:0"), datapath: "runtime" }),
        listener({ name: "a", address: addr("127.0.0.1:0"), datapath: "auto" }),
      ],
    );
    const cfg = { ...base, relay: { ...base.relay, datapath: "runtime" as const } };
    const relay = await Relay.start(cfg, detectPlatform(), { seed: 1 });
    cleanup(() => relay.stop());
    assert.deepEqual(
      ["n", "r", "a"].map((n) => relay.datapath(n)?.datapath),
      ["native", "runtime", "runtime"],
    );
    assert.equal(relay.datapath("a")?.requested, "runtime");
    assert.equal(relay.datapath("n")?.reason, null);
    assert.ok((relay.datapath("n")?.native?.recvBuffer ?? 0) > 0);
    assert.equal(relay.datapath("r")?.native, null);
    const c = await new Client().start();
    cleanup(() => c.close());
    for (const n of ["n", "r", "a"]) {
      assert.equal(await c.ask(`via ${n}`, relay.address(n)?.port ?? 0), `via ${n}`);
      assert.equal(relay.core.listener(n)?.counters.datagramsOut, 1);
    }
    // A reload that adds an "auto" listener under relay.datapath = "auto" puts it on the native path.
    const next = {
      ...base,
      listeners: [...base.listeners, listener({ name: "b", address: addr("127.0.0.1:0") })],
    };
    await relay.apply(next);
    assert.equal(relay.datapath("b")?.datapath, "native");
    assert.equal(await c.ask("via b", relay.address("b")?.port ?? 0), "via b");
    // Closing a flow from outside (the admin API's disconnect) reaches the native flow's socket.
    assert.equal(relay.core.disconnect("127.0.0.1", c.port, "b"), 1);
    assert.equal(relay.core.flowCount, 3);
    // A reload that drops "b" (no flows left: unbound at once) and raises n's max_datagram_size: the kept
    // native listener grows its buffers and takes what it used to cut.
    const bigger = {
      ...base,
      listeners: base.listeners.map((l) => l.name === "n" ? { ...l, maxDatagramSize: 9000 } : l),
    };
    const nPort = relay.address("n")?.port ?? 0;
    c.send(new Uint8Array(4000), nPort);
    assert.ok(await until(() => relay.core.listener("n")?.counters.drops.truncated === 1));
    await relay.apply(bigger);
    assert.equal(relay.address("b"), undefined);
    c.send(new Uint8Array(4000).fill(9), nPort);
    const big = await c.next(1000);
    assert.equal(big?.byteLength, 4000);
    assert.equal(relay.core.listener("n")?.counters.drops.truncated, 1); // only the one from before
  });
});
