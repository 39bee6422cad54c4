/**
 * Property tests (fast-check) of the sans-io UDP core: random operation sequences against one `RelayCore`
 * with the global invariants checked after every operation (shrunk to a minimal sequence on failure), and
 * focused properties of the deadline heap, the quality figures, the hash balancers and the PROXY header.
 *
 * Set FERRY_PROP_RUNS to scale every property's number of runs (default 1 = the modest defaults below), and
 * FERRY_PROP_SEED to replay the seed a failure report names.
 *
 * @module
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseIp, type SocketAddress, unmapIpv4 } from "../core/address.ts";
import type { Backend } from "../core/backend.ts";
import { createBalancer } from "../core/balancers/index.ts";
import { DeadlineHeap } from "../core/deadlines.ts";
import { CLOSE_REASONS, type CloseReason, type Flow, FlowState } from "../core/flow.ts";
import { Drop, type Listener } from "../core/listener.ts";
import { decodeProxyV2 } from "../core/proxy_v2.ts";
import { LOSS_WINDOW, Quality } from "../core/quality.ts";
import { RelayCore } from "../core/relay_core.ts";
import { Rng } from "../core/rng.ts";
import type { BackendState, BalancerKind, ClusterConfig, ProxyProtocolMode } from "../core/types.ts";
import { addr, backend, bytes, cluster, config, listener } from "./support/fixtures.ts";

function env(name: string): string | undefined {
  try {
    const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
    if (proc?.env !== undefined) return proc.env[name];
    const deno = (globalThis as { Deno?: { env: { get(key: string): string | undefined } } }).Deno;
    return deno?.env.get(name);
  } catch {
    return undefined;
  }
}

const SCALE = Math.max(1, Number(env("FERRY_PROP_RUNS") ?? "1") || 1);
/** Replays a failure: fast-check prints `seed` (and `path`) in its report. */
const SEED = env("FERRY_PROP_SEED");

/** fast-check parameters: `runs` times the scale, and the replay seed if one is given. */
function params(runs: number): fc.Parameters<unknown> {
  const p: fc.Parameters<unknown> = { numRuns: Math.round(runs * SCALE) };
  return SEED === undefined || SEED === "" ? p : { ...p, seed: Number(SEED) };
}

// ---- random operation sequences against the core ----------------------------------------------------------

const CLIENTS: readonly (readonly [string, number])[] = [
  ["192.0.2.1", 40000],
  ["192.0.2.1", 40001],
  ["192.0.2.2", 40000],
  ["192.0.2.2", 40001],
  ["198.51.100.9", 40000],
  ["2001:db8::1", 40000],
  ["::ffff:192.0.2.1", 40000],
  ["0.0.0.0", 5353],
  ["192.0.2.3", 0],
  ["224.0.0.1", 5353],
  ["255.255.255.255", 5353],
];
const BACKEND_POOL = ["10.0.0.1:9000", "10.0.0.2:9000", "10.0.0.3:9000", "[fd00::1]:9000"];
const RESOLVED: readonly (SocketAddress | null)[] = [
  null,
  addr("10.9.0.1:53"),
  addr("10.0.0.1:9000"),
  { ip: "224.0.0.1", port: 53, family: 4 },
  { ip: "10.9.0.2", port: 0, family: 4 },
];
const CLUSTERS = ["a", "x"];
const LISTENERS = ["l1", "l2"];
const BALANCERS: readonly BalancerKind[] = [
  "round_robin",
  "random",
  "least_flows",
  "power_of_two",
  "rendezvous",
  "maglev",
  "external",
];

