/**
 * Deterministic simulation of the sans-io UDP core: a seeded RNG drives random interleavings of client
 * datagrams, backend replies, clock jumps, timer firings, reconfigurations, drains, aborts, disconnects,
 * external resolution and send failures against one `RelayCore` on a virtual clock. Each operation is
 * checked against a small model of what it must do (drop code, counter deltas, state changes), and the
 * global invariants (flow accounting, caps, deadlines, tables, backend pins, events) are checked after
 * every step.
 *
 * Knobs (environment variables, read under Deno and Bun alike):
 * - FERRY_SIM_SEEDS: how many seeds to run (default 300), starting at FERRY_SIM_BASE (default 1).
 * - FERRY_SIM_STEPS: steps per seed (default 400).
 * - FERRY_SIM_SEED: replay only this seed (a failure message names it).
 * - FERRY_SIM_TRACE=1: print every operation of the run (use with FERRY_SIM_SEED).
 * - FERRY_SIM_STATS=1: print how often each path was reached over the run.
 *
 * @module
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { SocketAddress } from "../core/address.ts";
import type { Backend } from "../core/backend.ts";
import { CLOSE_REASONS, type CloseReason, type Flow, FlowState } from "../core/flow.ts";
import { Drop, type Listener } from "../core/listener.ts";
import { LOSS_WINDOW } from "../core/quality.ts";
import { RelayCore } from "../core/relay_core.ts";
import { Rng } from "../core/rng.ts";
import {
  type BackendConfig,
  type BackendState,
  BALANCER_NAMES,
  type BalancerKind,
  type ClusterConfig,
  type FerryConfig,
  type ListenerConfig,
  type SourcePolicy,
} from "../core/types.ts";
import { addr, backend, cluster, config, listener } from "./support/fixtures.ts";

// ---- run parameters ----------------------------------------------------------------------------------------

function env(name: string): string | undefined {
  try {
    const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
    if (proc?.env !== undefined) return proc.env[name];
    const deno = (globalThis as { Deno?: { env: { get(key: string): string | undefined } } }).Deno;
    return deno?.env.get(name);
  } catch {
    return undefined; // no permission to read the environment: defaults
  }
}

function intEnv(name: string, fallback: number): number {
  const text = env(name);
  if (text === undefined || text === "") return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`${name}=${text} is not an integer`);
  return n;
}

const SEEDS = intEnv("FERRY_SIM_SEEDS", 300);
const BASE = intEnv("FERRY_SIM_BASE", 1);
const STEPS = intEnv("FERRY_SIM_STEPS", 400);
const ONLY = env("FERRY_SIM_SEED");
const TRACE = env("FERRY_SIM_TRACE") === "1";
/** Fail on known, reported core bugs too (see the focused tests at the end). */
const AUTO_MAX_FLOWS = 12;

// ---- the world the simulation draws from --------------------------------------------------------------------

type Source = readonly [ip: string, port: number];

const GOOD_IPS = [
  "192.0.2.1",
  "192.0.2.2",
  "192.0.2.3",
  "198.51.100.7",
  "2001:db8::1",
  "2001:db8::2",
  "::ffff:192.0.2.1",
  "127.0.0.2",
];
const PORTS = [40000, 40001, 40002];
/** Sources the default policy refuses: port 0, unspecified, multicast, broadcast. */
const BAD_SOURCES: readonly Source[] = [
  ["0.0.0.0", 5353],
  ["192.0.2.1", 0],
  ["224.0.0.1", 5353],
  ["255.255.255.255", 5353],
  ["::", 5353],
  ["ff02::1", 5353],
];
const BAD_IPS = new Set(BAD_SOURCES.map(([ip]) => ip).filter((ip) => ip !== "192.0.2.1"));
const LOOPBACK_IPS = new Set(["127.0.0.2"]);

const BACKEND_POOL = [
  "10.0.0.1:9000",
  "10.0.0.2:9000",
  "10.0.0.3:9000",
  "10.0.0.4:9000",
  "10.0.0.5:9000",
  "[fd00::1]:9000",
];
const BACKEND_ADDRESSES = BACKEND_POOL.map(addr);
/** Addresses an external resolver may hand back: fresh ones, and one that is also a configured backend. */
const RESOLVED_GOOD: readonly SocketAddress[] = [
  addr("10.9.0.1:53"),
  addr("10.9.0.2:53"),
  addr("[fd00::9]:53"),
  addr("10.0.0.1:9000"),
];
/** Addresses no backend may have. */
const RESOLVED_BAD: readonly SocketAddress[] = [
  { ip: "0.0.0.0", port: 53, family: 4 },
  { ip: "224.0.0.1", port: 53, family: 4 },
  { ip: "255.255.255.255", port: 53, family: 4 },
  { ip: "10.9.0.1", port: 0, family: 4 },
  { ip: "not-an-ip", port: 53, family: 4 },
];

const CLUSTER_NAMES = ["a", "b", "x"];
const LISTENER_NAMES = ["l1", "l2", "l3"];
const BALANCERS: readonly BalancerKind[] = [...BALANCER_NAMES, "external"];
const TIMEOUTS = [0, 20, 100, 1_000, 5_000, 30_000, 30_000];
const MAGLEV_SIZES = [7, 13, 101, 1009, 1009];
const MAX_FLOWS = [0, 1, 2, 3, 5, 8, 20];
const DATAGRAM_LIMITS = [64, 512, 1500, 1500, 2000];
const LISTEN_ADDRESSES = [addr("127.0.0.1:7000"), addr("[::1]:7000"), addr("0.0.0.0:7001")];
const STATES: readonly BackendState[] = ["up", "up", "up", "down", "draining"];

const DEFAULT_POLICY: SourcePolicy = {
  reject: ["port0", "unspecified", "multicast", "broadcast"],
  deny: [],
  allow: [],
};
const NO_LOOPBACK_POLICY: SourcePolicy = {
  ...DEFAULT_POLICY,
  reject: [...DEFAULT_POLICY.reject, "loopback"],
};

// ---- helpers ----------------------------------------------------------------------------------------------

/** The numeric leaves of a counters object, in key order. */
function leaves(obj: object, out: number[] = []): number[] {
  for (const k in obj) {
    const v = (obj as Record<string, unknown>)[k];
    if (typeof v === "number") out.push(v);
    else if (v !== null && typeof v === "object") leaves(v, out);
  }
  return out;
}

/** A counters object and its values at one moment. */
interface Snapshot {
  readonly obj: object;
  readonly values: number[];
}

function snap(obj: object): Snapshot {
  return { obj, values: leaves(obj) };
}

/** Expected counter moves, shaped like the counters object (missing: unchanged). */
interface Moves {
  readonly [key: string]: number | Moves;
}

/** Asserts that every counter of `before.obj` moved by what `expected` says since `before`. */
function delta(what: string, before: Snapshot, expected: Moves): void {
  const end = compare(what, before.obj, before.values, 0, expected, "");
  if (end !== before.values.length) assert.fail(`${what}: the counters changed shape`);
}

/** Walks `obj` like `leaves`, comparing each leaf with `values[i]`; returns the next index. */
function compare(
  what: string,
  obj: object,
  values: number[],
  i: number,
  expected: Moves,
  path: string,
): number {
  for (const k in obj) {
    const v = (obj as Record<string, unknown>)[k];
    const e = expected[k];
    if (typeof v === "number") {
      const want = typeof e === "number" ? e : 0;
      if (v - values[i] !== want) {
        assert.fail(`${what}: counter ${path}${k} moved by ${v - values[i]}, expected ${want}`);
      }
      i++;
    } else if (v !== null && typeof v === "object") {
      i = compare(what, v, values, i, typeof e === "object" ? e : NO_MOVES, `${path}${k}.`);
    }
  }
  return i;
}

