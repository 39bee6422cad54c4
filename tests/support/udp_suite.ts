/**
 * The UDP driver tests, written once and run over each data path: the runtime driver (Bun.udpSocket or
 * Deno.listenDatagram) in tests/udp_relay.test.ts and the native driver in tests/native_udp.test.ts.
 * Real datagrams on 127.0.0.1 only.
 *
 * @module
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { RelayCore } from "../../core/relay_core.ts";
import type { Listener, UdpListener } from "../../core/listener.ts";
import type { ClusterConfig, ListenerConfig } from "../../core/types.ts";
import { decodeProxyV2 } from "../../core/proxy_v2.ts";
import type { SocketAddress } from "../../core/address.ts";
import { addr, backend, cluster, config, listener } from "./fixtures.ts";
import { Client, EchoBackend, sleep, until } from "./udp.ts";

/** A driver bound to a core: what the suite needs of either data path. */
export interface DriverUnderTest {
  bind(listener: Listener, reusePort: boolean): Promise<SocketAddress>;
  /** Closes everything (awaited, so a native loop can release its memory). */
  stop(): Promise<void> | void;
}

/** How to run the suite over one data path. */
export interface SuiteOptions {
  /** Shown in the describe name. */
  readonly name: string;
  /** A driver for `core`. */
  readonly driver: (core: RelayCore) => Promise<DriverUnderTest>;
  /** Whether ICMP refusals reach the driver (connected upstream sockets). */
  readonly seesRefusals: boolean;
  /** Set to skip the whole suite, with the reason shown. */
  readonly skip?: string | false;
}

/** A started relay on one listener with `n` echo backends. */
export interface Rig {
  core: RelayCore;
  driver: DriverUnderTest;
  l: UdpListener;
  port: number;
  backends: EchoBackend[];
  client(): Promise<Client>;
}

/** Registers cleanups run after the file's tests. */
export function cleanups(): (fn: () => unknown) => void {
  const list: (() => unknown)[] = [];
  after(async () => {
    for (const f of list.splice(0).reverse()) await f();
  });
  return (fn) => list.push(fn);
}

/** Builds a rig over `make`. */
export async function rig(
  make: SuiteOptions["driver"],
  cleanup: (fn: () => unknown) => void,
  n: number,
  c: Partial<ClusterConfig> = {},
  l: Partial<ListenerConfig> = {},
): Promise<Rig> {
  const backends = await Promise.all(Array.from({ length: n }, () => new EchoBackend().start()));
  for (const b of backends) cleanup(() => b.close());
  const cfg = config(
    [cluster({ backends: backends.map((b) => backend(`127.0.0.1:${b.port}`)), ...c })],
    [listener({ address: addr("127.0.0.1:0"), ...l })],
  );
  const core = new RelayCore(cfg, { seed: 1 });
  const driver = await make(core);
  cleanup(() => driver.stop());
  const lst = core.listener("l") as UdpListener;
  const bound = await driver.bind(lst, false);
  return {
    core,
    driver,
    l: lst,
    port: bound.port,
    backends,
    client: async () => {
      const cl = await new Client().start();
      cleanup(() => cl.close());
      return cl;
    },
  };
}

