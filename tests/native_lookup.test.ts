/**
 * The native driver's string-free client lookup: the FlowIndex over sockaddr words (collisions, removal,
 * growth), ClientLookup over a real core with sockaddr bytes made by hand (established flows by bytes,
 * IPv4, IPv6 and IPv4-mapped; unknown clients screened before any text is built; the index in step with
 * the core's opens, closes and detaches), the one IPv4-mapped helper the core unmaps with, and on real
 * loopback sockets (skipped without the native path): IPv6 and IPv4-mapped clients, mapped bans in user
 * space and in the kernel filter, whose drops are counted.
 *
 * @module
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { isIpv4Mapped, parseCidr, parseIp, sameIp, unmapCidr, unmappedIpText } from "../core/address.ts";
import { Drop } from "../core/drops.ts";
import { type Flow, FlowState } from "../core/flow.ts";
import { readIp, readIpBytes } from "../core/ip_words.ts";
import type { UdpListener as Listener } from "../core/listener.ts";
import { RelayCore } from "../core/relay_core.ts";
import type { ListenerConfig } from "../core/types.ts";
import { compileSourcePolicy } from "../core/source_policy.ts";
import { SpaceSaving } from "../core/heavy_hitters.ts";
import { BanTable } from "../core/ban_table.ts";
import { compileKernelFilter } from "../core/bpf_filter.ts";
import { FlowIndex } from "../shell/datapath/native/flow_index.ts";
import { ClientLookup } from "../shell/datapath/native/client_lookup.ts";
import { SOCKADDR_MAX, writeSockaddr } from "../shell/datapath/native/layout.ts";
import { run as runCbpf, udpPacket } from "./support/cbpf.ts";
import { addr, backend, bytes, cluster, config, listener } from "./support/fixtures.ts";
import { Client, EchoBackend, sleep } from "./support/udp.ts";
import { NativeUdp } from "../shell/datapath/native/native_udp.ts";
import { nativeSupport } from "../shell/datapath/native/select.ts";
import { CoreLoop } from "../shell/relay/core_loop.ts";

const words = (text: string): [4 | 6, Uint32Array] => {
  const w = new Uint32Array(4);
  const f = readIp(text, w);
  assert.notEqual(f, 0, text);
  return [f as 4 | 6, w];
};

/** A stand-in flow: the index stores and returns references only. */
const fake = (id: number) => ({ id }) as unknown as Flow;

