/**
 * TCP connections under the core's operator actions and admission rules: closed by client and by
 * backend (and by a backend going down with close_flows_on_down), one admission order shared with UDP,
 * the descriptor budget's own Drop code, listener drains undone, and the config refusing a TCP listener
 * whose Redis-routed cluster has no backend.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type CoreEvent, RelayCore } from "../core/relay_core.ts";
import type { Connection } from "../core/connection.ts";
import type { Flow } from "../core/flow.ts";
import type { Listener, TcpListener, UdpListener } from "../core/listener.ts";
import { Drop, DROP_COUNTED, type DropReason } from "../core/drops.ts";
import { DEFAULT_HEALTH } from "../core/health.ts";
import { parseConfigToml } from "../core/config.ts";
import { addr, backend, bytes, cluster, config, listener } from "./support/fixtures.ts";
import type { ListenerConfig } from "../core/types.ts";
import { type Cidr, parseCidr } from "../core/address.ts";
import type { ProtectionConfig } from "../core/protection.ts";

const D = bytes(8);

function events(core: RelayCore): CoreEvent[] {
  const out: CoreEvent[] = [];
  for (let e = core.poll(); e !== undefined; e = core.poll()) out.push(e);
  return out;
}

/** A core with UDP listener "u" and TCP listener "t", both to cluster "c" (two backends). */
function twoListeners(over: Partial<ListenerConfig> = {}, budget?: number) {
  const c = cluster({
    backends: [backend("10.0.0.1:9000"), backend("10.0.0.2:9000")],
    health: { ...DEFAULT_HEALTH, mode: "udp", send: D, fall: 1, maxFails: 0, closeFlowsOnDown: true },
  });
  const core = new RelayCore(
    config([c], [
      listener({ name: "u", ...over }),
      listener({ name: "t", protocol: "tcp", address: addr("127.0.0.1:7001"), ...over }),
    ]),
    { seed: 1, descriptorBudget: budget },
  );
  return { core, u: core.listener("u") as UdpListener, t: core.listener("t") as TcpListener };
}

describe("operator actions close TCP connections", () => {
  test("disconnect by client ends its connections (either IPv4 spelling) and reports connection_closed", () => {
    const { core, t, u } = twoListeners();
    const a = core.openConnection(t, "::ffff:10.1.1.1", 5000, 0) as Connection;
    const b = core.openConnection(t, "10.1.1.1", 5001, 0) as Connection;
    const other = core.openConnection(t, "10.1.1.2", 5000, 0) as Connection;
    const flow = core.fromClient(u, "10.1.1.1", 6000, D, 0) as Flow;
    events(core);
    assert.equal(core.disconnect("10.1.1.1", 5000), 1, "only that port");
    assert.equal(a.end, "disconnected");
    assert.deepEqual(events(core), [{ kind: "connection_closed", connection: a }]);
    assert.equal(core.disconnect("10.1.1.1"), 2, "its other connection and its UDP flow");
    assert.equal(b.end, "disconnected");
    assert.equal(flow.closeReason, "disconnected");
    assert.equal(other.end, null);
    assert.equal(t.flows, 1);
    assert.equal(t.counters.connectionsEnded.disconnected, 2);
    assert.equal(core.endConnection(a, "closed", 1), false, "the shell's own end afterwards is a no-op");
    assert.equal(t.counters.connectionsEnded.closed, 0);
    assert.equal(core.disconnect("10.1.1.2", undefined, "u"), 0, "another listener's client is not touched");
  });

  test("closeBackendFlows ends the backend's connections and flows, and only its cluster's", () => {
    const { core, t, u } = twoListeners();
    const conns = [1, 2, 3, 4].map((p) => core.openConnection(t, "10.2.0.1", p, 0) as Connection);
    const flows = [1, 2].map((p) => core.fromClient(u, "10.2.0.1", p, D, 0) as Flow);
    const key = conns[0].backend.key;
    const onIt = conns.filter((c) => c.backend.key === key).length +
      flows.filter((f) => f.backend?.key === key).length;
    assert.equal(core.closeBackendFlows(key, "other"), 0);
    assert.equal(core.closeBackendFlows(key, "c"), onIt);
    for (const c of conns) assert.equal(c.end, c.backend.key === key ? "disconnected" : null);
    assert.equal(conns[0].backend.flows, 0, "the backend's count follows");
    assert.ok(events(core).some((e) => e.kind === "connection_closed" && e.connection === conns[0]));
  });

  test("close_flows_on_down ends a downed backend's TCP connections too", () => {
    const { core, t } = twoListeners();
    const conn = core.openConnection(t, "10.3.0.1", 1, 0) as Connection;
    events(core);
    core.probeResult("c", conn.backend.key, "timeout", 1);
    assert.equal(conn.end, "aborted");
    const kinds = events(core).map((e) => e.kind);
    assert.deepEqual(kinds, ["health", "connection_closed"]);
    assert.equal(t.counters.connectionsEnded.aborted, 1);
  });
});

/** Protection with only a per-IP new-flow rate of `n` per second. */
function newFlowsPerIp(n: number): ProtectionConfig {
  const none = { newFlows: 0, datagrams: 0, bytes: 0 };
  return {
    limits: {
      perIp: { ...none, newFlows: n },
      perPrefix: none,
      burstMs: 1000,
      prefixV4: 24,
      prefixV6: 64,
      tableSize: 1024,
      banAfterMs: 0,
      banForMs: 60_000,
    },
    filter: null,
    amplification: null,
  };
}