const knobsArb = fc.record({
  balancer: fc.constantFrom(...BALANCERS),
  affinity: fc.constantFrom("ip" as const, "ip_port" as const),
  requests: fc.integer({ min: 0, max: 3 }),
  responses: fc.integer({ min: 0, max: 3 }),
  frontTimeout: fc.constantFrom(0, 10, 100, 1000, 30_000),
  backTimeout: fc.constantFrom(0, 10, 100, 1000, 30_000),
  proxyProtocol: fc.constantFrom<ProxyProtocolMode>("off", "first", "every"),
  failOpen: fc.boolean(),
  hashSeed: fc.integer({ min: 0, max: 3 }),
  backends: fc.uniqueArray(
    fc.record({
      at: fc.integer({ min: 0, max: BACKEND_POOL.length - 1 }),
      weight: fc.integer({ min: 1, max: 5 }),
      state: fc.constantFrom<BackendState>("up", "up", "down", "draining"),
    }),
    { maxLength: 4, selector: (b) => b.at },
  ),
});
type Knobs = typeof knobsArb extends fc.Arbitrary<infer T> ? T : never;

function clusterFrom(name: string, k: Knobs): ClusterConfig {
  return cluster({
    name,
    balancer: k.balancer,
    affinity: k.affinity,
    requests: k.requests,
    responses: k.responses,
    frontTimeout: k.frontTimeout === 0 && k.backTimeout === 0 ? 100 : k.frontTimeout,
    backTimeout: k.backTimeout,
    proxyProtocol: k.proxyProtocol,
    failOpen: k.failOpen,
    hashSeed: k.hashSeed,
    maglevTableSize: 13,
    backends: k.backends.map((b) => backend(BACKEND_POOL[b.at], b.weight, b.state)),
  });
}

const flowRef = fc.nat({ max: 40 });
const opArb = fc.oneof(
  {
    weight: 24,
    arbitrary: fc.record({
      k: fc.constant("client" as const),
      l: fc.nat({ max: 1 }),
      c: fc.nat({ max: CLIENTS.length - 1 }),
      size: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 0, max: 2000 })),
    }),
  },
  {
    weight: 15,
    arbitrary: fc.record({ k: fc.constant("reply" as const), f: flowRef, size: fc.nat({ max: 1500 }) }),
  },
  {
    weight: 9,
    arbitrary: fc.record({
      k: fc.constant("tick" as const),
      dt: fc.oneof(fc.nat({ max: 50 }), fc.nat({ max: 60_000 })),
    }),
  },
  {
    weight: 9,
    arbitrary: fc.record({
      k: fc.constant("timeout" as const),
      mode: fc.constantFrom("exact", "early", "late", "now"),
    }),
  },
  {
    weight: 9,
    arbitrary: fc.record({
      k: fc.constant("resolve" as const),
      f: flowRef,
      a: fc.nat({ max: RESOLVED.length - 1 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("abort" as const), f: flowRef }) },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant("sendFailed" as const),
      f: flowRef,
      toBackend: fc.boolean(),
      refused: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant("disconnect" as const),
      c: fc.nat({ max: 6 }),
      anyPort: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant("closeAll" as const), reason: fc.constantFrom(...CLOSE_REASONS) }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      k: fc.constant("setCluster" as const),
      name: fc.nat({ max: 1 }),
      knobs: knobsArb,
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("removeCluster" as const), name: fc.nat({ max: 1 }) }) },
  {
    weight: 5,
    arbitrary: fc.record({
      k: fc.constant("state" as const),
      name: fc.nat({ max: 1 }),
      b: fc.nat({ max: BACKEND_POOL.length - 1 }),
      state: fc.constantFrom<BackendState>("up", "down", "draining"),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant("setListener" as const),
      name: fc.nat({ max: 1 }),
      cluster: fc.nat({ max: 2 }),
      maxFlows: fc.constantFrom(0, 1, 2, 4),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant("removeListener" as const), name: fc.nat({ max: 1 }) }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("drain" as const), name: fc.nat({ max: 2 }) }) },
);
type Op = typeof opArb extends fc.Arbitrary<infer T> ? T : never;