const NO_MOVES: Moves = {};

/** Walks a counters object recursively: every number must be a non-negative safe integer. */
function nonNegative(what: string, obj: object): void {
  for (const k in obj) {
    const v = (obj as Record<string, unknown>)[k];
    if (typeof v === "number") {
      if (!(v >= 0) || !Number.isSafeInteger(v)) assert.fail(`${what}: counter ${k} = ${v}`);
    } else if (v !== null && typeof v === "object") nonNegative(what, v);
  }
}

/** A short name for a value in a failure message (core objects are deep and cyclic). */
function show(v: unknown): string {
  if (v === null || typeof v !== "object") return String(v);
  if ("clientIp" in v && "listener" in v) return describeFlow(v as Flow);
  if ("key" in v && "counters" in v) return `backend ${(v as Backend).key}`;
  if ("table" in v && "config" in v) return `listener ${(v as Listener).config.name}`;
  if ("backends" in v && "config" in v) return `cluster ${(v as { config: { name: string } }).config.name}`;
  if ("name" in v) return `config ${(v as { name: string }).name}`;
  return Object.prototype.toString.call(v);
}

/** Strict equality with a short message: no deep diff of cyclic core objects. */
function eq(actual: unknown, expected: unknown, what = "value"): void {
  if (!Object.is(actual, expected)) assert.fail(`${what}: got ${show(actual)}, expected ${show(expected)}`);
}

function altIp(ip: string): string {
  return ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : `::ffff:${ip}`;
}

function stateName(s: number): string {
  return ["awaiting", "established", "closing", "closed"][s] ?? `state${s}`;
}

function describeFlow(f: Flow): string {
  return `flow#${f.id}(${f.listener.config.name} ${f.clientIp}:${f.clientPort} ${stateName(f.state)})`;
}

/** A datagram held in a flow's one-slot buffer: its size and fill byte. */
interface Held {
  size: number;
  fill: number;
}

// ---- the simulation ---------------------------------------------------------------------------------------

class Sim {
  readonly rng: Rng;
  readonly core: RelayCore;
  now = 1_000;
  step = 0;
  /** The `now` of the last onTimeout call, or -Infinity. */
  lastTimeout = -Infinity;
  lastId = 0;
  readonly listenersSeen = new Set<Listener>();
  readonly backendsSeen = new Set<Backend>();
  readonly done = new Set<Listener>();
  readonly closed = new Set<Flow>();
  /** Flows whose `open` event was seen, with the datagram it carried. */
  readonly opened = new WeakMap<Flow, Uint8Array | null>();
  /** Flows closed recently: late replies, late resolutions, sends on them. */
  readonly recentClosed: Flow[] = [];
  /** Flows with a "resolve" event the shell has not answered yet. */
  readonly toResolve: Flow[] = [];
  readonly held = new Map<Flow, Held>();
  /** A flow admitted in this step by an external cluster: its "resolve" event is due. */
  expectResolve: Flow | null = null;
  /** Set by operations that may add listeners or backends: the step ends with a full `refresh`. */
  dirty = false;
  readonly buf = new Uint8Array(2001);
  readonly ring: string[] = [];
  live: Flow[] = [];

  readonly seed: number;
  readonly steps: number;

  constructor(seed: number, steps: number) {
    this.seed = seed;
    this.steps = steps;
    this.rng = new Rng(Math.imul(seed, 0x9e3779b1) ^ 0x5eed);
    const a = cluster({ name: "a" });
    const b = cluster({ name: "b", balancer: "maglev", maglevTableSize: 101, requests: 2, responses: 1 });
    const x = cluster({ name: "x", balancer: "external", backends: [] });
    this.core = new RelayCore(
      config([a, b, x], [
        listener({ name: "l1", cluster: "a" }),
        listener({ name: "l2", cluster: "b", maxFlows: 5 }),
        listener({ name: "l3", cluster: "x", address: addr("[::1]:7000") }),
      ]),
      { seed, autoMaxFlows: AUTO_MAX_FLOWS },
    );
    this.live = [...this.core.flows()];
    this.refresh();
  }

  // -- random choices