describe("one admission order for UDP and TCP", () => {
  /** What a new UDP flow and a new TCP connection from `ip` get, with the counter each bumped. */
  function both(core: RelayCore, u: Listener, t: Listener, ip: string): [string, string] {
    const name = (l: Listener, r: unknown) => {
      if (typeof r !== "number") return "admitted";
      const counted = Object.entries(l.counters.drops).filter(([, n]) => n > 0).map(([k]) => k);
      assert.deepEqual(counted, [DROP_COUNTED[r as Drop]], "the code and the counter agree");
      return DROP_COUNTED[r as Drop];
    };
    return [
      name(u, core.fromClient(u, ip, 1, D, 0)),
      name(t, core.openConnection(t, ip, 1, 0)),
    ];
  }

  const ban = (core: RelayCore) => {
    assert.equal(
      typeof core.protection.bans.add({ cidr: "10.9.0.0/16", reason: "t", ttlMs: 0, origin: "api" }, 0),
      "object",
    );
  };
  const deny: Partial<ListenerConfig> = {
    sources: { reject: [], deny: [parseCidr("10.9.0.0/16") as Cidr], allow: [] },
  };
  type Arrange = (core: RelayCore, u: Listener, t: Listener) => void;
  const cases: [string, Arrange, Partial<ListenerConfig>, DropReason | "admitted"][] = [
    [
      "a ban beats draining",
      (core) => {
        ban(core);
        core.drain();
      },
      {},
      "banned",
    ],
    [
      "a ban beats max_flows",
      (core, u, t) => {
        ban(core);
        assert.equal(typeof core.fromClient(u, "10.8.0.1", 1, D, 0), "object");
        assert.equal(typeof core.openConnection(t, "10.8.0.1", 1, 0), "object");
      },
      { maxFlows: 1 },
      "banned",
    ],
    ["draining beats the source policy", (core) => core.drain(), deny, "shed"],
    [
      "max_flows beats the source policy",
      (core, u, t) => {
        core.fromClient(u, "10.8.0.1", 1, D, 0);
        core.openConnection(t, "10.8.0.1", 1, 0);
      },
      { maxFlows: 1, ...deny },
      "shed",
    ],
    [
      "a source over its new-flow limit is rate_limited, not shed, at max_flows",
      (core, u, t) => {
        assert.equal(typeof core.fromClient(u, "10.9.0.1", 2, D, 0), "object");
        assert.equal(typeof core.openConnection(t, "10.9.0.1", 2, 0), "object");
      },
      { maxFlows: 1, protection: newFlowsPerIp(1) },
      "rate_limited",
    ],
    ["the source policy", () => {}, deny, "invalid"],
    ["nothing in the way", () => {}, {}, "admitted"],
  ];
  for (const [what, arrange, over, want] of cases) {
    test(what, () => {
      const { core, u, t } = twoListeners(over);
      arrange(core, u, t);
      assert.deepEqual(both(core, u, t, "10.9.0.1"), [want, want]);
    });
  }

  test("a full descriptor budget refuses with Drop.FdLimit, not Shed, on both", () => {
    const { core, u, t } = twoListeners({}, 2);
    assert.equal(typeof core.openConnection(t, "10.4.0.1", 1, 0), "object"); // two descriptors: full
    assert.equal(core.fromClient(u, "10.4.0.2", 1, D, 0), Drop.FdLimit);
    assert.equal(core.openConnection(t, "10.4.0.3", 1, 0), Drop.FdLimit);
    assert.deepEqual([u.counters.drops.fd_limit, t.counters.drops.fd_limit], [1, 1]);
    assert.deepEqual([u.counters.drops.shed, t.counters.drops.shed], [0, 0]);
  });

  test("every Drop code names a declared counter", () => {
    for (const code of Object.values(Drop)) assert.ok(DROP_COUNTED[code] in twoListeners().u.counters.drops);
  });
});

describe("undoing a drain", () => {
  test("undrain(listener) admits again; a removed listener and a whole-core drain stay", () => {
    const { core, u, t } = twoListeners();
    core.drain("t");
    assert.equal(core.openConnection(t, "10.5.0.1", 1, 0), Drop.Shed);
    assert.equal(core.undrain("t"), true);
    assert.equal(typeof core.openConnection(t, "10.5.0.1", 2, 0), "object");
    assert.equal(core.undrain("nope"), false);
    core.drain("u");
    core.drain("t");
    core.undrain();
    assert.deepEqual([u.draining, t.draining], [false, false], "every listener");
    core.removeListener("t");
    core.undrain();
    assert.equal(t.draining, true, "a removed listener is on its way out");
    core.drain();
    core.undrain();
    assert.equal(core.fromClient(u, "10.5.0.2", 1, D, 0), Drop.Shed, "the whole core still drains");
  });
});

describe("a TCP listener on a Redis-routed cluster", () => {
  const toml = (backends: string, protocol: string) => `
[redis]
url = "redis://127.0.0.1:6379"
[[listeners]]
name = "front"
protocol = "${protocol}"
address = "127.0.0.1:7400"
cluster = "routed"
[clusters.routed]
balancer = "redis"
backends = [${backends}]
`;

  test("without static backends is refused at validation, saying why", () => {
    const r = parseConfigToml(toml("", "tcp"));
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.errors[0].path, "listeners[0].cluster");
    assert.match(r.errors[0].message, /Redis routing resolves UDP flows only/);
  });

  test("with static backends, or on UDP, is accepted", () => {
    assert.equal(parseConfigToml(toml('{ address = "127.0.0.1:9000" }', "tcp")).ok, true);
    assert.equal(parseConfigToml(toml("", "udp")).ok, true);
  });
});