/** The core under test plus what the harness remembers about it. */
class World {
  readonly core: RelayCore;
  now = 0;
  lastTimeout = -Infinity;
  /** Every flow ever admitted, in order (op records address flows by index here). */
  readonly flows: Flow[] = [];
  readonly closed = new Set<Flow>();
  readonly listeners = new Set<Listener>();
  readonly backends = new Set<Backend>();
  readonly done = new Set<Listener>();

  constructor(seed: number) {
    this.core = new RelayCore(
      config(
        [cluster({ name: "a", affinity: "ip" }), cluster({ name: "x", balancer: "external", backends: [] })],
        [listener({ name: "l1", cluster: "a" }), listener({ name: "l2", cluster: "x", maxFlows: 3 })],
      ),
      { seed, autoMaxFlows: 6 },
    );
    this.track();
  }

  track(): void {
    for (const l of this.core.listeners()) this.listeners.add(l);
    for (const c of this.core.clusters()) {
      for (const b of c.backends) this.backends.add(b);
      for (const b of c.external.values()) this.backends.add(b);
    }
    for (const f of this.core.flows()) {
      this.listeners.add(f.listener);
      if (f.backend !== null) this.backends.add(f.backend);
    }
  }

  flow(i: number): Flow | undefined {
    return this.flows.length === 0 ? undefined : this.flows[i % this.flows.length];
  }

  apply(op: Op): void {
    const core = this.core;
    switch (op.k) {
      case "client": {
        const l = core.listener(LISTENERS[op.l]);
        if (l === undefined) return;
        const [ip, port] = CLIENTS[op.c];
        const before = l.counters.flowsCreated;
        const r = core.fromClient(l, ip, port, bytes(op.size), this.now);
        if (l.counters.flowsCreated !== before) {
          assert.ok(typeof r === "object", "a flow was counted but a drop returned");
          this.flows.push(r);
        }
        if (op.size > l.config.maxDatagramSize) {
          assert.ok(r === Drop.Truncated, "oversize datagram not truncated");
        }
        return;
      }
      case "reply": {
        const f = this.flow(op.f);
        if (f === undefined) return;
        const live = f.state === FlowState.Established || f.state === FlowState.Closing;
        assert.equal(
          core.fromBackend(f, op.size, this.now),
          live,
          "fromBackend: forward iff the flow can reply",
        );
        return;
      }
      case "tick":
        this.now += op.dt;
        return;
      case "timeout": {
        const next = core.nextDeadline();
        if (next !== Infinity) {
          const at = op.mode === "exact"
            ? next
            : op.mode === "early"
            ? next - 1
            : op.mode === "late"
            ? next + 77
            : 0;
          this.now = Math.max(this.now, at);
        }
        core.onTimeout(this.now);
        this.lastTimeout = this.now;
        return;
      }
      case "resolve": {
        const f = this.flow(op.f);
        if (f === undefined) return;
        const waiting = f.state === FlowState.AwaitingBackend;
        const out = core.resolved(f, RESOLVED[op.a], this.now);
        if (!waiting) assert.ok(out === null, "resolved() accepted a flow not awaiting a backend");
        else if (out === null) assert.equal(f.state, FlowState.Closed, "an unroutable flow must be aborted");
        else {
          assert.ok(out === f && f.backend !== null, "resolved() returned a flow without a backend");
          assert.equal(f.pending, null, "the held datagram moved to the open event");
        }
        return;
      }
      case "abort": {
        const f = this.flow(op.f);
        if (f === undefined) return;
        const wasLive = f.state !== FlowState.Closed;
        assert.equal(core.close(f, "aborted"), wasLive);
        assert.equal(core.close(f, "aborted"), false, "close is idempotent");
        return;
      }
      case "sendFailed": {
        const f = this.flow(op.f);
        if (f !== undefined) {
          core.sendFailed(
            f,
            op.toBackend ? "to_backend" : "to_client",
            op.refused ? "refused" : "error",
            this.now,
          );
        }
        return;
      }
      case "disconnect": {
        const [ip, port] = CLIENTS[op.c];
        const alt = ip.startsWith("::ffff:") ? ip.slice(7) : `::ffff:${ip}`;
        const want =
          [...core.flows()].filter((f) =>
            (f.clientIp === ip || f.clientIp === alt) && (op.anyPort || f.clientPort === port)
          ).length;
        assert.equal(core.disconnect(ip, op.anyPort ? undefined : port), want, "disconnect count");
        return;
      }
      case "closeAll": {
        const want = core.flowCount;
        assert.equal(core.closeAll(op.reason as CloseReason), want);
        assert.equal(core.flowCount, 0);
        return;
      }
      case "setCluster":
        core.setCluster(clusterFrom(CLUSTERS[op.name], op.knobs));
        return;
      case "removeCluster":
        core.removeCluster(CLUSTERS[op.name]);
        return;
      case "state":
        core.setBackendState(CLUSTERS[op.name], BACKEND_POOL[op.b], op.state);
        return;
      case "setListener":
        core.setListener(
          listener({
            name: LISTENERS[op.name],
            cluster: [...CLUSTERS, "missing"][op.cluster],
            maxFlows: op.maxFlows,
          }),
        );
        return;
      case "removeListener":
        core.removeListener(LISTENERS[op.name]);
        return;
      case "drain":
        core.drain(op.name < LISTENERS.length ? LISTENERS[op.name] : undefined);
        return;
    }
  }