describe("FlowIndex", () => {
  test("finds by family, words and port; IPv4 and IPv6 with equal first words are different keys", () => {
    const ix = new FlowIndex(1);
    const [f4, w4] = words("10.0.0.1");
    const w6 = new Uint32Array([w4[0], 0, 0, 0]);
    ix.set(f4, w4, 53, fake(1));
    ix.set(6, w6, 53, fake(2));
    ix.set(f4, w4, 54, fake(3));
    assert.equal(ix.size, 3);
    assert.equal((ix.get(4, w4, 53) as unknown as { id: number }).id, 1);
    assert.equal((ix.get(6, w6, 53) as unknown as { id: number }).id, 2);
    assert.equal((ix.get(4, w4, 54) as unknown as { id: number }).id, 3);
    assert.equal(ix.get(4, w4, 55), undefined);
    const [, other] = words("2001:db8::1");
    assert.equal(ix.get(6, other, 53), undefined);
  });

  test("set replaces, delete removes only the named flow", () => {
    const ix = new FlowIndex(2);
    const [f, w] = words("2001:db8::7");
    const a = fake(1), b = fake(2);
    ix.set(f, w, 1, a);
    ix.set(f, w, 1, b);
    assert.equal(ix.size, 1);
    assert.equal(ix.delete(f, w, 1, a), false, "a stale flow does not remove its successor");
    assert.equal(ix.get(f, w, 1), b);
    assert.equal(ix.delete(f, w, 1, b), true);
    assert.equal(ix.size, 0);
    assert.equal(ix.get(f, w, 1), undefined);
  });

  test("every key stays findable through collisions, growth and backward-shift removal", () => {
    // Many ports of one address and many addresses: long probe runs in a table that grows from 64 slots.
    const ix = new FlowIndex(7);
    const keys: [4 | 6, Uint32Array, number][] = [];
    for (let i = 0; i < 600; i++) {
      const text = i % 2 === 0 ? `10.0.${i >> 8}.${i & 255}` : `2001:db8::${i.toString(16)}`;
      const [f, w] = words(text);
      keys.push([f, w, 1000 + (i % 7)]);
    }
    keys.forEach(([f, w, p], i) => ix.set(f, w, p, fake(i)));
    assert.equal(ix.size, 600);
    assert.ok(ix.capacity >= 1200, `grew to ${ix.capacity}`);
    // Remove every third, in an order unlike insertion, then check all of them.
    for (let i = 599; i >= 0; i -= 3) assert.equal(ix.delete(keys[i][0], keys[i][1], keys[i][2]), true);
    keys.forEach(([f, w, p], i) => {
      const got = ix.get(f, w, p);
      if ((599 - i) % 3 === 0) assert.equal(got, undefined, `removed ${i}`);
      else assert.equal((got as unknown as { id: number }).id, i, `kept ${i}`);
    });
    assert.equal(ix.size, 400);
  });

  test("at half load (the most a table holds before growing), removing each key keeps the rest findable", () => {
    // 32 keys in 64 slots: probe runs are certain; remove in turn, checking every survivor each time.
    const ix = new FlowIndex(3, 64);
    const keys: [4 | 6, Uint32Array, number][] = [];
    for (let i = 0; i < 32; i++) {
      const [f, w] = words(i % 3 === 0 ? `2001:db8::${i}` : `192.0.2.${i}`);
      keys.push([f, w, 53]);
      ix.set(f, w, 53, fake(i));
    }
    assert.equal(ix.capacity, 64, "did not grow");
    for (let gone = 0; gone < 32; gone++) {
      assert.ok(ix.delete(...keys[gone]));
      for (let i = gone + 1; i < 32; i++) {
        assert.equal((ix.get(...keys[i]) as unknown as { id: number }).id, i, `after ${gone}: ${i}`);
      }
    }
    assert.equal(ix.size, 0);
  });
});

// ---- ClientLookup over a real core --------------------------------------------------------------------

function rig(l: Partial<ListenerConfig> = {}, family: 4 | 6 = 4) {
  const core = new RelayCore(
    config([cluster({ backends: [backend("127.0.0.1:9")] })], [
      listener({ address: addr(family === 4 ? "127.0.0.1:5000" : "[::1]:5000"), ...l }),
    ]),
    { seed: 1 },
  );
  const lst = core.listener("l") as Listener;
  const nl = { listener: lst, family, flows: new FlowIndex(5) };
  const lookup = new ClientLookup(core);
  const u8 = new Uint8Array(SOCKADDR_MAX * 4);
  /** A datagram from `ip`:`port` (written as the kernel would for the listener's family). */
  const from = (ip: string, port: number, data = bytes(8), now = 0) => {
    writeSockaddr(u8, 0, { ip, port, family });
    return lookup.fromClient(nl, u8, 0, port, data, now);
  };
  const drain = () => {
    for (let e = core.poll(); e !== undefined; e = core.poll()) {
      if (e.kind === "closed") lookup.forget(nl, e.flow);
    }
  };
  return { core, l: lst, nl, from, drain };
}

const isFlow = (r: Flow | Drop): r is Flow => typeof r === "object";

