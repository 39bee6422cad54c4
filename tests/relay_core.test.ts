import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type CoreEvent, RelayCore } from "../core/relay_core.ts";
import { type Flow, FlowState } from "../core/flow.ts";
import { Drop, type Listener } from "../core/listener.ts";
import type { ClusterConfig, ListenerConfig } from "../core/types.ts";
import { addr, backend, bytes, cluster, config, listener } from "./support/fixtures.ts";

const D = bytes(64);

function setup(c: Partial<ClusterConfig> = {}, l: Partial<ListenerConfig> = {}, count = 3) {
  const core = new RelayCore(config([cluster(c, count)], [listener(l)]), { seed: 1 });
  const lst = core.listener("l") as Listener;
  return { core, l: lst };
}

function flowOf(r: Flow | Drop): Flow {
  assert.equal(typeof r, "object", `expected a flow, got drop ${String(r)}`);
  return r as Flow;
}

function events(core: RelayCore): CoreEvent[] {
  const out: CoreEvent[] = [];
  for (let e = core.poll(); e !== undefined; e = core.poll()) out.push(e);
  return out;
}

describe("admission", () => {
  test("oversized datagram: Truncated, before anything else", () => {
    const { core, l } = setup({}, { maxDatagramSize: 100 });
    assert.equal(core.fromClient(l, "1.2.3.4", 5000, bytes(101), 0), Drop.Truncated);
    assert.equal(core.fromClient(l, "0.0.0.0", 0, bytes(101), 0), Drop.Truncated);
    flowOf(core.fromClient(l, "1.2.3.4", 5000, bytes(100), 0));
    assert.equal(l.counters.drops.truncated, 2);
  });

  test("no cluster or no backends: NoBackend, before Invalid", () => {
    const core = new RelayCore(config([cluster({ backends: [] })], [listener()]), { seed: 1 });
    const l = core.listener("l") as Listener;
    assert.equal(core.fromClient(l, "1.2.3.4", 5000, D, 0), Drop.NoBackend);
    assert.equal(core.fromClient(l, "1.2.3.4", 5000, bytes(0), 0), Drop.NoBackend);
    const orphan = new RelayCore(config([cluster()], [listener({ cluster: "missing" })]), { seed: 1 });
    const ol = orphan.listener("l") as Listener;
    assert.equal(orphan.fromClient(ol, "1.2.3.4", 5000, D, 0), Drop.NoBackend);
    assert.equal(l.counters.drops.no_backend, 2);
  });

  test("empty datagram and invalid sources: Invalid", () => {
    const { core, l } = setup();
    assert.equal(core.fromClient(l, "1.2.3.4", 5000, bytes(0), 0), Drop.Invalid);
    for (const [ip, port] of [["1.2.3.4", 0], ["0.0.0.0", 53], ["224.0.0.1", 53], ["255.255.255.255", 53]]) {
      assert.equal(core.fromClient(l, ip as string, port as number, D, 0), Drop.Invalid, `${ip}:${port}`);
    }
    flowOf(core.fromClient(l, "127.0.0.1", 5000, D, 0)); // loopback allowed by default
    assert.equal(l.counters.drops.invalid, 5);
    assert.equal(core.flowCount, 1);
  });

  test("a source policy can refuse loopback and deny blocks", () => {
    const { core, l } = setup({}, {
      sources: {
        reject: ["port0", "loopback"],
        deny: [{ ip: { family: 4, bytes: new Uint8Array([10, 0, 0, 0]) }, prefix: 8 }],
        allow: [],
      },
    });
    assert.equal(core.fromClient(l, "127.0.0.1", 5000, D, 0), Drop.Invalid);
    assert.equal(core.fromClient(l, "10.9.9.9", 5000, D, 0), Drop.Invalid);
    flowOf(core.fromClient(l, "192.0.2.1", 5000, D, 0));
  });

  test("known key returns the same flow and pinned backend", () => {
    const { core, l } = setup();
    const f = flowOf(core.fromClient(l, "1.2.3.4", 5000, D, 0));
    for (let i = 1; i < 10; i++) assert.equal(core.fromClient(l, "1.2.3.4", 5000, D, i), f);
    assert.equal(f.requests, 10);
    assert.equal(l.counters.datagramsIn, 10);
    assert.equal(l.counters.bytesIn, 640);
    assert.equal(f.backend?.counters.datagramsTo, 10);
    assert.equal(l.counters.flowsCreated, 1);
  });

  test("many clients get separate flows spread over backends", () => {
    const { core, l } = setup();
    const flows = new Set<Flow>();
    for (let p = 1; p <= 30; p++) flows.add(flowOf(core.fromClient(l, "1.2.3.4", 1000 + p, D, 0)));
    assert.equal(flows.size, 30);
    const per = core.cluster("c")?.backends.map((b) => b.flows);
    assert.deepEqual(per, [10, 10, 10]);
  });

  test("at max_flows: new keys Shed, existing flows still served", () => {
    const { core, l } = setup({}, { maxFlows: 2 });
    const a = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    flowOf(core.fromClient(l, "1.1.1.2", 1, D, 0));
    assert.equal(core.fromClient(l, "1.1.1.3", 1, D, 0), Drop.Shed);
    assert.equal(core.fromClient(l, "1.1.1.1", 1, D, 1), a);
    assert.equal(l.counters.drops.shed, 1);
  });

  test("auto max_flows comes from the shell's option", () => {
    const core = new RelayCore(config(), { seed: 1, autoMaxFlows: 1 });
    const l = core.listener("l") as Listener;
    flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    assert.equal(core.fromClient(l, "1.1.1.2", 1, D, 0), Drop.Shed);
  });

  test("shrinking max_flows only sheds new flows", () => {
    const { core, l } = setup({}, { maxFlows: 10 });
    const flows = [1, 2, 3].map((p) => flowOf(core.fromClient(l, "1.1.1.1", p, D, 0)));
    core.setListener(listener({ maxFlows: 1 }));
    assert.equal(core.fromClient(l, "1.1.1.1", 9, D, 1), Drop.Shed);
    for (const f of flows) assert.equal(core.fromClient(l, "1.1.1.1", f.clientPort, D, 2), f);
  });

  test("draining: new keys Shed, existing flows run on", () => {
    const { core, l } = setup();
    const a = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    core.drain();
    assert.equal(core.fromClient(l, "1.1.1.2", 1, D, 1), Drop.Shed);
    assert.equal(core.fromClient(l, "1.1.1.1", 1, D, 1), a);
    assert.equal(core.fromBackend(a, 10, 2), true);
    assert.ok(core.draining);
  });

  test("draining one listener leaves the others admitting", () => {
    const core = new RelayCore(
      config([cluster()], [listener(), listener({ name: "m", address: addr("127.0.0.1:7001") })]),
      { seed: 1 },
    );
    core.drain("l");
    assert.equal(core.fromClient(core.listener("l") as Listener, "1.1.1.1", 1, D, 0), Drop.Shed);
    flowOf(core.fromClient(core.listener("m") as Listener, "1.1.1.1", 1, D, 0));
  });
});