  /** Polls events and checks every invariant. */
  check(): void {
    const core = this.core;
    for (let e = core.poll(); e !== undefined; e = core.poll()) {
      if (e.kind === "closed") {
        assert.equal(e.flow.state, FlowState.Closed, "closed event for a flow that is not Closed");
        assert.ok(!this.closed.has(e.flow), "two closed events for one flow");
        this.closed.add(e.flow);
      } else if (e.kind === "listener_done") {
        assert.ok(e.listener.removed && e.listener.flows === 0, "listener_done too early");
        assert.ok(!this.done.has(e.listener), "two listener_done events");
        this.done.add(e.listener);
      } else if (e.kind === "fail_open") {
        assert.ok(
          this.core.cluster(e.cluster)?.failingOpen ?? true,
          "fail_open event for a cluster not failing open",
        );
      } else if (e.kind === "health") {
        assert.notEqual(e.change.from, e.change.to, "a health event that changes nothing");
      } else if (e.kind === "fd_limit") {
        assert.fail("fd_limit event without a descriptor budget");
      } else if (e.kind === "open") {
        assert.ok(e.flow.backend !== null, "open event for a flow without a backend");
        assert.ok(!this.closed.has(e.flow), "open event after the flow's closed event");
      } else assert.equal(e.flow.state, FlowState.AwaitingBackend, "resolve event for a flow not awaiting");
    }
    this.track();
    const live = [...core.flows()];
    assert.equal(live.length, core.flowCount);
    const perBackend = new Map<Backend, number>();
    for (const f of live) {
      assert.notEqual(f.state, FlowState.Closed, "a Closed flow in core.flows()");
      assert.ok(!this.closed.has(f), "a closed flow reappeared in core.flows()");
      if (f.knobs.requests > 0) assert.ok(f.requests <= f.knobs.requests, "past its requests cap");
      if (f.knobs.responses > 0 && f.state !== FlowState.AwaitingBackend) {
        // Live only while some forwarded datagram still waits for one of its `responses` replies.
        assert.ok(f.responses < f.requests * f.knobs.responses, "live with every request answered");
        assert.equal(f.outstanding, f.requests * f.knobs.responses - f.responses, "outstanding count");
      }
      assert.equal(
        f.listener.lookup(f.clientIp, f.clientPort) === f,
        f.state !== FlowState.Closing,
        "table iff not Closing",
      );
      if (f.backend !== null) perBackend.set(f.backend, (perBackend.get(f.backend) ?? 0) + 1);
      if (this.lastTimeout === this.now) assert.ok(f.deadline() > this.now, "a due flow survived onTimeout");
      assert.ok(core.nextDeadline() <= f.deadline(), "nextDeadline() later than a flow's deadline");
    }
    if (this.lastTimeout === this.now) {
      assert.ok(core.nextDeadline() > this.now, "nextDeadline() <= now after onTimeout");
    }
    let created = 0;
    let closed = 0;
    let flows = 0;
    for (const l of this.listeners) {
      created += l.counters.flowsCreated;
      for (const r of CLOSE_REASONS) closed += l.counters.flowsClosed[r];
      flows += l.flows;
      assert.equal(l.flows, live.filter((f) => f.listener === l).length, "listener.flows");
      assertNonNegative(l.counters);
    }
    assert.equal(created - closed, core.flowCount, "created - closed != live");
    assert.equal(flows, core.flowCount, "sum of listener.flows != live");
    for (const b of this.backends) {
      assert.equal(b.flows, perBackend.get(b) ?? 0, `backend ${b.key}: flows`);
      assertNonNegative(b.counters);
    }
    for (const c of core.clusters()) assertNonNegative(c.counters);
  }
}