describe("ClientLookup", () => {
  for (const [family, ip] of [[4, "192.0.2.9"], [6, "2001:db8::9"], [6, "::ffff:192.0.2.9"]] as const) {
    test(`${ip}: the first datagram admits, the rest find the flow by its bytes`, () => {
      const r = rig({}, family);
      const f = r.from(ip, 4000);
      assert.ok(isFlow(f));
      assert.equal(f.clientIp, ip, "the flow's text is the runtimes' spelling");
      assert.equal(r.nl.flows.size, 1);
      for (let i = 0; i < 5; i++) assert.equal(r.from(ip, 4000), f);
      assert.equal(r.l.counters.datagramsIn, 6);
      assert.equal(r.core.flowCount, 1);
      assert.ok(isFlow(r.from(ip, 4001)), "another port is another flow");
      assert.equal(r.core.flowCount, 2);
    });
  }

  test("a flow the core closes leaves the index; the client's next datagram opens a new flow", () => {
    const r = rig({}, 6);
    const f = r.from("2001:db8::5", 7) as Flow;
    r.core.close(f, "aborted");
    r.drain();
    assert.equal(r.nl.flows.size, 0);
    const g = r.from("2001:db8::5", 7);
    assert.ok(isFlow(g) && g !== f);
  });

  test("a flow detached by its requests cap is not forwarded to: the client becomes new", () => {
    // requests = 1 on the cluster: every datagram is a flow of its own.
    const r = (() => {
      const c = new RelayCore(
        config([cluster({ backends: [backend("127.0.0.1:9")], requests: 1 })], [listener({})]),
        { seed: 1 },
      );
      const lst = c.listener("l") as Listener;
      const nl = { listener: lst, family: 4 as const, flows: new FlowIndex(5) };
      const lookup = new ClientLookup(c);
      const u8 = new Uint8Array(SOCKADDR_MAX);
      writeSockaddr(u8, 0, { ip: "192.0.2.1", port: 9, family: 4 });
      return { c, lst, send: () => lookup.fromClient(nl, u8, 0, 9, bytes(4), 0), nl };
    })();
    const a = r.send(), b = r.send();
    assert.ok(isFlow(a) && isFlow(b) && a !== b);
    assert.equal(a.state, FlowState.Closing);
    assert.equal(r.nl.flows.size, 0, "a detached flow is never indexed");
  });

  test("seed indexes a listener's attached flows (bound again with flows alive), and only those", () => {
    const r = rig({ maxFlows: 2 }, 6);
    const a = r.from("2001:db8::1", 1) as Flow;
    const b = r.from("::ffff:192.0.2.1", 2) as Flow;
    const fresh = { ...r.nl, flows: new FlowIndex(9) };
    new ClientLookup(r.core).seed(fresh, r.core.flows());
    assert.equal(fresh.flows.size, 2);
    const [f, w] = words("192.0.2.1");
    assert.equal(fresh.flows.get(f, w, 2), b);
    assert.equal(fresh.flows.get(...words("2001:db8::1"), 1), a);
  });

  test("screen then admitScreened charges a new flow's limits once", () => {
    const r = rig({
      protection: {
        limits: {
          perIp: { newFlows: 2, datagrams: 0, bytes: 0 },
          perPrefix: { newFlows: 0, datagrams: 0, bytes: 0 },
          burstMs: 1000,
          prefixV4: 24,
          prefixV6: 64,
          tableSize: 64,
          banAfterMs: 0,
          banForMs: 0,
        },
        filter: null,
        amplification: null,
      },
    }, 6);
    assert.ok(isFlow(r.from("2001:db8::1", 1)));
    assert.ok(isFlow(r.from("2001:db8::1", 1)), "its flow: no new-flow token");
    assert.ok(isFlow(r.from("2001:db8::1", 2)), "the second of two new flows a second");
    assert.equal(r.from("2001:db8::1", 3), Drop.RateLimited);
    assert.equal(r.l.counters.drops.rate_limited, 1);
  });

  test("unknown sources are refused before their text exists: max_flows, bans (mapped too), deny, filter", () => {
    const deny = parseCidr("198.51.100.0/24");
    if (typeof deny === "string") throw new Error(deny);
    const r = rig({
      maxFlows: 1,
      sources: { reject: ["port0"], deny: [deny], allow: [] },
      protection: {
        limits: null,
        filter: {
          minLength: 2,
          maxLength: 0,
          match: [{ offset: 0, bytes: Uint8Array.of(0xca, 0xfe), mask: null }],
          regex: "",
        },
        amplification: null,
      },
    }, 6);
    const ok = Uint8Array.of(0xca, 0xfe, 1);
    assert.equal(
      r.from("::ffff:198.51.100.3", 1, ok),
      Drop.Invalid,
      "a mapped client meets an IPv4 deny block",
    );
    assert.equal(r.from("2001:db8::1", 1, bytes(4)), Drop.Filtered);
    r.core.protection.bans.add({ cidr: "::ffff:203.0.113.0/120", ttlMs: 0, reason: "t", origin: "api" }, 0);
    assert.equal(r.from("::ffff:203.0.113.7", 1, ok), Drop.Banned, "a mapped ban holds a mapped client");
    assert.ok(isFlow(r.from("2001:db8::2", 1, ok)));
    assert.equal(r.from("2001:db8::3", 1, ok), Drop.Shed, "at max_flows");
    const d = r.l.counters.drops;
    assert.deepEqual([d.invalid, d.filtered, d.banned, d.shed], [1, 1, 1, 1]);
    assert.equal(r.nl.flows.size, 1);
    // Refused sources still rank in the top-talker drops, by their words (mapped as IPv4).
    const keys = r.core.protection.top.drops.top(10).map((h) => h.key).sort();
    assert.deepEqual(keys, ["2001:db8::1", "2001:db8::3", "203.0.113.7"]);
  });
});

