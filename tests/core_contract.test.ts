/**
 * The core↔shell contract of core/README.md: what the core asks of a shell as outputs (the `open` event at
 * establishment, with the held datagram after a resolution), the typed failure inputs, the wake-up call,
 * and the core loop (shell/relay/core_loop.ts) that is the one consumer of those outputs.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type CoreEvent, RelayCore } from "../core/relay_core.ts";
import { type Flow, FlowState } from "../core/flow.ts";
import type { Listener } from "../core/listener.ts";
import type { ClusterConfig, ListenerConfig } from "../core/types.ts";
import { CoreLoop, type DriverEvent } from "../shell/relay/core_loop.ts";
import { DEFAULT_HEALTH } from "../core/health.ts";
import { addr, bytes, cluster, config, listener } from "./support/fixtures.ts";

const D = bytes(64);

function setup(c: Partial<ClusterConfig> = {}, l: Partial<ListenerConfig> = {}) {
  const core = new RelayCore(config([cluster(c)], [listener(l)]), { seed: 1 });
  return { core, l: core.listener("l") as Listener };
}

function events(core: RelayCore): CoreEvent[] {
  const out: CoreEvent[] = [];
  for (let e = core.poll(); e !== undefined; e = core.poll()) out.push(e);
  return out;
}

describe("the core's outputs", () => {
  test("a new flow queues `open` (no held datagram); its next datagrams queue nothing", () => {
    const { core, l } = setup();
    const f = core.fromClient(l, "1.1.1.1", 1, D, 0) as Flow;
    assert.equal(f.state, FlowState.Established);
    const [open, ...rest] = events(core);
    assert.deepEqual(rest, []);
    assert.ok(open?.kind === "open" && open.flow === f && open.held === null && !open.withHeader);
    assert.equal(core.fromClient(l, "1.1.1.1", 1, D, 1), f);
    assert.equal(core.hasEvents, false);
  });

  test("a resolved flow's `open` carries its held datagram and whether the PROXY header goes first", () => {
    const { core, l } = setup({ balancer: "external", backends: [], proxyProtocol: "first" });
    const f = core.fromClient(l, "1.1.1.1", 1, bytes(10, 0x62), 0) as Flow;
    assert.deepEqual(events(core).map((e) => e.kind), ["resolve"]);
    assert.equal(core.resolved(f, addr("10.1.1.1:53"), 1), f);
    const [open] = events(core);
    assert.ok(open?.kind === "open" && open.flow === f);
    assert.deepEqual(open.held, bytes(10, 0x62));
    assert.equal(open.withHeader, true);
    assert.ok(f.proxyHeader !== null);
  });

  test("the wake-up call comes once per empty → non-empty, never for the forwarding path", () => {
    const { core, l } = setup();
    let woken = 0;
    core.setWake(() => woken++);
    const f = core.fromClient(l, "1.1.1.1", 1, D, 0) as Flow;
    core.fromClient(l, "1.1.1.2", 1, D, 0);
    assert.equal(woken, 1, "two opens, one wake-up");
    events(core);
    for (let t = 1; t < 5; t++) {
      core.fromClient(l, "1.1.1.1", 1, D, t);
      core.fromBackend(f, 10, t);
    }
    assert.equal(woken, 1, "established traffic queues nothing");
    core.close(f, "disconnected");
    assert.equal(woken, 2);
    core.setWake(null);
    core.closeAll("drain");
    assert.equal(woken, 2);
  });
});

describe("the core's failure and accounting inputs", () => {
  test("sendFailed: to_client counts send_error only; to_backend also the backend; refused a health failure", () => {
    const { core, l } = setup({ health: { ...DEFAULT_HEALTH, maxFails: 1, failTimeout: 1000 } });
    const f = core.fromClient(l, "1.1.1.1", 1, D, 0) as Flow;
    const b = f.backend?.counters;
    core.sendFailed(f, "to_client", "refused", 1);
    assert.deepEqual([l.counters.drops.send_error, b?.sendErrors, b?.refusals], [1, 0, 0]);
    core.sendFailed(f, "to_backend", "error", 2);
    assert.deepEqual([l.counters.drops.send_error, b?.sendErrors, b?.refusals], [2, 1, 0]);
    assert.equal(f.backend?.state, "up");
    core.sendFailed(f, "to_backend", "refused", 3);
    assert.deepEqual([l.counters.drops.send_error, b?.sendErrors, b?.refusals], [3, 2, 1]);
    assert.equal(f.backend?.state, "down", "max_fails = 1: the refusal took it down");
  });

  test("upstreamFailed: a lost datagram towards the backend, and the flow aborted", () => {
    const { core, l } = setup();
    const f = core.fromClient(l, "1.1.1.1", 1, D, 0) as Flow;
    events(core);
    core.upstreamFailed(f, 1);
    assert.equal(f.state, FlowState.Closed);
    assert.equal(f.closeReason, "aborted");
    assert.equal(l.counters.drops.send_error, 1);
    assert.equal(f.backend?.counters.sendErrors, 1);
    assert.deepEqual(events(core).map((e) => e.kind), ["closed"]);
  });

  test("listenerSendFailed: refused counts clientUnreachable, error counts send_error", () => {
    const { l, core } = setup();
    core.listenerSendFailed(l, "refused");
    core.listenerSendFailed(l, "error");
    core.listenerSendFailed(l, "error");
    assert.equal(l.counters.clientUnreachable, 1);
    assert.equal(l.counters.drops.send_error, 2);
  });

  test("connectionBytes counts on the connection, its listener and its backend, each way", () => {
    const { core, l } = setup({}, { protocol: "tcp" });
    const conn = core.openConnection(l, "1.1.1.1", 1, 0);
    assert.ok(typeof conn === "object");
    core.connectionBytes(conn, "to_backend", 10);
    core.connectionBytes(conn, "to_client", 25);
    assert.deepEqual([conn.bytesUp, conn.bytesDown], [10, 25]);
    assert.deepEqual([l.counters.bytesUp, l.counters.bytesDown], [10, 25]);
    assert.deepEqual([conn.backend.counters.bytesTo, conn.backend.counters.bytesFrom], [10, 25]);
  });
});

/** A driver that records what the loop hands it. */
class Recorder {
  readonly seen: string[] = [];
  onEvent(e: DriverEvent): void {
    this.seen.push(e.kind === "listener_done" ? `listener_done ${e.listener.config.name}` : e.kind);
  }
}