function assertNonNegative(obj: object): void {
  for (const v of Object.values(obj)) {
    if (typeof v === "number") assert.ok(v >= 0 && Number.isSafeInteger(v), `counter ${v}`);
    else if (v !== null && typeof v === "object") assertNonNegative(v);
  }
}

describe("core: responses per request", () => {
  test("any interleaving of queries and replies: every reply is forwarded until each query had its replies", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 60 }),
        (per, script) => {
          const core = new RelayCore(
            config([cluster({ responses: per, frontTimeout: 0, backTimeout: 0 })], [listener()]),
            { seed: 1 },
          );
          const l = core.listener("l") as Listener;
          const f = core.fromClient(l, "10.0.0.1", 53, bytes(30), 0) as Flow;
          let sent = 1;
          let replies = 0;
          let t = 1;
          // true = the client sends one more query on its port, false = the backend sends one reply.
          for (const query of script) {
            if (f.state === FlowState.Closed) break;
            if (query) {
              assert.equal(core.fromClient(l, "10.0.0.1", 53, bytes(30), t++), f, "a query joins its flow");
              sent++;
            } else {
              assert.equal(core.fromBackend(f, 40, t++), true, "a reply owed to a live flow is forwarded");
              replies++;
            }
            const owed = sent * per - replies;
            assert.equal(
              f.state as number === FlowState.Closed,
              owed === 0,
              `closed iff nothing owed (${owed})`,
            );
          }
          assert.equal(l.counters.datagramsOut, replies);
          assert.equal(l.counters.flowsClosed.responses, f.state === FlowState.Closed ? 1 : 0);
          assert.equal(l.counters.drops.late, 0);
        },
      ),
      params(300),
    );
  });
});

describe("core: random operation sequences", () => {
  test("every invariant holds after every operation", () => {
    let admitted = 0;
    let closed = 0;
    fc.assert(
      fc.property(
        fc.integer(),
        fc.array(opArb, { minLength: 20, maxLength: 100, size: "max" }),
        (seed, ops) => {
          const w = new World(seed);
          for (const op of ops) {
            w.apply(op);
            w.check();
          }
          admitted += w.flows.length;
          closed += w.closed.size;
        },
      ),
      params(300),
    );
    // Not vacuous: the sequences did admit and close flows.
    assert.ok(admitted > 1000 && closed > 600, `admitted ${admitted}, closed ${closed}`);
  });

  test("the same seed and operations give the same flows and backends", () => {
    fc.assert(
      fc.property(fc.integer(), fc.array(opArb, { maxLength: 40 }), (seed, ops) => {
        const trace = () => {
          const w = new World(seed);
          for (const op of ops) w.apply(op);
          return w.flows.map((f) => `${f.id} ${f.state} ${f.backend?.key ?? "-"} ${f.closeReason ?? "-"}`);
        };
        assert.deepEqual(trace(), trace());
      }),
      params(60),
    );
  });
});