// ---- the one IPv4-mapped helper ----------------------------------------------------------------------

describe("IPv4-mapped addresses, one definition", () => {
  test("isIpv4Mapped, unmappedIpText and sameIp agree on every spelling", () => {
    for (const t of ["::ffff:10.0.0.1", "::FFFF:a00:1", "0:0:0:0:0:ffff:10.0.0.1", "::ffff:0a00:0001"]) {
      const ip = parseIp(t);
      assert.ok(ip !== null && isIpv4Mapped(ip.bytes), t);
      assert.equal(unmappedIpText(t), "10.0.0.1", t);
      assert.ok(sameIp(t, "10.0.0.1"), t);
    }
    for (const t of ["10.0.0.1", "2001:db8::ffff:1", "::1", "::ffff:1:10.0.0.1", "nope"]) {
      assert.equal(unmappedIpText(t), t);
    }
    assert.ok(!sameIp("10.0.0.1", "10.0.0.2"));
  });

  test("text, words and sockaddr bytes unmap alike", () => {
    const a = new Uint32Array(4), b = new Uint32Array(4);
    const u8 = new Uint8Array(SOCKADDR_MAX);
    writeSockaddr(u8, 0, { ip: "::ffff:10.1.2.3", port: 1, family: 6 });
    assert.equal(readIpBytes(u8, 8, 16, a), 4);
    assert.equal(readIp("::ffff:a01:203", b), 4);
    assert.equal(readIp("10.1.2.3", b), 4);
    assert.equal(a[0], b[0]);
    writeSockaddr(u8, 0, { ip: "2001:db8::ffff:a01:203", port: 1, family: 6 });
    assert.equal(readIpBytes(u8, 8, 16, a), 6);
  });

  test("mapped blocks become the IPv4 blocks they cover: bans, source policy and the kernel filter", () => {
    const c = parseCidr("::ffff:10.0.0.0/104");
    if (typeof c === "string") throw new Error(c);
    const u = unmapCidr(c);
    assert.deepEqual([u.ip.family, [...u.ip.bytes], u.prefix], [4, [10, 0, 0, 0], 8]);
    const short = parseCidr("::/64");
    if (typeof short === "string") throw new Error(short);
    assert.equal(unmapCidr(short), short);
    const bans = new BanTable();
    const ban = bans.add({ cidr: "::ffff:10.0.0.0/104", ttlMs: 0, reason: "", origin: "api" }, 0);
    assert.ok(typeof ban !== "string" && ban.cidr === "10.0.0.0/8");
    assert.ok(bans.match("10.9.9.9", 0) !== null);
    assert.ok(bans.match("::ffff:10.9.9.9", 0) !== null);
    assert.ok(bans.remove("::ffff:10.0.0.0/104"), "lifted by the spelling it was placed with");
    const policy = compileSourcePolicy({ reject: [], deny: [c], allow: [] });
    assert.equal(policy.check("10.2.3.4", 1), "denied");
    assert.equal(policy.check("::ffff:10.2.3.4", 1), "denied");
    assert.equal(policy.check("11.2.3.4", 1), "ok");
    // The kernel sees an IPv4 client of a dual-stack socket as an IPv4 packet: refused by the mapped ban.
    const prog = compileKernelFilter({ deny: [], allow: [], bans: [c], payload: null });
    assert.ok(prog !== null);
    assert.equal(runCbpf(prog.program, udpPacket(Uint8Array.of(10, 1, 1, 1), bytes(4))), 0);
    assert.notEqual(runCbpf(prog.program, udpPacket(Uint8Array.of(11, 1, 1, 1), bytes(4))), 0);
  });

  test("top talkers count an IP's text and its words as one source", () => {
    const s = new SpaceSaving(4);
    const [f, w] = words("::ffff:10.0.0.1");
    s.add("10.0.0.1", 2);
    s.addWords(f, w, 3);
    s.add("name", 1);
    assert.deepEqual(s.top(2), [{ key: "10.0.0.1", count: 5, error: 0 }, {
      key: "name",
      count: 1,
      error: 0,
    }]);
  });
});