  int(n: number): number {
    return this.rng.nextInt(n);
  }
  chance(p: number): boolean {
    return this.rng.nextFloat() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.rng.nextInt(items.length)];
  }

  /** Counts that the run reached some path, so the test can tell it exercised the core. */
  readonly hits = new Map<string, number>();
  hit(key: string): void {
    this.hits.set(key, (this.hits.get(key) ?? 0) + 1);
  }

  label(text: string): void {
    const line = `t=${this.now} ${text}`;
    if (TRACE) console.log(`seed ${this.seed} step ${this.step}: ${line}`);
    this.ring.push(line);
    if (this.ring.length > 16) this.ring.shift();
  }

  // -- the run

  run(): void {
    for (this.step = 1; this.step <= this.steps; this.step++) {
      try {
        this.once();
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        assert.fail(
          `seed ${this.seed} step ${this.step}: ${msg}\n  replay: FERRY_SIM_SEED=${this.seed} FERRY_SIM_STEPS=${this.step} ` +
            `(FERRY_SIM_TRACE=1 prints every op)\n  last ops:\n    ${this.ring.join("\n    ")}`,
        );
      }
    }
  }

  once(): void {
    const before = this.live;
    const lastId = this.lastId;
    this.expectResolve = null;
    this.dirty = false;
    this.operate();
    this.drainEvents();
    this.live = [...this.core.flows()];
    if (this.dirty) this.refresh();
    let fresh = 0;
    for (const f of this.live) {
      if (f.id <= lastId) continue;
      fresh++;
      this.listenersSeen.add(f.listener);
      if (f.backend !== null) this.backendsSeen.add(f.backend);
    }
    // Every flow live before the step is still live, or Closed with its one "closed" event; only flows
    // admitted in the step are new.
    let kept = 0;
    for (const f of before) {
      if (f.state !== FlowState.Closed) kept++;
      else if (!this.closed.has(f)) {
        assert.fail(`${describeFlow(f)} left core.flows() without a closed event`);
      }
    }
    if (kept + fresh !== this.live.length) {
      assert.fail(`core.flows() has ${this.live.length} flows: ${kept} kept + ${fresh} admitted expected`);
    }
    if (this.expectResolve !== null) {
      assert.fail(`${describeFlow(this.expectResolve)} was admitted external without a resolve event`);
    }
    this.checkInvariants();
  }

  operate(): void {
    const r = this.rng.nextFloat() * 100;
    if (r < 36) return this.opClient();
    if (r < 54) return this.opReply();
    if (r < 63) return this.opClock();
    if (r < 71) return this.opTimeout();
    if (r < 77) return this.opResolve();
    if (r < 79) return this.opAbort();
    if (r < 81) return this.opSendFailed();
    if (r < 82.5) return this.opDisconnect();
    if (r < 85.5) return this.opSetCluster();
    if (r < 88.5) return this.opSetBackendState();
    if (r < 90.5) return this.opSetListener();
    if (r < 91.2) return this.opRemoveListener();
    if (r < 91.7) return this.opRemoveCluster();
    if (r < 92.4) return this.opApplyConfig();
    if (r < 92.8) return this.opDrain();
    if (r < 93.2) return this.opCloseAll();
    if (r < 94.5) return this.opCloseBackendFlows();
    if (r < 96.5) return this.opProbe();
    if (r < 97) return this.opHealthTick();
    return this.opQuality();
  }

  /** Records every listener and backend object reachable (after an operation that may add some). */
  refresh(): void {
    for (const l of this.core.listeners()) this.listenersSeen.add(l);
    for (const c of this.core.clusters()) {
      for (const b of c.backends) this.backendsSeen.add(b);
      for (const b of c.external.values()) this.backendsSeen.add(b);
    }
    for (const f of this.live) {
      this.listenersSeen.add(f.listener);
      if (f.backend !== null) this.backendsSeen.add(f.backend);
    }
  }

  /** Polls every event and checks it. */
  drainEvents(): void {
    for (let e = this.core.poll(); e !== undefined; e = this.core.poll()) {
      if (e.kind === "closed") {
        const f = e.flow;
        if (f.state !== FlowState.Closed) {
          assert.fail(`closed event for ${describeFlow(f)} which is not Closed`);
        }
        if (this.closed.has(f)) assert.fail(`second closed event for ${describeFlow(f)}`);
        if (f.closeReason === null) assert.fail(`${describeFlow(f)} closed without a reason`);
        this.closed.add(f);
        this.hit(`closed:${f.closeReason}`);
        this.held.delete(f);
        this.recentClosed.push(f);
        if (this.recentClosed.length > 24) this.recentClosed.shift();
      } else if (e.kind === "health") {
        const { change, backend } = e;
        if (change.from === change.to) {
          assert.fail(`health event ${e.cluster} ${backend.key}: ${change.from} → ${change.to}`);
        }
        this.hit(`health:${change.to}`);
      } else if (e.kind === "fail_open") {
        const c = this.core.cluster(e.cluster);
        if (c !== undefined && !c.failingOpen) {
          assert.fail(`fail_open event for ${e.cluster}, which is not failing open`);
        }
        this.hit("fail_open");
      } else if (e.kind === "resolve") {
        const f = e.flow;
        if (this.expectResolve !== f) assert.fail(`unexpected resolve event for ${describeFlow(f)}`);
        this.expectResolve = null;
        if (f.state !== FlowState.AwaitingBackend) assert.fail(`resolve event for ${describeFlow(f)}`);
        this.toResolve.push(f);
      } else if (e.kind === "fd_limit") {
        assert.fail("fd_limit event without a descriptor budget");
      } else if (e.kind === "open") {
        const f = e.flow;
        if (f.backend === null) assert.fail(`open event for ${describeFlow(f)} without a backend`);
        if (this.opened.has(f)) assert.fail(`second open event for ${describeFlow(f)}`);
        if (e.held === null && e.withHeader) assert.fail(`open event with a header and no datagram`);
        this.opened.set(f, e.held);
        this.hit(e.held === null ? "open" : "open:held");
      } else {
        const l = e.listener;
        if (this.done.has(l)) assert.fail(`second listener_done for ${l.config.name}`);
        if (!l.removed || l.flows !== 0) {
          assert.fail(`listener_done for ${l.config.name}: removed=${l.removed} flows=${l.flows}`);
        }
        if (this.core.listener(l.config.name) === l) {
          assert.fail(`listener_done but ${l.config.name} still listed`);
        }
        this.done.add(l);
        this.hit("listener_done");
        const c = l.counters;
        let closedCount = 0;
        for (const r of CLOSE_REASONS) closedCount += c.flowsClosed[r];
        if (c.flowsCreated !== closedCount) {
          assert.fail(`listener_done for ${l.config.name}: created ${c.flowsCreated}, closed ${closedCount}`);
        }
        nonNegative(`listener ${l.config.name}`, c);
        this.listenersSeen.delete(l); // nothing can change it any more: stop walking it every step
      }
    }
  }

  // -- invariants

  checkInvariants(): void {
    const core = this.core;
    for (const c of core.clusters()) {
      for (const b of c.backends) {
        const want = b.adminState !== "up" ? b.adminState : b.health.status === "down" ? "down" : "up";
        if (b.state !== want) {
          assert.fail(`${b.key}: state ${b.state}, admin ${b.adminState}, health ${b.health.status}`);
        }
      }
    }
    const live = this.live;
    eq(live.length, core.flowCount, "core.flowCount != size of core.flows()");
    const perListener = new Map<Listener, number>();
    const perBackend = new Map<Backend, number>();
    let minDeadline = Infinity;
    for (const f of live) {
      if (f.state === FlowState.Closed) assert.fail(`${describeFlow(f)} is Closed but in core.flows()`);
      if (this.closed.has(f)) assert.fail(`${describeFlow(f)} reappeared in core.flows() after closing`);
      if (!this.listenersSeen.has(f.listener)) assert.fail(`${describeFlow(f)} on an unknown listener`);
      perListener.set(f.listener, (perListener.get(f.listener) ?? 0) + 1);
      if (f.backend !== null) perBackend.set(f.backend, (perBackend.get(f.backend) ?? 0) + 1);
      if ((f.state === FlowState.AwaitingBackend) !== (f.backend === null)) {
        assert.fail(`${describeFlow(f)}: backend ${f.backend?.key ?? "null"} in this state`);
      }
      const k = f.knobs;
      if (k.requests > 0) {
        if (f.requests > k.requests) {
          assert.fail(`${describeFlow(f)}: ${f.requests} requests past cap ${k.requests}`);
        }
        if (f.requests === k.requests && f.state !== FlowState.Closing) {
          assert.fail(`${describeFlow(f)}: reached requests cap ${k.requests} but not Closing`);
        }
      }
      // No forwarded request loses its reply while its flow is live: a flow with `responses` set stays up
      // until every forwarded datagram had its replies, and its own count of them agrees with the model.
      if (k.responses > 0 && f.state !== FlowState.AwaitingBackend) {
        const owed = f.requests * k.responses - f.responses;
        if (owed <= 0) {
          assert.fail(
            `${describeFlow(f)}: ${f.responses} replies to ${f.requests} requests × ${k.responses}, live`,
          );
        }
        if (f.outstanding !== owed) {
          assert.fail(`${describeFlow(f)}: outstanding ${f.outstanding}, the model says ${owed}`);
        }
      }
      const attached = f.listener.lookup(f.clientIp, f.clientPort) === f;
      if (attached !== (f.state !== FlowState.Closing)) {
        assert.fail(`${describeFlow(f)}: in its listener's table = ${attached}`);
      }
      if (
        f.state === FlowState.Closing && (f.closingAt < 0 || k.requests === 0 || f.requests !== k.requests)
      ) {
        assert.fail(
          `${describeFlow(f)}: Closing at ${f.closingAt} with ${f.requests} of ${k.requests} requests`,
        );
      }
      if (f.state === FlowState.AwaitingBackend) {
        if (f.pending === null || f.requests !== 0 || k.balancer !== "external") {
          assert.fail(`${describeFlow(f)}: awaiting with ${f.requests} requests, balancer ${k.balancer}`);
        }
      } else if (f.requests < 1) assert.fail(`${describeFlow(f)}: forwarding without a request counted`);
      if (f.proxyHeader !== null && f.knobs.proxyProtocol === "off") {
        assert.fail(`${describeFlow(f)}: proxy header with mode off`);
      }
      if (
        f.state !== FlowState.AwaitingBackend &&
        (f.proxyHeader !== null) !== (f.knobs.proxyProtocol !== "off")
      ) {
        assert.fail(
          `${describeFlow(f)}: proxy header ${f.proxyHeader !== null} with mode ${f.knobs.proxyProtocol}`,
        );
      }
      const dl = f.deadline();
      if (dl < minDeadline) minDeadline = dl;
      if (this.lastTimeout === this.now && dl <= this.now) {
        assert.fail(`${describeFlow(f)}: deadline ${dl} <= now ${this.now} right after onTimeout(now)`);
      }
    }
    const next = core.nextDeadline();
    if (next > minDeadline) {
      assert.fail(`nextDeadline() ${next} later than a live flow's deadline ${minDeadline}`);
    }
    if (this.lastTimeout === this.now && next <= this.now) {
      assert.fail(`nextDeadline() ${next} <= now ${this.now} after onTimeout(now)`);
    }

    let created = 0;
    let closedCount = 0;
    let flows = 0;
    for (const l of this.listenersSeen) {
      const c = l.counters;
      let lc = 0;
      for (const r of CLOSE_REASONS) lc += c.flowsClosed[r];
      created += c.flowsCreated;
      closedCount += lc;
      flows += l.flows;
      const n = perListener.get(l) ?? 0;
      if (l.flows !== n) assert.fail(`listener ${l.config.name}: flows=${l.flows} but ${n} live flows on it`);
      if (c.flowsCreated - lc !== l.flows) {
        assert.fail(
          `listener ${l.config.name}: created ${c.flowsCreated} - closed ${lc} != flows ${l.flows}`,
        );
      }
      nonNegative(`listener ${l.config.name}`, c);
      if (l.flows < 0) assert.fail(`listener ${l.config.name}: flows ${l.flows}`);
      for (const [ip, ports] of l.table) {
        if (ports.size === 0) {
          assert.fail(`listener ${l.config.name}: empty port map for ${ip} left in the table`);
        }
        for (const [port, f] of ports) {
          if (f.clientIp !== ip || f.clientPort !== port || f.listener !== l) {
            assert.fail(`listener ${l.config.name}: table ${ip}:${port} holds ${describeFlow(f)}`);
          }
          if (f.state === FlowState.Closed || f.state === FlowState.Closing) {
            assert.fail(`listener ${l.config.name}: table holds ${describeFlow(f)}`);
          }
        }
      }
    }
    eq(
      created - closedCount,
      core.flowCount,
      "sum(flowsCreated) - sum(flowsClosed) != core.flowCount",
    );
    eq(flows, core.flowCount, "sum(listener.flows) != core.flowCount");

    // Now and then, forget backends no cluster and no live flow holds: their flow count can no longer move.
    let reachable: Set<Backend> | null = null;
    if (this.dirty) {
      reachable = new Set();
      for (const c of core.clusters()) {
        for (const b of c.backends) reachable.add(b);
        for (const b of c.external.values()) reachable.add(b);
      }
    }
    for (const b of this.backendsSeen) {
      const n = perBackend.get(b) ?? 0;
      if (b.flows !== n) assert.fail(`backend ${b.key}: flows=${b.flows} but ${n} live flows pinned to it`);
      nonNegative(`backend ${b.key}`, b.counters);
      if (reachable !== null && n === 0 && !reachable.has(b)) this.backendsSeen.delete(b);
    }
    for (const c of core.clusters()) nonNegative(`cluster ${c.config.name}`, c.counters);
  }

  // -- choosing things

  /** A listener the shell still has a socket for: a current one, or a removed one not yet done. */
  pickListener(): Listener | undefined {
    const open = [...this.listenersSeen].filter((l) => !this.done.has(l));
    if (open.length === 0) return undefined;
    const current = open.filter((l) => !l.removed);
    return current.length > 0 && this.chance(0.9) ? this.pick(current) : this.pick(open);
  }

  pickLive(): Flow | undefined {
    return this.live.length === 0 ? undefined : this.pick(this.live);
  }

  /** A live flow, or now and then one that already closed. */
  pickAnyFlow(pClosed: number): Flow | undefined {
    if (this.recentClosed.length > 0 && (this.live.length === 0 || this.chance(pClosed))) {
      return this.pick(this.recentClosed);
    }
    return this.pickLive();
  }

  datagramSize(max: number): number {
    const r = this.rng.nextFloat();
    if (r < 0.05) return 0;
    if (r < 0.1) return Math.min(2000, max + this.int(2)); // at the limit, or one past
    if (r < 0.22) return this.int(2001); // anything, oversize included
    return 1 + this.int(200);
  }

  randomCluster(name: string): ClusterConfig {
    const balancer = name === "x" && this.chance(0.7) ? "external" : this.pick(BALANCERS);
    let frontTimeout = this.pick(TIMEOUTS);
    const backTimeout = this.pick(TIMEOUTS);
    if (frontTimeout === 0 && backTimeout === 0) frontTimeout = 100;
    const pool = [...BACKEND_ADDRESSES];
    const n = this.chance(0.05) ? 0 : 1 + this.int(4);
    const backends: BackendConfig[] = [];
    for (let i = 0; i < n; i++) {
      const address = pool.splice(this.int(pool.length), 1)[0];
      backends.push({ address, weight: this.chance(0.1) ? 1000 : 1 + this.int(5), state: this.pick(STATES) });
    }
    return cluster({
      name,
      balancer,
      affinity: this.chance(0.5) ? "ip" : "ip_port",
      requests: this.int(4),
      responses: this.int(4),
      frontTimeout,
      backTimeout,
      proxyProtocol: this.pick(["off", "first", "every"] as const),
      hashSeed: this.int(3),
      failOpen: this.chance(0.5),
      maglevTableSize: this.pick(MAGLEV_SIZES),
      external: balancer !== "external" ? null : {
        key: "ferry:backend:x",
        fallback: this.chance(0.3) ? "drop" : this.pick(BALANCER_NAMES),
        cacheMs: 0,
      },
      backends,
    });
  }

  randomListener(name: string, clusterName: string): ListenerConfig {
    return listener({
      name,
      cluster: clusterName,
      address: this.pick(LISTEN_ADDRESSES),
      maxFlows: this.pick(MAX_FLOWS),
      maxDatagramSize: this.pick(DATAGRAM_LIMITS),
      sources: this.chance(0.2) ? NO_LOOPBACK_POLICY : DEFAULT_POLICY,
    });
  }

  refused(l: Listener, ip: string, port: number): boolean {
    if (port === 0 || BAD_IPS.has(ip)) return true;
    return LOOPBACK_IPS.has(ip) && l.config.sources.reject.includes("loopback");
  }

  // -- operations

  opClient(): void {
    let l = this.pickListener();
    let ip: string;
    let port: number;
    const who = this.rng.nextFloat();
    if (who < 0.06) [ip, port] = this.pick(BAD_SOURCES);
    else if (who < 0.45 && this.live.length > 0) {
      // A client that already has a flow, talking again on the same listener.
      const f = this.pick(this.live);
      l = f.listener;
      ip = f.clientIp;
      port = f.clientPort;
    } else [ip, port] = [this.pick(GOOD_IPS), this.pick(PORTS)];
    if (l === undefined || this.done.has(l)) return;
    const size = this.datagramSize(l.config.maxDatagramSize);
    const fill = 1 + (this.step % 250);
    const data = this.buf.subarray(0, size);
    data.fill(fill);
    this.label(`fromClient ${l.config.name}${l.removed ? "(removed)" : ""} ${ip}:${port} ${size}B`);

    const cl = l.cluster;
    const known = l.lookup(ip, port);
    const knownState = known?.state;
    const knownRequests = known?.requests ?? 0;
    const knownHeld = known !== undefined && known.pending !== null;
    const limit = l.config.maxFlows > 0 ? l.config.maxFlows : AUTO_MAX_FLOWS;
    const flowsBefore = l.flows;
    const before = snap(l.counters);
    const failOpenBefore = cl?.counters.failOpen ?? 0;
    const backendsBefore = new Map<Backend, Snapshot>();
    if (cl !== null) { for (const b of cl.backends) backendsBefore.set(b, snap(b.counters)); }
    if (known?.backend) backendsBefore.set(known.backend, snap(known.backend.counters));
    // Usable backends of attached flows of the same client IP in this cluster: where `ip` affinity sticks.
    const sticky: Backend[] = [];
    for (const s of l.table.get(ip)?.values() ?? []) {
      if (s.backend !== null && s.backend.usable && cl !== null && s.knobs.name === cl.config.name) {
        sticky.push(s.backend);
      }
    }

    const r = this.core.fromClient(l, ip, port, data, this.now);
    data.fill(0xee); // the shell reuses its receive buffer: a held copy must not change
    const what = `fromClient ${ip}:${port} ${size}B`;
    const drop = (code: Drop, counter: string) => {
      this.hit(`drop:${counter}`);
      eq(r, code, `${what}: expected drop ${counter}`);
      delta(what, before, { drops: { [counter]: 1 } });
    };

    if (size > l.config.maxDatagramSize) return drop(Drop.Truncated, "truncated");
    if (cl === null || (cl.backends.length === 0 && cl.config.balancer !== "external")) {
      return drop(Drop.NoBackend, "no_backend");
    }
    if (size === 0) return drop(Drop.Invalid, "invalid");
    if (known !== undefined) {
      eq(r, known, `${what}: expected the known ${describeFlow(known)}`);
      this.hit(knownState === FlowState.Established ? "client:known" : "client:held");
      if (knownState === FlowState.Established) {
        delta(what, before, { datagramsIn: 1, bytesIn: size });
        const b = known.backend as Backend;
        delta(`${what} backend ${b.key}`, backendsBefore.get(b)!, {
          datagramsTo: 1,
          bytesTo: size,
        });
        eq(known.requests, knownRequests + 1, `${what}: requests not counted`);
        eq(known.lastClientAt, this.now);
        this.checkHeaderDue(known, what);
        const cap = known.knobs.requests;
        if (cap > 0 && known.requests >= cap) {
          eq(known.state, FlowState.Closing, `${what}: requests cap ${cap} reached, not Closing`);
          this.hit("client:requests-cap");
          eq(known.closingAt, this.now);
          eq(l.lookup(ip, port), undefined, `${what}: Closing flow still in the table`);
        } else eq(known.state, FlowState.Established);
      } else {
        eq(knownState, FlowState.AwaitingBackend, `${what}: a table flow in state ${knownState}`);
        delta(what, before, { drops: { pending_replaced: knownHeld ? 1 : 0 } });
        eq(known.state, FlowState.AwaitingBackend);
        eq(known.requests, 0);
        this.checkHeld(known, { size, fill }, what);
        this.held.set(known, { size, fill });
      }
      return;
    }
    if (this.core.draining || l.draining || flowsBefore >= limit) return drop(Drop.Shed, "shed");
    if (this.refused(l, ip, port)) return drop(Drop.Invalid, "invalid");
    const external = cl.config.balancer === "external";
    const usable = cl.backends.filter((b) => b.usable);
    if (!external && usable.length === 0 && !cl.config.failOpen) {
      eq(cl.counters.failOpen, failOpenBefore);
      return drop(Drop.NoBackend, "no_backend");
    }
    if (typeof r === "number") assert.fail(`${what}: dropped (${r}), expected a new flow`);
    const f = r;
    const d = describeFlow(f);
    if (f.id <= this.lastId) assert.fail(`${d}: id not increasing (last ${this.lastId})`);
    this.lastId = f.id;
    eq(f.listener, l);
    eq(f.clientIp, ip);
    eq(f.clientPort, port);
    eq(f.knobs, cl.config, `${d}: knobs are not the cluster's current config`);
    if (l.flows > limit) assert.fail(`${d}: admitted past max flows ${limit} (now ${l.flows})`);
    if (external) {
      eq(f.state, FlowState.AwaitingBackend, `${d}: external admission`);
      eq(f.backend, null);
      delta(what, before, { flowsCreated: 1 });
      this.checkHeld(f, { size, fill }, what);
      this.held.set(f, { size, fill });
      this.expectResolve = f;
      this.hit("admit:awaiting");
      return;
    }
    const b = f.backend;
    if (b === null) assert.fail(`${d}: admitted without a backend`);
    const from = usable.length > 0 ? usable : cl.backends;
    if (!from.includes(b)) {
      assert.fail(
        `${d}: pinned to ${b.key} (state ${b.state}), not one of the cluster's ${
          usable.length > 0 ? "usable" : ""
        } backends [${from.map((x) => `${x.key}:${x.state}`).join(" ")}] (affinity ${cl.config.affinity})`,
      );
    }
    const inCluster = sticky.filter((x) => cl.backends.includes(x));
    if (cl.config.affinity === "ip" && inCluster.length > 0 && !inCluster.includes(b)) {
      assert.fail(
        `${d}: ip affinity ignored: siblings on [${inCluster.map((x) => x.key).join(" ")}], got ${b.key}`,
      );
    }
    eq(cl.counters.failOpen - failOpenBefore, usable.length > 0 ? 0 : 1, `${d}: failOpen counter`);
    this.hit(usable.length > 0 ? "admit:established" : "admit:fail-open");
    if (inCluster.length > 0) this.hit("admit:ip-affinity");
    delta(what, before, { flowsCreated: 1, datagramsIn: 1, bytesIn: size });
    delta(`${what} backend ${b.key}`, backendsBefore.get(b)!, {
      flowsTotal: 1,
      datagramsTo: 1,
      bytesTo: size,
    });
    eq(f.requests, 1);
    eq(f.responses, 0);
    this.checkHeaderDue(f, what);
    const cap = f.knobs.requests;
    eq(
      f.state,
      cap === 1 ? FlowState.Closing : FlowState.Established,
      `${d}: state after admission`,
    );
  }

  checkHeaderDue(f: Flow, what: string): void {
    const mode = f.knobs.proxyProtocol;
    const want = mode === "every" || (mode === "first" && f.requests === 1);
    eq(f.headerDue, want, `${what}: headerDue with mode ${mode} on request ${f.requests}`);
    eq(f.proxyHeader !== null, mode !== "off", `${what}: proxy header presence with mode ${mode}`);
  }

  checkHeld(f: Flow, want: Held, what: string): void {
    const p = f.pending;
    if (p === null) assert.fail(`${what}: nothing held for ${describeFlow(f)}`);
    eq(p.byteLength, want.size, `${what}: held datagram size`);
    for (let i = 0; i < p.byteLength; i++) {
      if (p[i] !== want.fill) {
        assert.fail(`${what}: held datagram byte ${i} = ${p[i]}, expected ${want.fill}`);
      }
    }
  }

  opReply(): void {
    const f = this.pickAnyFlow(0.1);
    if (f === undefined) return;
    const size = this.int(2001);
    this.label(`fromBackend ${describeFlow(f)} ${size}B`);
    const what = `fromBackend ${describeFlow(f)}`;
    const state = f.state;
    const responses = f.responses;
    const before = snap(f.listener.counters);
    const b = f.backend;
    const bBefore = b === null ? null : snap(b.counters);
    const r = this.core.fromBackend(f, size, this.now);
    if (state !== FlowState.Established && state !== FlowState.Closing) {
      eq(r, false, `${what}: reply accepted`);
      delta(what, before, { drops: { late: 1 } });
      this.hit("reply:late");
      eq(f.state, state);
      return;
    }
    eq(r, true, `${what}: reply refused`);
    this.hit("reply:accepted");
    eq(f.responses, responses + 1);
    const cap = f.knobs.responses;
    // Per request: the reply that leaves no forwarded datagram waiting closes the flow, and no other.
    const closes = cap > 0 && f.responses >= f.requests * cap;
    if (cap > 0) this.hit(closes ? "reply:last-owed" : "reply:more-owed");
    delta(what, before, {
      datagramsOut: 1,
      bytesOut: size,
      ...(closes ? { flowsClosed: { responses: 1 } } : {}),
    });
    delta(`${what} backend`, bBefore as Snapshot, { datagramsFrom: 1, bytesFrom: size });
    if (closes) {
      eq(f.state, FlowState.Closed, `${what}: responses cap ${cap} reached`);
      eq(f.closeReason, "responses");
    } else {
      eq(f.state, state);
      eq(f.lastBackendAt, this.now);
    }
  }

  opClock(): void {
    const r = this.rng.nextFloat();
    const dt = r < 0.7 ? this.int(60) : r < 0.95 ? 60 + this.int(2_000) : 2_000 + this.int(120_000);
    this.now += dt;
    this.label(`clock +${dt}`);
  }

  opTimeout(): void {
    const next = this.core.nextDeadline();
    const r = this.rng.nextFloat();
    let at = this.now;
    if (next !== Infinity) {
      if (r < 0.5) at = next; // exactly on time
      else if (r < 0.7) at = next - 1; // a hair early
      else if (r < 0.85) at = next + this.int(5_000); // late
    }
    this.now = Math.max(this.now, at);
    const now = this.now;
    this.label(`onTimeout (next ${next})`);
    const due = this.live.filter((f) => f.deadline() <= now);
    const states = due.map((f) => f.state);
    const survivors = this.live.filter((f) => f.deadline() > now);
    this.core.onTimeout(now);
    if (due.length > 0) this.hit("timeout:fired");
    this.lastTimeout = now;
    due.forEach((f, i) => {
      if (f.state !== FlowState.Closed) {
        assert.fail(`onTimeout(${now}): ${describeFlow(f)} due at ${f.deadline()} left open`);
      }
      const want = states[i] === FlowState.Closing ? "requests" : "idle";
      eq(f.closeReason, want, `onTimeout: ${describeFlow(f)} closed as ${f.closeReason}`);
    });
    for (const f of survivors) {
      if (f.state === FlowState.Closed) {
        assert.fail(`onTimeout(${now}): closed ${describeFlow(f)} due at ${f.deadline()}`);
      }
    }
  }

  opResolve(): void {
    this.dirty = true;
    let f: Flow | undefined;
    const r = this.rng.nextFloat();
    const waiting = this.toResolve.filter((x) => x.state === FlowState.AwaitingBackend);
    if (waiting.length > 0 && r < 0.8) f = this.pick(waiting);
    else if (this.toResolve.length > 0 && r < 0.9) f = this.pick(this.toResolve);
    else f = this.pickAnyFlow(0.5); // a flow that is not waiting: must be refused
    const at = f === undefined ? -1 : this.toResolve.indexOf(f);
    if (at >= 0) this.toResolve.splice(at, 1);
    if (f === undefined) return;
    const q = this.rng.nextFloat();
    // The cluster the flow was admitted under (by name), not whatever its listener points at now.
    const cl = this.core.cluster(f.knobs.name) ?? null;
    let address: SocketAddress | null;
    if (q < 0.3 && cl !== null && cl.backends.length > 0) address = this.pick(cl.backends).address;
    else if (q < 0.6) address = this.pick(RESOLVED_GOOD);
    else if (q < 0.75) address = this.pick(RESOLVED_BAD);
    else address = null;
    const text = address === null ? "null" : `${address.ip}:${address.port}`;
    this.label(`resolved ${describeFlow(f)} -> ${text}`);
    const what = `resolved(${describeFlow(f)}, ${text})`;
    const state = f.state;
    const held = this.held.get(f);
    const before = snap(f.listener.counters);
    const failOpenBefore = cl?.counters.failOpen ?? 0;
    const usable = cl === null ? [] : cl.backends.filter((b) => b.usable);
    const out = this.core.resolved(f, address, this.now);
    if (state !== FlowState.AwaitingBackend) {
      eq(out, null, `${what}: a flow not awaiting its backend was resolved`);
      this.hit("resolve:stale");
      eq(f.state, state);
      delta(what, before, {});
      return;
    }
    this.held.delete(f);
    const valid = address !== null && !RESOLVED_BAD.includes(address);
    if (out === null) {
      eq(f.state, FlowState.Closed, `${what}: refused but not closed`);
      eq(f.closeReason, "aborted");
      delta(what, before, { drops: { no_backend: 1 }, flowsClosed: { aborted: 1 } });
      this.hit("resolve:refused");
      // Refusal is right only without a cluster, or when falling back to a cluster that has nothing to give.
      const fallbackEmpty = cl === null || cl.backends.length === 0 ||
        cl.config.external?.fallback === "drop" ||
        (usable.length === 0 && !cl.config.failOpen);
      if (!(cl === null || (!valid && fallbackEmpty))) assert.fail(`${what}: refused although routable`);
      return;
    }
    eq(out, f);
    if (cl === null) assert.fail(`${what}: routed without a cluster`);
    const b = f.backend;
    if (b === null) assert.fail(`${what}: established without a backend`);
    if (valid && address !== null) {
      eq(b.address.ip, address.ip, `${what}: pinned to ${b.key}`);
      eq(b.address.port, address.port, `${what}: pinned to ${b.key}`);
      const configured = cl.backends.find((x) =>
        x.address.ip === address.ip && x.address.port === address.port
      );
      if (configured !== undefined) eq(b, configured, `${what}: not the configured backend object`);
      else eq(cl.external.get(b.key), b, `${what}: external backend not recorded`);
    } else {
      const from = usable.length > 0 ? usable : cl.backends;
      if (!from.includes(b)) assert.fail(`${what}: fell back to ${b.key}, not a cluster backend`);
      eq(
        cl.counters.failOpen - failOpenBefore,
        usable.length > 0 ? 0 : 1,
        `${what}: failOpen counter`,
      );
    }
    this.hit(valid ? "resolve:address" : "resolve:fallback");
    this.drainEvents(); // the open event carries the held datagram
    const pending = this.opened.get(f) ?? null;
    eq(f.pending, null);
    if (held === undefined) assert.fail(`${what}: no held datagram was tracked`);
    if (pending === null) assert.fail(`${what}: held datagram lost`);
    eq(pending.byteLength, held.size);
    if (pending.some((x) => x !== held.fill)) assert.fail(`${what}: held datagram corrupted`);
    delta(what, before, { datagramsIn: 1, bytesIn: held.size });
    eq(f.requests, 1);
    eq(f.lastClientAt, this.now);
    this.checkHeaderDue(f, what);
    eq(
      f.state,
      f.knobs.requests === 1 ? FlowState.Closing : FlowState.Established,
      `${what}: state`,
    );
    eq(this.core.resolved(f, address, this.now), null, `${what}: resolved twice`);
  }

  opAbort(): void {
    const f = this.pickAnyFlow(0.2);
    if (f === undefined) return;
    this.label(`close ${describeFlow(f)} aborted`);
    const wasLive = f.state !== FlowState.Closed;
    const reason = f.closeReason;
    const before = snap(f.listener.counters);
    eq(this.core.close(f, "aborted"), wasLive, `close(${describeFlow(f)})`);
    eq(this.core.close(f, "aborted"), false, `second close(${describeFlow(f)})`);
    eq(f.state, FlowState.Closed);
    eq(f.closeReason, wasLive ? "aborted" : reason);
    eq(f.pending, null);
    delta("close", before, wasLive ? { flowsClosed: { aborted: 1 } } : {});
  }

  opSendFailed(): void {
    const f = this.pickAnyFlow(0.2);
    if (f === undefined) return;
    const toBackend = this.chance(0.6);
    const refused = this.chance(0.5);
    this.label(`sendFailed ${describeFlow(f)} toBackend=${toBackend} refused=${refused}`);
    const b = f.backend;
    const before = snap(f.listener.counters);
    const bBefore = b === null ? null : snap(b.counters);
    const handled = f.quality.handled + 1;
    const dropped = f.quality.dropped + 1;
    const halved = handled > LOSS_WINDOW; // the loss window halves both counters
    const state = f.state;
    this.core.sendFailed(f, toBackend ? "to_backend" : "to_client", refused ? "refused" : "error", this.now);
    delta("sendFailed", before, { drops: { send_error: 1 } });
    if (b !== null) {
      const want: Record<string, number> = toBackend ? { sendErrors: 1, refusals: refused ? 1 : 0 } : {};
      delta("sendFailed backend", bBefore as Snapshot, want);
    }
    eq(f.state, state, "sendFailed changed the flow state");
    eq(f.quality.dropped, halved ? dropped >>> 1 : dropped, "sendFailed: quality.dropped");
    eq(f.quality.handled, halved ? handled >>> 1 : handled, "sendFailed: quality.handled");
  }

  opProbe(): void {
    const name = this.pick(CLUSTER_NAMES);
    const c = this.core.cluster(name);
    if (c === undefined || c.backends.length === 0) return;
    // Half the time a down backend, if any, so `rise` successes in a row (probe:up) happen often enough.
    const down = c.backends.filter((x) => x.health.status === "down");
    const b = down.length > 0 && this.chance(0.5) ? this.pick(down) : this.pick(c.backends);
    const error = this.chance(b.health.status === "down" ? 0.8 : 0.5) ? null : "timeout";
    this.label(`probeResult ${name} ${b.key} ${error ?? "ok"}`);
    const status = b.health.status;
    const h = c.config.health;
    const streak = error === null ? b.health.okStreak + 1 : b.health.failStreak + 1;
    this.core.probeResult(name, b.key, error, this.now);
    const want = error === null
      ? (status === "down" && streak >= h.rise ? "up" : status)
      : (status === "up" && streak >= h.fall ? "down" : status);
    eq(b.health.status, want, `probe ${b.key}: health status`);
    if (want !== status) this.hit(`probe:${want}`);
  }

  opHealthTick(): void {
    this.label("healthTick");
    this.core.healthTick(this.now);
    for (const c of this.core.clusters()) {
      for (const b of c.backends) {
        if (b.health.passiveUntil >= 0 && b.health.passiveUntil <= this.now) {
          assert.fail(`healthTick left ${b.key}'s passive window (until ${b.health.passiveUntil}) open`);
        }
      }
    }
  }

  opDisconnect(): void {
    const ip = this.pick(GOOD_IPS);
    const port = this.chance(0.5) ? this.pick(PORTS) : undefined;
    const name = this.chance(0.3) ? this.pick(LISTENER_NAMES) : undefined;
    this.label(`disconnect ${ip} ${port ?? "*"} ${name ?? "*"}`);
    const alt = altIp(ip);
    this.closeMatching(
      "disconnected",
      (f) =>
        (f.clientIp === ip || f.clientIp === alt) && (port === undefined || f.clientPort === port) &&
        (name === undefined || f.listener.config.name === name),
      () => this.core.disconnect(ip, port, name),
    );
  }

  opCloseAll(): void {
    const reason = this.pick(CLOSE_REASONS);
    const name = this.chance(0.5) ? this.pick(LISTENER_NAMES) : undefined;
    this.label(`closeAll ${reason} ${name ?? "*"}`);
    this.closeMatching(
      reason,
      (f) => name === undefined || f.listener.config.name === name,
      () => this.core.closeAll(reason, name),
    );
  }

  opCloseBackendFlows(): void {
    const key = this.pick([...BACKEND_POOL, "10.9.0.1:53"]);
    const name = this.chance(0.5) ? this.pick(CLUSTER_NAMES) : undefined;
    this.label(`closeBackendFlows ${key} ${name ?? "*"}`);
    this.closeMatching(
      "disconnected",
      (f) => f.backend?.key === key && (name === undefined || f.knobs.name === name),
      () => this.core.closeBackendFlows(key, name),
    );
  }

  closeMatching(reason: CloseReason, match: (f: Flow) => boolean, act: () => number): void {
    const hit = this.live.filter(match);
    const n = act();
    eq(n, hit.length, `${reason}: closed ${n} flows, expected ${hit.length}`);
    for (const f of hit) {
      eq(f.state, FlowState.Closed, `${reason}: ${describeFlow(f)} left open`);
      eq(f.closeReason, reason);
    }
    for (const f of this.live) {
      if (!match(f) && f.state === FlowState.Closed) {
        assert.fail(`${reason}: closed unrelated ${describeFlow(f)}`);
      }
    }
  }

  opSetCluster(): void {
    this.dirty = true;
    const name = this.pick(CLUSTER_NAMES);
    const cc = this.randomCluster(name);
    this.label(
      `setCluster ${name} ${cc.balancer} ${cc.affinity} req=${cc.requests} resp=${cc.responses} ` +
        `front=${cc.frontTimeout} back=${cc.backTimeout} ${cc.proxyProtocol} failOpen=${cc.failOpen} ` +
        `[${cc.backends.map((b) => `${b.address.ip}:${b.address.port}/${b.weight}/${b.state}`).join(" ")}]`,
    );
    const old = this.core.cluster(name);
    const oldBackends = new Map((old?.backends ?? []).map((b) => [b.key, b]));
    const c = this.core.setCluster(cc);
    eq(this.core.cluster(name), c);
    if (old !== undefined) eq(c, old, "setCluster replaced a kept cluster object");
    eq(c.config, cc);
    eq(c.backends.length, cc.backends.length);
    for (const b of c.backends) {
      const kept = oldBackends.get(b.key);
      if (kept !== undefined) eq(b, kept, `setCluster: backend ${b.key} lost its object`);
    }
    for (const l of this.core.listeners()) if (l.config.cluster === name) eq(l.cluster, c);
  }

  opRemoveCluster(): void {
    this.dirty = true;
    const name = this.pick(CLUSTER_NAMES);
    this.label(`removeCluster ${name}`);
    const existed = this.core.cluster(name) !== undefined;
    eq(this.core.removeCluster(name), existed);
    eq(this.core.cluster(name), undefined);
    if (existed) {
      for (const l of this.core.listeners()) if (l.config.cluster === name) eq(l.cluster, null);
    }
  }

  opSetBackendState(): void {
    this.dirty = true;
    const name = this.pick(CLUSTER_NAMES);
    const key = this.pick([...BACKEND_POOL, "10.9.9.9:1"]);
    const state = this.pick(["up", "down", "draining"] as const);
    this.label(`setBackendState ${name} ${key} ${state}`);
    const b = this.core.cluster(name)?.backend(key);
    eq(this.core.setBackendState(name, key, state), b !== undefined);
    if (b === undefined) return;
    eq(b.adminState, state);
    // An operator's "up" still yields to health: a backend health has marked down stays down.
    eq(b.state, state === "up" && b.health.status === "down" ? "down" : state);
  }

  opSetListener(): void {
    this.dirty = true;
    const name = this.pick(LISTENER_NAMES);
    const lc = this.randomListener(name, this.chance(0.1) ? "missing" : this.pick(CLUSTER_NAMES));
    this.label(`setListener ${name} -> ${lc.cluster} maxFlows=${lc.maxFlows} maxSize=${lc.maxDatagramSize}`);
    const old = this.core.listener(name);
    const l = this.core.setListener(lc);
    eq(this.core.listener(name), l);
    if (old !== undefined && !old.removed) {
      eq(l, old, "setListener replaced a live listener object");
    }
    eq(l.config, lc);
    eq(l.cluster, this.core.cluster(lc.cluster) ?? null);
    eq(l.removed, false);
  }

  opRemoveListener(): void {
    this.dirty = true;
    const name = this.pick(LISTENER_NAMES);
    this.label(`removeListener ${name}`);
    const l = this.core.listener(name);
    const removable = l !== undefined && !l.removed;
    eq(this.core.removeListener(name), removable, `removeListener ${name}`);
    if (l !== undefined) {
      eq(l.removed, true);
      eq(l.draining, true);
    }
  }

  opApplyConfig(): void {
    this.dirty = true;
    const names = CLUSTER_NAMES.filter(() => this.chance(0.7));
    if (names.length === 0) names.push(this.pick(CLUSTER_NAMES));
    const clusters = names.map((n) => this.randomCluster(n));
    const listeners = LISTENER_NAMES.filter(() => this.chance(0.7)).map((n) =>
      this.randomListener(n, this.pick(names))
    );
    const cfg: FerryConfig = config(clusters, listeners);
    this.label(
      `applyConfig clusters [${names.join(" ")}] listeners [${listeners.map((l) => l.name).join(" ")}]`,
    );
    const oldListeners = new Map([...this.core.listeners()].map((l) => [l.config.name, l]));
    this.core.applyConfig(cfg);
    const names2 = [...this.core.clusters()].map((c) => c.config.name).sort();
    assert.deepEqual(names2, [...names].sort(), "applyConfig: cluster set");
    for (const lc of listeners) {
      const l = this.core.listener(lc.name);
      if (l === undefined) assert.fail(`applyConfig: listener ${lc.name} missing`);
      eq(l.config, lc);
      eq(l.cluster, this.core.cluster(lc.cluster));
      const old = oldListeners.get(lc.name);
      if (old !== undefined && !old.removed) {
        eq(l, old, `applyConfig: listener ${lc.name} replaced`);
      }
    }
    for (const [name, l] of oldListeners) {
      if (!listeners.some((lc) => lc.name === name)) {
        eq(l.removed, true, `applyConfig: ${name} kept`);
      }
    }
  }

  opDrain(): void {
    this.dirty = true;
    if (this.chance(0.1) && this.step > this.steps * 0.75) {
      this.label("drain (all)");
      this.core.drain();
      eq(this.core.draining, true);
      return;
    }
    const name = this.pick(LISTENER_NAMES);
    this.label(`drain ${name}`);
    this.core.drain(name);
    const l = this.core.listener(name);
    if (l !== undefined) eq(l.draining, true);
  }

  opQuality(): void {
    this.label("read quality");
    for (const f of this.live) {
      const q = f.quality;
      const loss = q.lossPermille;
      if (!(loss >= 0 && loss <= 1000)) assert.fail(`${describeFlow(f)}: lossPermille ${loss}`);
      const bw = q.bandwidth(this.now);
      if (!(bw >= 0) || !Number.isFinite(bw)) assert.fail(`${describeFlow(f)}: bandwidth ${bw}`);
      const p = q.priority(this.now);
      if (!Number.isFinite(p)) assert.fail(`${describeFlow(f)}: priority ${p}`);
      if (q.dropped > q.handled) {
        assert.fail(`${describeFlow(f)}: dropped ${q.dropped} > handled ${q.handled}`);
      }
    }
  }
}