// ---- the deadline heap ----------------------------------------------------------------------------------

interface Item {
  timerGen: number;
  readonly id: number;
}

const heapOp = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      k: fc.constant("push" as const),
      item: fc.nat({ max: 7 }),
      at: fc.nat({ max: 100 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("bump" as const), item: fc.nat({ max: 7 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("pop" as const), now: fc.nat({ max: 110 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("peek" as const) }) },
);

describe("DeadlineHeap", () => {
  test("pops live entries earliest first, skips stale generations, peeks the earliest live deadline", () => {
    fc.assert(
      fc.property(fc.array(heapOp, { maxLength: 120 }), (ops) => {
        const heap = new DeadlineHeap<Item>();
        const items: Item[] = Array.from({ length: 8 }, (_, id) => ({ id, timerGen: 0 }));
        // The model: every entry ever pushed and not popped, with the generation it was pushed under.
        let model: { at: number; item: Item; gen: number }[] = [];
        const liveEntries = () => model.filter((e) => e.item.timerGen === e.gen);
        for (const op of ops) {
          if (op.k === "push") {
            const item = items[op.item];
            heap.push(op.at, item);
            model.push({ at: op.at, item, gen: item.timerGen });
          } else if (op.k === "bump") items[op.item].timerGen++;
          else if (op.k === "peek") {
            const min = Math.min(...liveEntries().map((e) => e.at));
            assert.equal(heap.peek(), min);
          } else {
            const due = liveEntries().filter((e) => e.at <= op.now);
            const got = heap.popDue(op.now);
            if (due.length === 0) {
              assert.ok(got === undefined, `popDue(${op.now}) returned a stale or future entry`);
              model = model.filter((e) => e.at > op.now || e.item.timerGen === e.gen);
              continue;
            }
            assert.ok(got !== undefined, `popDue(${op.now}) missed a due entry`);
            const min = Math.min(...due.map((e) => e.at));
            const hit = model.findIndex((e) => e.item === got && e.gen === got.timerGen && e.at === min);
            assert.ok(hit >= 0, `popDue returned item ${got.id}, not one due earliest at ${min}`);
            model.splice(hit, 1);
            // Stale entries earlier than the popped one are gone from the heap too.
            model = model.filter((e) => e.at >= min || e.item.timerGen === e.gen);
          }
          assert.ok(heap.size >= liveEntries().length, "the heap lost live entries");
        }
        // Draining everything yields the live entries in non-decreasing order, and nothing before its time.
        const drained: number[] = [];
        for (let it = heap.popDue(Infinity); it !== undefined; it = heap.popDue(Infinity)) {
          const mine = model.filter((e) => e.item === it && e.gen === it.timerGen);
          assert.ok(mine.length > 0, `drained item ${it.id} under a stale generation`);
          const at = Math.min(...mine.map((e) => e.at));
          assert.equal(
            at,
            Math.min(...liveEntries().map((e) => e.at)),
            `item ${it.id} drained before an earlier one`,
          );
          drained.push(at);
          model.splice(model.findIndex((e) => e.item === it && e.gen === it.timerGen && e.at === at), 1);
        }
        for (let i = 1; i < drained.length; i++) {
          assert.ok(drained[i - 1] <= drained[i], `out of order: ${drained}`);
        }
        assert.equal(liveEntries().length, 0, "live entries never came out");
        assert.equal(heap.peek(), Infinity);
      }),
      params(500),
    );
  });
});

// ---- quality figures ----------------------------------------------------------------------------------

const qualityOp = fc.record({
  k: fc.constantFrom("client", "backend", "drop", "read"),
  dt: fc.oneof(fc.nat({ max: 20 }), fc.nat({ max: 5_000 })),
  size: fc.nat({ max: 65_507 }),
  times: fc.oneof({ weight: 5, arbitrary: fc.constant(1) }, {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: LOSS_WINDOW + 100 }),
  }),
});