// ---- end to end on native sockets ---------------------------------------------------------------------

const support = await nativeSupport();
const skip = "reason" in support ? `native data path unavailable: ${support.reason}` : false;
if (skip) console.log(`native lookup socket tests skipped: ${skip}`);
const clock = () => performance.now();

/** A native listener on `host` (IPv4-mapped or ::1) relaying to an echo backend. */
async function nativeRig(host: string, l: Partial<ListenerConfig> = {}) {
  if (!("libc" in support)) throw new Error("no native support");
  const echo = await new EchoBackend().start();
  const core = new RelayCore(
    config([cluster({ backends: [backend(`127.0.0.1:${echo.port}`)] })], [
      listener({ address: addr(`[${host}]:0`), ...l }),
    ]),
    { seed: 1 },
  );
  const hub = new CoreLoop(core, clock);
  const native = new NativeUdp(hub, support.libc, {}, {});
  const lst = core.listener("l") as Listener;
  const { port } = await native.bind(lst, false);
  return {
    core,
    native,
    l: lst,
    port,
    async stop() {
      hub.stop();
      native.stop();
      await native.closed;
      echo.close();
    },
  };
}

describe("native sockets: flows by sockaddr bytes", { skip, timeout: 20_000 }, () => {
  test("IPv6: one ::1 client's datagrams ride one flow; after it closes the client gets a new one", async () => {
    const r = await nativeRig("::1");
    const c = await new Client({ host: "::1" }).start();
    try {
      for (let i = 0; i < 5; i++) assert.equal(await c.ask(`six ${i}`, r.port), `six ${i}`);
      assert.equal(r.core.flowCount, 1);
      assert.equal(r.l.counters.datagramsIn, 5);
      const [f] = [...r.core.flows()];
      assert.equal(f.clientIp, "::1");
      r.core.close(f, "aborted");
      await Promise.resolve(); // the core loop drains the closed events at the next microtask
      assert.equal(await c.ask("again", r.port), "again");
      const [g] = [...r.core.flows()];
      assert.ok(g !== undefined && g !== f && g.clientIp === "::1");
      assert.equal(r.core.flowCount, 1);
    } finally {
      c.close();
      await r.stop();
    }
  });

  for (const kernel of [false, true]) {
    test(`IPv4-mapped: a ::ffff:127.0.0.1 listener relays IPv4 clients; a mapped ban holds them (kernel filter ${kernel ? "on" : "off"})`, async () => {
      const r = await nativeRig("::ffff:127.0.0.1", {
        protection: { limits: null, filter: null, amplification: null, kernelFilter: kernel },
      });
      const c = await new Client({ host: "127.0.0.1" }).start();
      try {
        assert.equal(await c.ask("four", r.port), "four");
        assert.equal(await c.ask("four again", r.port), "four again");
        assert.equal(r.core.flowCount, 1);
        assert.equal([...r.core.flows()][0].clientIp, "::ffff:127.0.0.1");
        for (const f of [...r.core.flows()]) r.core.close(f, "aborted");
        await Promise.resolve(); // the core loop drains the closed events at the next microtask
        r.core.protection.bans.add(
          { cidr: "::ffff:127.0.0.0/104", ttlMs: 0, reason: "t", origin: "api" },
          clock(),
        );
        await sleep(kernel ? 400 : 0); // the kernel filter's refresh timer
        for (let i = 0; i < 10; i++) assert.equal(await c.ask(`banned ${i}`, r.port, 50), null);
        const status = r.native.kernelFilters.status(r.l);
        if (kernel) {
          assert.ok(status !== undefined && status.instructions > 0, JSON.stringify(status));
          assert.equal(r.l.counters.drops.banned, 0, "refused in the kernel: nothing reached the core");
          assert.ok(status.drops === null || (status.drops as number) >= 10, JSON.stringify(status));
        } else {
          assert.equal(r.l.counters.drops.banned, 10, "refused in user space, by the mapped ban");
          assert.equal(status?.drops, 0);
        }
      } finally {
        c.close();
        await r.stop();
      }
    });
  }
});