describe("health-aware choice and fail-open", () => {
  test("down and draining backends get no new flows; pinned flows stay", () => {
    const { core, l } = setup();
    const pinned = flowOf(core.fromClient(l, "9.9.9.9", 1, D, 0));
    const key = pinned.backend?.key as string;
    core.setBackendState("c", key, "down");
    for (let p = 2; p < 50; p++) {
      assert.notEqual(flowOf(core.fromClient(l, "9.9.9.9", p, D, 0)).backend?.key, key);
    }
    assert.equal(core.fromClient(l, "9.9.9.9", 1, D, 1), pinned);
    assert.equal(pinned.backend?.key, key);
    core.setBackendState("c", key, "draining");
    assert.notEqual(flowOf(core.fromClient(l, "9.9.9.9", 99, D, 0)).backend?.key, key);
  });

  test("all unusable: fail open by default, counted", () => {
    const { core, l } = setup({
      backends: [backend("10.0.0.1:1", 1, "down"), backend("10.0.0.2:1", 1, "draining")],
    });
    flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    assert.equal(core.cluster("c")?.counters.failOpen, 1);
  });

  test("all unusable with fail_open = false: NoBackend", () => {
    const { core, l } = setup({ failOpen: false, backends: [backend("10.0.0.1:1", 1, "down")] });
    assert.equal(core.fromClient(l, "1.1.1.1", 1, D, 0), Drop.NoBackend);
    assert.equal(l.counters.drops.no_backend, 1);
    assert.equal(core.flowCount, 0);
  });

  test("affinity ip: every port of one IP lands on the same backend, even with round robin", () => {
    const { core, l } = setup({ affinity: "ip" });
    const first = flowOf(core.fromClient(l, "5.5.5.5", 1, D, 0)).backend;
    for (let p = 2; p < 20; p++) assert.equal(flowOf(core.fromClient(l, "5.5.5.5", p, D, 0)).backend, first);
    assert.notEqual(flowOf(core.fromClient(l, "5.5.5.6", 1, D, 0)).backend, first);
  });

  test("hash balancers: same seed, same client, same backend on two cores", () => {
    for (const balancer of ["maglev", "rendezvous"] as const) {
      const a = setup({ balancer }, {}, 10);
      const b = setup({ balancer }, {}, 10);
      for (let i = 0; i < 200; i++) {
        const ip = `203.0.113.${i % 250}`;
        const fa = flowOf(a.core.fromClient(a.l, ip, 4000 + i, D, 0));
        const fb = flowOf(b.core.fromClient(b.l, ip, 4000 + i, D, 0));
        assert.equal(fa.backend?.key, fb.backend?.key);
      }
    }
  });
});