describe("the core loop", () => {
  test("routes each event to the driver that bound its listener, and drains without being asked", async () => {
    const core = new RelayCore(
      config([cluster()], [listener({ name: "a" }), listener({ name: "b", address: addr("127.0.0.1:2") })]),
      { seed: 1 },
    );
    const loop = new CoreLoop(core, () => 0);
    const [a, b] = [new Recorder(), new Recorder()];
    const la = core.listener("a") as Listener;
    const lb = core.listener("b") as Listener;
    loop.route(la, a);
    loop.route(lb, b);
    const closed: Flow[] = [];
    loop.setFlowClosed((f) => closed.push(f));
    const fa = core.fromClient(la, "1.1.1.1", 1, D, 0) as Flow;
    core.fromClient(lb, "1.1.1.1", 1, D, 0);
    assert.deepEqual([a.seen, b.seen], [[], []], "nothing inside the input");
    await Promise.resolve();
    assert.deepEqual([a.seen, b.seen], [["open"], ["open"]], "drained at the next microtask");
    core.removeListener("a");
    core.close(fa, "disconnected"); // an admin action, and no pump after it
    await Promise.resolve();
    assert.deepEqual(a.seen, ["open", "closed", "listener_done a"]);
    assert.deepEqual(b.seen, ["open"]);
    assert.deepEqual(closed, [fa]);
    loop.stop();
  });

  test("resolves once for every driver: no resolver falls back, an answer pins the backend", async () => {
    const { core, l } = setup({ balancer: "external", backends: [] });
    const loop = new CoreLoop(core, () => 0);
    const d = new Recorder();
    loop.route(l, d);
    const asked: string[] = [];
    loop.setResolver((flow) => {
      asked.push(flow.clientIp);
      return Promise.resolve(addr("10.9.9.9:53"));
    });
    const f = core.fromClient(l, "1.1.1.1", 1, D, 0) as Flow;
    loop.drain();
    await new Promise((r) => setTimeout(r, 0));
    assert.deepEqual(asked, ["1.1.1.1"]);
    assert.equal(f.backend?.key, "10.9.9.9:53");
    assert.deepEqual(d.seen, ["open"]);
    loop.stop();
  });

  test("an open for a listener no driver bound aborts the flow", () => {
    const { core, l } = setup();
    const loop = new CoreLoop(core, () => 0);
    const f = core.fromClient(l, "1.1.1.1", 1, D, 0) as Flow;
    loop.drain();
    assert.equal(f.closeReason, "aborted");
    loop.stop();
  });

  test("owns the one timer: a flow's deadline closes it with no other call", async () => {
    const { core, l } = setup({ frontTimeout: 20, backTimeout: 20 });
    const loop = new CoreLoop(core, () => performance.now());
    loop.route(l, new Recorder());
    const f = core.fromClient(l, "1.1.1.1", 1, D, performance.now()) as Flow;
    for (let i = 0; i < 100 && f.state !== FlowState.Closed; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(f.closeReason, "idle");
    loop.stop();
  });
});