/** The UDP driver tests over one data path. */
export function udpDriverSuite(o: SuiteOptions): void {
  const cleanup = cleanups();
  const make = (n: number, c: Partial<ClusterConfig> = {}, l: Partial<ListenerConfig> = {}) =>
    rig(o.driver, cleanup, n, c, l);

  describe(`UDP relay on ${o.name}`, { skip: o.skip || false }, () => {
    test("forward and return", async () => {
      const r = await make(1);
      const c = await r.client();
      assert.equal(await c.ask("ping", r.port), "ping");
      assert.equal(await c.ask("pong", r.port), "pong");
      assert.equal(r.backends[0].received.length, 2);
      assert.equal(r.l.counters.datagramsIn, 2);
      assert.equal(r.l.counters.datagramsOut, 2);
      assert.equal(r.core.flowCount, 1);
    });

    test("many clients get separate flows and upstream sockets", async () => {
      const r = await make(2);
      const clients = await Promise.all(Array.from({ length: 12 }, () => r.client()));
      const answers = await Promise.all(clients.map((c, i) => c.ask(`hi ${i}`, r.port)));
      assert.deepEqual(answers, clients.map((_, i) => `hi ${i}`));
      assert.equal(r.core.flowCount, 12);
      const upstreamPorts = new Set(r.backends.flatMap((b) => b.received.map((x) => x.port)));
      assert.equal(upstreamPorts.size, 12);
      assert.deepEqual(r.backends.map((b) => b.received.length), [6, 6]);
    });

    test("affinity stable: a client's datagrams all reach one backend", async () => {
      const r = await make(3, { balancer: "maglev" });
      const c = await r.client();
      for (let i = 0; i < 10; i++) assert.equal(await c.ask(`m${i}`, r.port), `m${i}`);
      assert.deepEqual(r.backends.map((b) => b.received.length).sort(), [0, 0, 10]);
    });

    test("responses = 1: the flow closes after the reply, and the next datagram opens a new one", async () => {
      const r = await make(1, { responses: 1 });
      const c = await r.client();
      assert.equal(await c.ask("q1", r.port), "q1");
      assert.ok(await until(() => r.core.flowCount === 0));
      assert.equal(r.l.counters.flowsClosed.responses, 1);
      assert.equal(await c.ask("q2", r.port), "q2");
      assert.equal(r.l.counters.flowsCreated, 2);
      const ports = r.backends[0].received.map((x) => x.port);
      assert.notEqual(ports[0], ports[1]); // a new upstream socket
    });

    test("responses = 1 per request: three pipelined queries from one socket all get answers", async () => {
      const r = await make(1, { responses: 1 });
      r.backends[0].delayMs = 50; // every query is in before the first answer leaves
      const c = await r.client();
      for (const q of ["q1", "q2", "q3"]) c.send(new TextEncoder().encode(q), r.port);
      const got = [await c.next(2000), await c.next(2000), await c.next(2000)].map((d) =>
        d === null ? null : new TextDecoder().decode(d)
      );
      assert.deepEqual(got.sort(), ["q1", "q2", "q3"]);
      assert.equal(r.l.counters.flowsCreated, 1);
      assert.ok(await until(() => r.core.flowCount === 0));
      assert.equal(r.l.counters.flowsClosed.responses, 1);
      assert.equal(r.l.counters.drops.late, 0);
    });

    test("a reply after its flow closed is counted late, not lost silently", async () => {
      const r = await make(1, { responses: 1 });
      r.backends[0].copies = 2; // a backend that answers twice: the second answer has no flow left
      const c = await r.client();
      assert.equal(await c.ask("dup", r.port), "dup");
      assert.ok(await until(() => r.l.counters.drops.late === 1), `late ${r.l.counters.drops.late}`);
      assert.equal(r.l.counters.datagramsOut, 1);
      assert.equal(await c.next(200), null); // the client never saw the duplicate
      // The same 50 ms after the flow closed (not in the batch that closed it): still counted.
      r.backends[0].copyGapMs = 50;
      assert.equal(await c.ask("dup2", r.port), "dup2");
      assert.ok(await until(() => r.l.counters.drops.late === 2), `late ${r.l.counters.drops.late}`);
      assert.equal(r.l.counters.datagramsOut, 2);
    });

    test("requests = 1: replies still return; each datagram opens a new flow", async () => {
      const r = await make(1, { requests: 1, backTimeout: 300, frontTimeout: 300 });
      const c = await r.client();
      assert.equal(await c.ask("a", r.port), "a");
      assert.equal(await c.ask("b", r.port), "b");
      assert.equal(r.l.counters.flowsCreated, 2);
      assert.ok(await until(() => r.core.flowCount === 0, 3000));
      assert.equal(r.l.counters.flowsClosed.requests, 2);
    });

    test("idle timeout closes a flow; a later datagram opens a fresh one", async () => {
      const r = await make(1, { frontTimeout: 150, backTimeout: 0 });
      const c = await r.client();
      assert.equal(await c.ask("x", r.port), "x");
      assert.ok(await until(() => r.core.flowCount === 0, 2000));
      assert.equal(r.l.counters.flowsClosed.idle, 1);
      assert.equal(await c.ask("y", r.port), "y");
      assert.equal(r.l.counters.flowsCreated, 2);
    });

    test("max_flows sheds new clients and keeps serving existing ones", async () => {
      const r = await make(1, {}, { maxFlows: 2 });
      const [a, b, c] = await Promise.all([r.client(), r.client(), r.client()]);
      assert.equal(await a.ask("a", r.port), "a");
      assert.equal(await b.ask("b", r.port), "b");
      assert.equal(await c.ask("c", r.port, 300), null);
      assert.equal(r.l.counters.drops.shed, 1);
      assert.equal(await a.ask("a2", r.port), "a2");
    });

    test("oversized datagrams are dropped and counted", async () => {
      const r = await make(1, {}, { maxDatagramSize: 100 });
      const c = await r.client();
      c.send(new Uint8Array(101), r.port);
      c.send(new Uint8Array(3000), r.port);
      assert.equal(await c.ask("ok", r.port), "ok");
      assert.equal(r.l.counters.drops.truncated, 2);
      assert.equal(r.backends[0].received.length, 1);
    });

    // Regression (issue 12, finding 2): the runtime path relayed 65,507-byte replies past max_datagram_size.
    test("oversized replies are dropped and counted, as client datagrams are", async () => {
      const r = await make(1, {}, { maxDatagramSize: 1500 });
      r.backends[0].reply = (d) => d.byteLength === 1 ? new Uint8Array(65_507) : d;
      const c = await r.client();
      c.send(new Uint8Array(1), r.port);
      c.send(new Uint8Array(1), r.port);
      c.send("ok", r.port);
      const sizes: number[] = [];
      for (let d = await c.next(500); d !== null; d = await c.next(200)) sizes.push(d.byteLength);
      assert.deepEqual(sizes, [2], "only the small reply reached the client");
      assert.equal(r.l.counters.drops.truncated, 2);
      assert.equal(r.l.counters.datagramsOut, 1);
    });

    for (const mode of ["first", "every"] as const) {
      test(`PROXY v2 header byte-exact at the backend (${mode})`, async () => {
        const r = await make(1, { proxyProtocol: mode });
        r.backends[0].reply = () => new TextEncoder().encode("ack");
        const c = await r.client();
        for (let i = 0; i < 3; i++) assert.equal(await c.ask(`d${i}`, r.port), "ack");
        const got = r.backends[0].received.map((x) => x.data);
        const expectHeader = (i: number) => mode === "every" || i === 0;
        got.forEach((d, i) => {
          const body = new TextDecoder().decode(d.subarray(expectHeader(i) ? 28 : 0));
          assert.equal(body, `d${i}`);
          if (!expectHeader(i)) return;
          const h = decodeProxyV2(d);
          assert.ok(typeof h === "object" && "client" in h, `header ${JSON.stringify(h)}`);
          assert.equal(h.headerLength, 28);
          assert.deepEqual([h.client.ip, h.client.port], ["127.0.0.1", c.port]);
          assert.deepEqual([h.local.ip, h.local.port], ["127.0.0.1", r.port]);
          assert.equal(h.transport, "dgram");
        });
        assert.equal(r.l.counters.bytesIn, 6); // payload only
      });
    }

    test("a backend that is not listening: counted refusals, others keep serving", async () => {
      const dead = await new EchoBackend().start();
      const deadPort = dead.port;
      dead.close();
      const live = await new EchoBackend().start();
      cleanup(() => live.close());
      const cfg = config(
        [cluster({ backends: [backend(`127.0.0.1:${deadPort}`), backend(`127.0.0.1:${live.port}`)] })],
        [listener({ address: addr("127.0.0.1:0") })],
      );
      const core = new RelayCore(cfg, { seed: 1 });
      const driver = await o.driver(core);
      cleanup(() => driver.stop());
      const bound = await driver.bind(core.listener("l") as UdpListener, false);
      const clients = await Promise.all(Array.from({ length: 4 }, () => new Client().start()));
      for (const c of clients) cleanup(() => c.close());
      // Round robin: clients 0 and 2 go to the dead backend, 1 and 3 to the live one.
      for (let round = 0; round < 3; round++) {
        for (const c of clients) c.send(`r${round}`, bound.port);
        await sleep(50);
      }
      const answered = await Promise.all(clients.map((c) => c.next(500)));
      assert.deepEqual(answered.map((a) => a !== null), [false, true, false, true]);
      const deadBackend = core.cluster("c")?.backends[0];
      if (o.seesRefusals) {
        // Connected sockets surface ICMP port unreachable as ECONNREFUSED; Deno's unconnected ones cannot.
        assert.ok((deadBackend?.counters.refusals ?? 0) > 0, "refusals counted");
      }
      assert.equal(deadBackend?.counters.datagramsTo, 6);
    });
  });
}