describe("teardown knobs and close reasons", () => {
  test("idle: front_timeout reset by client datagrams", () => {
    const { core, l } = setup({ frontTimeout: 1000, backTimeout: 0 });
    const f = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    assert.equal(core.nextDeadline(), 1000);
    core.fromClient(l, "1.1.1.1", 1, D, 800);
    core.onTimeout(1000); // stale heap entry: refreshed, not closed
    assert.equal(f.state, FlowState.Established);
    assert.equal(core.nextDeadline(), 1800);
    core.onTimeout(1800);
    assert.equal(f.state, FlowState.Closed);
    assert.equal(f.closeReason, "idle");
    assert.equal(l.counters.flowsClosed.idle, 1);
    const again = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 1900));
    assert.notEqual(again, f);
    assert.equal(core.nextDeadline(), 2900);
  });

  test("idle: back_timeout reset by backend replies", () => {
    const { core, l } = setup({ frontTimeout: 0, backTimeout: 500 });
    const f = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    core.fromBackend(f, 10, 400);
    core.onTimeout(500);
    assert.equal(f.state, FlowState.Established);
    core.onTimeout(899);
    assert.equal(f.state, FlowState.Established);
    core.onTimeout(900);
    assert.equal(f.closeReason, "idle");
  });

  test("the earlier of the two idle deadlines wins", () => {
    const { core, l } = setup({ frontTimeout: 1000, backTimeout: 300 });
    const f = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    core.fromClient(l, "1.1.1.1", 1, D, 200); // the client keeps talking, the backend never answers
    core.onTimeout(300);
    assert.equal(f.closeReason, "idle");
  });

  test("responses = 1 (DNS): the reply is forwarded, then the flow closes", () => {
    const { core, l } = setup({ responses: 1 });
    const f = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    assert.equal(core.fromBackend(f, 100, 5), true);
    assert.equal(f.state, FlowState.Closed);
    assert.equal(f.closeReason, "responses");
    assert.equal(core.fromBackend(f, 100, 6), false); // late
    assert.equal(l.counters.drops.late, 1);
    assert.equal(l.counters.datagramsOut, 1);
    const evs = events(core);
    assert.deepEqual(evs.map((e) => e.kind), ["open", "closed"]); // admitted, then closed
    assert.notEqual(flowOf(core.fromClient(l, "1.1.1.1", 1, D, 7)), f);
  });

  test("requests = 1: forwarded, detached, replies still return, next datagram opens a new flow", () => {
    const { core, l } = setup({ requests: 1, backTimeout: 2000 });
    const f = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    assert.equal(f.state, FlowState.Closing);
    assert.equal(l.lookup("1.1.1.1", 1), undefined);
    const g = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 10));
    assert.notEqual(g, f);
    assert.equal(core.fromBackend(f, 20, 20), true);
    assert.equal(f.state, FlowState.Closing);
    core.onTimeout(2019);
    assert.equal(f.state, FlowState.Closing);
    core.onTimeout(2020);
    assert.equal(f.closeReason, "requests");
    assert.equal(l.counters.flowsClosed.requests, 2); // g detached at 10, due at 2010
    assert.equal(core.flowCount, 0);
  });

  test("requests and responses together: the flow closes once both datagrams had both replies", () => {
    const { core, l } = setup({ requests: 2, responses: 2 });
    const f = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    core.fromClient(l, "1.1.1.1", 1, D, 1);
    assert.equal(f.state, FlowState.Closing);
    for (let t = 2; t < 5; t++) {
      assert.equal(core.fromBackend(f, 1, t), true);
      assert.equal(f.state, FlowState.Closing, `after reply ${t - 1} of 4`);
    }
    assert.equal(core.fromBackend(f, 1, 5), true);
    assert.equal(f.closeReason, "responses");
    assert.equal(f.requests, 2);
    assert.equal(f.responses, 4);
  });

  test("responses = 1 is per request: pipelined queries from one port all get their answers", () => {
    const { core, l } = setup({ responses: 1 });
    const f = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    assert.equal(core.fromClient(l, "1.1.1.1", 1, D, 1), f); // A and AAAA from one socket
    assert.equal(core.fromClient(l, "1.1.1.1", 1, D, 2), f); // and a retransmission
    assert.equal(f.outstanding, 3);
    assert.equal(core.fromBackend(f, 10, 3), true);
    assert.equal(core.fromBackend(f, 10, 4), true);
    assert.equal(f.state, FlowState.Established);
    assert.equal(core.fromClient(l, "1.1.1.1", 1, D, 5), f); // a fourth before the third answer
    assert.equal(core.fromBackend(f, 10, 6), true);
    assert.equal(f.state, FlowState.Established);
    assert.equal(core.fromBackend(f, 10, 7), true);
    assert.equal(f.closeReason, "responses");
    assert.equal(l.counters.datagramsOut, 4);
    assert.equal(l.counters.flowsClosed.responses, 1);
    assert.equal(core.fromBackend(f, 10, 8), false); // a fifth reply has no flow left: counted
    assert.equal(l.counters.drops.late, 1);
  });

  test("responses = 2: each datagram waits for two replies, whatever order they come in", () => {
    const { core, l } = setup({ responses: 2 });
    const f = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    core.fromBackend(f, 1, 1);
    core.fromClient(l, "1.1.1.1", 1, D, 2);
    core.fromBackend(f, 1, 3);
    core.fromBackend(f, 1, 4);
    assert.equal(f.state, FlowState.Established);
    core.fromBackend(f, 1, 5);
    assert.equal(f.closeReason, "responses");
  });

  test("responses = 0: replies never close a flow", () => {
    const { core, l } = setup({ responses: 0 });
    const f = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    for (let t = 1; t < 10; t++) assert.equal(core.fromBackend(f, 1, t), true);
    assert.equal(f.state, FlowState.Established);
    assert.equal(f.outstanding, 0);
  });

  test("aborted, disconnected, drain; closing is idempotent", () => {
    const { core, l } = setup();
    const a = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    const b = flowOf(core.fromClient(l, "1.1.1.1", 2, D, 0));
    const c = flowOf(core.fromClient(l, "::ffff:2.2.2.2", 3, D, 0));
    const d = flowOf(core.fromClient(l, "3.3.3.3", 3, D, 0));
    assert.equal(core.close(a, "aborted"), true);
    assert.equal(core.close(a, "idle"), false);
    assert.equal(core.disconnect("1.1.1.1"), 1); // a already closed: only b
    assert.equal(b.closeReason, "disconnected");
    assert.equal(core.disconnect("2.2.2.2", 3), 1); // IPv4-mapped form matches
    assert.equal(c.closeReason, "disconnected");
    assert.equal(core.closeAll("drain"), 1);
    assert.equal(d.closeReason, "drain");
    assert.deepEqual(l.counters.flowsClosed, {
      idle: 0,
      requests: 0,
      responses: 0,
      drain: 1,
      aborted: 1,
      disconnected: 2,
    });
    assert.equal(core.flowCount, 0);
    assert.equal(l.flows, 0);
    for (const be of core.cluster("c")?.backends ?? []) assert.equal(be.flows, 0);
    assert.deepEqual(events(core).map((e) => e.kind), [...Array(4).fill("open"), ...Array(4).fill("closed")]);
  });

  test("closeBackendFlows closes only that backend's flows", () => {
    const { core, l } = setup();
    const flows = [1, 2, 3, 4, 5, 6].map((p) => flowOf(core.fromClient(l, "1.1.1.1", p, D, 0)));
    const key = flows[0].backend?.key as string;
    assert.equal(core.closeBackendFlows(key), 2);
    assert.equal(flows.filter((f) => f.state === FlowState.Closed).length, 2);
  });

  test("next deadline is later than now after onTimeout; stale timers are harmless", () => {
    const { core, l } = setup({ frontTimeout: 100, backTimeout: 0 });
    const f = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    core.close(f, "aborted");
    assert.equal(core.nextDeadline(), Infinity); // the stale entry is skipped
    flowOf(core.fromClient(l, "1.1.1.1", 1, D, 50));
    core.onTimeout(100);
    assert.ok(core.nextDeadline() > 100);
    core.onTimeout(1e9);
    assert.equal(core.nextDeadline(), Infinity);
  });
});