/** Runs one seed; throws an assertion naming the seed and step on the first broken expectation. */
function simulate(seed: number, steps = STEPS): Sim {
  const sim = new Sim(seed, steps);
  sim.run();
  return sim;
}

// ---- tests ------------------------------------------------------------------------------------------------

/** Paths every default-sized run must reach (else the generator went stale and the run proves little). */
const MUST_HIT = [
  "admit:established",
  "admit:awaiting",
  "admit:fail-open",
  "admit:ip-affinity",
  "client:known",
  "client:held",
  "client:requests-cap",
  "reply:accepted",
  "reply:late",
  "reply:last-owed",
  "reply:more-owed",
  "timeout:fired",
  "resolve:address",
  "resolve:fallback",
  "resolve:refused",
  "resolve:stale",
  "listener_done",
  "fail_open",
  "health:down",
  "health:up",
  "probe:down",
  "probe:up",
  ...["truncated", "no_backend", "invalid", "shed"].map((d) => `drop:${d}`),
  ...CLOSE_REASONS.map((r) => `closed:${r}`),
];

describe("relay core simulation", () => {
  if (ONLY !== undefined && ONLY !== "") {
    const seed = Number(ONLY);
    test(`seed ${seed} × ${STEPS} steps`, () => {
      const sim = simulate(seed);
      if (TRACE) console.log(Object.fromEntries([...sim.hits].sort()));
    });
    return;
  }

  const totals = new Map<string, number>();
  let runs = 0;
  // About 20k steps per test: well inside bun's default 5 s per-test timeout even on a loaded machine.
  const CHUNK = Math.max(1, Math.floor(20_000 / Math.max(1, STEPS)));
  for (let first = BASE; first < BASE + SEEDS; first += CHUNK) {
    const last = Math.min(first + CHUNK, BASE + SEEDS) - 1;
    test(`seeds ${first}..${last} × ${STEPS} steps`, () => {
      for (let seed = first; seed <= last; seed++) {
        const sim = simulate(seed);
        runs++;
        for (const [k, n] of sim.hits) totals.set(k, (totals.get(k) ?? 0) + n);
      }
    });
  }

  test("the runs reached every path that matters", () => {
    if (env("FERRY_SIM_STATS") === "1") console.log(Object.fromEntries([...totals].sort()));
    if (runs < 100 || STEPS < 200) return; // too small a run to demand everything
    const missed = MUST_HIT.filter((k) => !totals.has(k));
    assert.deepEqual(missed, [], `never reached: ${missed.join(", ")}`);
  });

  test("a seed replays exactly", () => {
    const a = simulate(BASE, 150);
    const b = simulate(BASE, 150);
    assert.deepEqual(b.ring, a.ring);
    assert.deepEqual([...b.hits], [...a.hits]);
  });
});