describe("Quality", () => {
  test("loss in [0, 1000], bandwidth never negative, priority finite, whatever the traffic", () => {
    fc.assert(
      fc.property(fc.nat({ max: 1e9 }), fc.array(qualityOp, { maxLength: 60 }), (start, ops) => {
        const q = new Quality(start);
        let now = start;
        for (const op of ops) {
          now += op.dt;
          for (let i = 0; i < op.times; i++) {
            if (op.k === "client") q.onClient(op.size, now);
            else if (op.k === "backend") q.onBackend(op.size, now);
            else if (op.k === "drop") q.onDrop();
          }
          const loss = q.lossPermille;
          assert.ok(Number.isInteger(loss) && loss >= 0 && loss <= 1000, `lossPermille ${loss}`);
          assert.ok(q.dropped <= q.handled, `dropped ${q.dropped} > handled ${q.handled}`);
          assert.ok(q.handled <= LOSS_WINDOW, `handled ${q.handled} past the window`);
          const bw = q.bandwidth(now);
          assert.ok(Number.isFinite(bw) && bw >= 0, `bandwidth ${bw}`);
          const p = q.priority(now);
          assert.ok(Number.isFinite(p) && p >= 0, `priority ${p}`);
          if (q.srtt === q.srtt) assert.ok(q.srtt >= 0 && q.rttvar >= 0, `srtt ${q.srtt} rttvar ${q.rttvar}`);
        }
      }),
      params(300),
    );
  });

  test("only drops: loss is 1000; no drops: loss is 0", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 * LOSS_WINDOW }), fc.boolean(), (n, drops) => {
        const q = new Quality(0);
        for (let i = 0; i < n; i++) drops ? q.onDrop() : q.onClient(10, i);
        assert.equal(q.lossPermille, drops ? 1000 : 0);
      }),
      params(30),
    );
  });
});

// ---- hash balancers --------------------------------------------------------------------------------------

const candidatesArb = fc.uniqueArray(
  fc.record({
    key: fc.tuple(fc.nat({ max: 255 }), fc.integer({ min: 1, max: 65535 })).map(([h, p]) =>
      `10.1.0.${h}:${p}`
    ),
    weight: fc.integer({ min: 1, max: 1000 }),
    flows: fc.nat({ max: 100 }),
  }),
  { minLength: 1, maxLength: 12, selector: (c) => c.key },
);

describe("hash balancers", () => {
  for (const kind of ["rendezvous", "maglev"] as const) {
    test(`${kind}: instances with equal seeds pick alike, in any candidate order`, () => {
      fc.assert(
        fc.property(
          fc.integer(),
          candidatesArb,
          fc.array(fc.nat(), { minLength: 1, maxLength: 30 }),
          fc.nat(),
          (seed, candidates, keys, shuffleSeed) => {
            const opts = { hashSeed: seed, maglevTableSize: 251 };
            const a = createBalancer(kind, opts);
            const b = createBalancer(kind, opts);
            const shuffled = shuffle(candidates, new Rng(shuffleSeed));
            const rngA = new Rng(1);
            const rngB = new Rng(2); // hash balancers ignore the rng
            for (const key of keys) {
              const pa = a.pick(candidates, 1, key, rngA);
              const pb = b.pick(shuffled, 1, key, rngB);
              assert.ok(pa >= 0 && pa < candidates.length, `index ${pa}`);
              assert.equal(shuffled[pb].key, candidates[pa].key, `key ${key}`);
              assert.equal(a.pick(candidates, 1, key, rngA), pa, "a repeated pick changed");
            }
          },
        ),
        params(100),
      );
    });
  }

  test("two cores with equal config and seed pin equal clients to equal backends", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<BalancerKind>(
          "round_robin",
          "random",
          "least_flows",
          "power_of_two",
          "rendezvous",
          "maglev",
        ),
        fc.integer(),
        fc.array(fc.tuple(fc.nat({ max: 50 }), fc.integer({ min: 1, max: 65535 })), {
          minLength: 1,
          maxLength: 40,
        }),
        (balancer, seed, clients) => {
          const cfg = config([cluster({ balancer, hashSeed: seed, maglevTableSize: 251 }, 5)]);
          const run = () => {
            const core = new RelayCore(cfg, { seed });
            const l = core.listener("l")!;
            return clients.map(([h, port], i) => {
              const r = core.fromClient(l, `198.51.100.${h}`, port, bytes(8), i);
              return typeof r === "number" ? `drop ${r}` : (r.backend as Backend).key;
            });
          };
          assert.deepEqual(run(), run());
        },
      ),
      params(100),
    );
  });
});