describe("PROXY protocol v2 over datagrams", () => {
  test("first: header built once, due only on the first datagram", () => {
    const { core, l } = setup({ proxyProtocol: "first" });
    const f = flowOf(core.fromClient(l, "192.0.2.1", 51000, D, 0));
    const h = f.proxyHeader as Uint8Array;
    assert.equal(h.byteLength, 28);
    assert.equal(h[12], 0x21);
    assert.equal(h[13], 0x12);
    assert.equal(f.headerDue, true);
    core.fromClient(l, "192.0.2.1", 51000, D, 1);
    assert.equal(f.headerDue, false);
    assert.equal(f.proxyHeader, h);
    assert.equal(l.counters.bytesIn, 128); // payload only, header excluded
  });

  test("every: due on every datagram; off: none", () => {
    const every = setup({ proxyProtocol: "every" });
    const f = flowOf(every.core.fromClient(every.l, "192.0.2.1", 1, D, 0));
    every.core.fromClient(every.l, "192.0.2.1", 1, D, 1);
    assert.equal(f.headerDue, true);
    const off = setup();
    const g = flowOf(off.core.fromClient(off.l, "192.0.2.1", 1, D, 0));
    assert.equal(g.proxyHeader, null);
    assert.equal(g.headerDue, false);
  });

  test("IPv6 client with an IPv4 listener gets AF_UNSPEC", () => {
    const { core, l } = setup({ proxyProtocol: "first" });
    const f = flowOf(core.fromClient(l, "2001:db8::1", 1, D, 0));
    assert.equal(f.proxyHeader?.[13], 0x00);
  });
});