/** Regression: `ip` affinity must not follow a sibling flow onto a backend that left the cluster (seeds 52, 103). */
describe("ip affinity and removed backends", () => {
  test("a new flow does not stick to a backend removed from the cluster", () => {
    const core = new RelayCore(config([cluster({ affinity: "ip" })], [listener()]), { seed: 1 });
    const l = core.listener("l")!;
    const first = core.fromClient(l, "192.0.2.1", 40000, new Uint8Array(10), 0);
    assert.ok(typeof first === "object" && first.backend?.key === "10.0.0.1:9000");
    core.setCluster(cluster({ affinity: "ip", backends: [backend("10.0.0.2:9000")] }));
    const second = core.fromClient(l, "192.0.2.1", 40001, new Uint8Array(10), 1);
    assert.ok(typeof second === "object");
    eq(second.backend?.key, "10.0.0.2:9000", "backend of the second flow");
  });

  test("fail_open = false is not bypassed through a removed backend", () => {
    const core = new RelayCore(config([cluster({ affinity: "ip" })], [listener()]), { seed: 1 });
    const l = core.listener("l")!;
    core.fromClient(l, "192.0.2.1", 40000, new Uint8Array(10), 0);
    core.setCluster(
      cluster({ affinity: "ip", failOpen: false, backends: [backend("10.0.0.2:9000", 1, "down")] }),
    );
    eq(core.fromClient(l, "192.0.2.1", 40001, new Uint8Array(10), 1), Drop.NoBackend, "second client port");
  });
});