function shuffle<T>(items: readonly T[], rng: Rng): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

// ---- PROXY header ------------------------------------------------------------------------------------------

/** The 16 address bytes of an IP, IPv4-mapped addresses unmapped, for comparing across text forms. */
function ipKey(ip: string): string {
  const parsed = parseIp(ip);
  assert.ok(parsed !== null, `unparsable ${ip}`);
  const u = unmapIpv4(parsed);
  return `${u.family}:${[...u.bytes].join(".")}`;
}

describe("PROXY header", () => {
  test("present iff mode != off; headerDue on the first datagram (first) or every one (every)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<ProxyProtocolMode>("off", "first", "every"),
        fc.boolean(),
        fc.constantFrom("192.0.2.7", "2001:db8::7", "::ffff:192.0.2.7"),
        fc.constantFrom("127.0.0.1:7000", "[::1]:7000", "[::ffff:127.0.0.1]:7000"),
        fc.integer({ min: 1, max: 65535 }),
        fc.integer({ min: 0, max: 4 }),
        fc.integer({ min: 1, max: 8 }),
        (mode, external, ip, local, port, requests, datagrams) => {
          const cl = cluster({
            proxyProtocol: mode,
            requests,
            balancer: external ? "external" : "round_robin",
          });
          const core = new RelayCore(config([cl], [listener({ address: addr(local) })]), { seed: 1 });
          const l = core.listener("l")!;
          let flow: Flow | null = null;
          let n = 0; // datagrams accepted on the current flow
          for (let i = 0; i < datagrams; i++) {
            const r = core.fromClient(l, ip, port, bytes(20), i);
            assert.ok(typeof r === "object", `datagram ${i} dropped (${r})`);
            if (r !== flow) {
              flow = r;
              n = 0;
            }
            if (r.state === FlowState.AwaitingBackend) {
              assert.ok(r.proxyHeader === null, "a header before the backend is known");
              assert.ok(core.resolved(r, addr("10.9.0.1:53"), i) === r, "resolution refused");
              let held: Uint8Array | null = null;
              for (let e = core.poll(); e !== undefined; e = core.poll()) {
                if (e.kind === "open" && e.flow === r) held = e.held;
              }
              assert.ok(held !== null, "the open event carries the held datagram");
            }
            n++;
            assert.equal(r.proxyHeader !== null, mode !== "off", `header presence with mode ${mode}`);
            assert.equal(
              r.headerDue,
              mode === "every" || (mode === "first" && n === 1),
              `headerDue, datagram ${n}`,
            );
            if (r.proxyHeader !== null) {
              const h = decodeProxyV2(r.proxyHeader);
              assert.ok(typeof h !== "string", `undecodable header: ${h}`);
              assert.equal(h.headerLength, r.proxyHeader.byteLength);
              if (!("unspec" in h)) {
                assert.equal(h.transport, "dgram");
                assert.equal(h.client.port, port);
                assert.equal(ipKey(h.client.ip), ipKey(ip));
                assert.equal(h.local.port, 7000);
                assert.equal(ipKey(h.local.ip), ipKey(addr(local).ip));
              }
            }
            // A requests cap detaches the flow: the next datagram opens a new one with its own header.
            if (requests > 0 && n >= requests) assert.equal(r.state, FlowState.Closing);
          }
        },
      ),
      params(300),
    );
  });
});