describe("external resolution", () => {
  test("flow awaits its backend holding only the newest datagram", () => {
    const { core, l } = setup({ balancer: "external" }, {}, 0);
    const f = flowOf(core.fromClient(l, "1.1.1.1", 1, bytes(10, 1), 0));
    assert.equal(f.state, FlowState.AwaitingBackend);
    assert.deepEqual(events(core).map((e) => e.kind), ["resolve"]);
    assert.equal(core.fromClient(l, "1.1.1.1", 1, bytes(11, 2), 1), f);
    assert.equal(l.counters.drops.pending_replaced, 1);
    const r = core.resolved(f, addr("10.1.1.1:53"), 2);
    assert.equal(r, f);
    assert.equal(f.state, FlowState.Established);
    assert.equal(f.backend?.key, "10.1.1.1:53");
    const open = events(core).find((e) => e.kind === "open");
    assert.ok(open?.kind === "open" && open.flow === f, "resolution queues the flow's open");
    assert.deepEqual(open.held, bytes(11, 2), "carrying the newest held datagram");
    assert.equal(f.pending, null);
    assert.equal(f.requests, 1);
    assert.equal(core.resolved(f, addr("10.1.1.2:53"), 3), null); // already resolved
  });

  test("an invalid resolved address with no fallback aborts the flow", () => {
    const { core, l } = setup({ balancer: "external" }, {}, 0);
    for (const bad of ["224.0.0.1:53", "0.0.0.0:53", "10.0.0.1:0"]) {
      const f = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
      const a = bad.endsWith(":0") ? { ip: "10.0.0.1", port: 0, family: 4 as const } : addr(bad);
      assert.equal(core.resolved(f, a, 1), null);
      assert.equal(f.closeReason, "aborted");
    }
    assert.equal(core.flowCount, 0);
  });

  test("null resolution falls back to the cluster's backends when it has some", () => {
    const external = { key: "k", fallback: "rendezvous" as const, cacheMs: 0 };
    const { core, l } = setup({ balancer: "external", external }, {}, 2);
    const f = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    assert.equal(f.state, FlowState.AwaitingBackend);
    assert.equal(core.resolved(f, null, 1), f);
    assert.ok(f.backend?.key.startsWith("10.0.0."));
    // With fallback "drop", the same situation aborts the flow.
    const drop = setup({ balancer: "external", external: { ...external, fallback: "drop" } }, {}, 2);
    const g = flowOf(drop.core.fromClient(drop.l, "1.1.1.1", 1, D, 0));
    assert.equal(drop.core.resolved(g, null, 1), null);
    assert.equal(g.closeReason, "aborted");
  });
});

describe("live reconfiguration", () => {
  test("existing flows keep the knobs they were admitted under", () => {
    const { core, l } = setup({ frontTimeout: 1000, backTimeout: 0 });
    const old = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    core.setCluster(cluster({ frontTimeout: 5000, backTimeout: 0, responses: 1 }));
    const neu = flowOf(core.fromClient(l, "1.1.1.1", 2, D, 0));
    assert.equal(old.knobs.frontTimeout, 1000);
    assert.equal(neu.knobs.frontTimeout, 5000);
    core.fromBackend(old, 1, 1);
    assert.equal(old.state, FlowState.Established); // its responses cap is still 0
    core.onTimeout(1000);
    assert.equal(old.closeReason, "idle");
    assert.equal(neu.state, FlowState.Established);
  });

  test("a backend added takes new flows; pinned flows stay; removed backend keeps its flows", () => {
    const { core, l } = setup({ balancer: "least_flows" }, {}, 1);
    const pinned = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    core.setCluster(cluster({ balancer: "least_flows", backends: [backend("10.0.0.9:9000")] }));
    const fresh = flowOf(core.fromClient(l, "1.1.1.1", 2, D, 0));
    assert.equal(fresh.backend?.key, "10.0.0.9:9000");
    assert.equal(core.fromClient(l, "1.1.1.1", 1, D, 1), pinned);
    assert.equal(pinned.backend?.key, "10.0.0.1:9000");
    core.close(pinned, "aborted");
    assert.equal(pinned.backend?.flows, 0);
  });

  test("a kept backend keeps its counters across reconfiguration", () => {
    const { core, l } = setup({}, {}, 1);
    flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    const before = core.cluster("c")?.backends[0];
    core.setCluster(cluster({ backends: [backend("10.0.0.1:9000", 5)] }));
    const after = core.cluster("c")?.backends[0];
    assert.equal(after, before);
    assert.equal(after?.weight, 5);
    assert.equal(after?.counters.datagramsTo, 1);
  });

  test("set max_datagram_size applies at once", () => {
    const { core, l } = setup();
    core.setListener(listener({ maxDatagramSize: 10 }));
    assert.equal(core.fromClient(l, "1.1.1.1", 1, bytes(11), 0), Drop.Truncated);
  });

  test("removing a listener drains it; it is forgotten when its last flow closes", () => {
    const { core, l } = setup();
    const f = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    core.applyConfig(config([cluster()], []));
    assert.equal(core.fromClient(l, "1.1.1.2", 1, D, 0), Drop.Shed);
    assert.equal(core.fromClient(l, "1.1.1.1", 1, D, 0), f);
    assert.deepEqual(events(core).map((e) => e.kind), ["open"]); // f's admission; nothing since
    core.close(f, "drain");
    assert.deepEqual(events(core).map((e) => e.kind), ["closed", "listener_done"]);
    assert.equal(core.listener("l"), undefined);
  });

  test("removing a cluster: NoBackend for everyone, pinned flows' replies still return", () => {
    const { core, l } = setup();
    const f = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    core.removeCluster("c");
    assert.equal(core.fromClient(l, "1.1.1.1", 1, D, 1), Drop.NoBackend);
    assert.equal(core.fromBackend(f, 5, 2), true);
  });
});

describe("send failures", () => {
  test("counted against the listener, the flow's quality and the backend", () => {
    const { core, l } = setup();
    const f = flowOf(core.fromClient(l, "1.1.1.1", 1, D, 0));
    core.sendFailed(f, "to_backend", "refused", 1);
    core.sendFailed(f, "to_client", "error", 2);
    assert.equal(l.counters.drops.send_error, 2);
    assert.equal(f.backend?.counters.refusals, 1);
    assert.equal(f.backend?.counters.sendErrors, 1);
    assert.equal(f.quality.dropped, 2);
  });
});

describe("memory under churn", () => {
  test("closed flows do not pile up in the timer heap", () => {
    const { core, l } = setup({ responses: 1, frontTimeout: 30_000, backTimeout: 30_000 });
    for (let i = 0; i < 20_000; i++) {
      const f = core.fromClient(l, `10.1.${i >> 8 & 255}.${i & 255}`, 1000 + (i >> 16), D, i / 100);
      core.fromBackend(flowOf(f), 10, i / 100);
      while (core.poll() !== undefined) { /* drain */ }
    }
    assert.equal(core.flowCount, 0);
    // Every flow closed long before its deadline: without compaction all 20,000 stale entries would stay.
    assert.ok(core.timerEntries <= 1025, `${core.timerEntries} heap entries for 0 live flows`);
  });
});
