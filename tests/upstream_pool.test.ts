/**
 * The native driver's upstream socket pool (shell/datapath/native/upstream_pool.ts) on its own: who may
 * give a socket back, the quarantine, the drain on reuse, the bounds and the sweep. The end-to-end side
 * (a reused socket never hands an old flow's reply to a new flow) is in tests/native_upstream_pool.test.ts.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Backend } from "../core/backend.ts";
import type { Flow } from "../core/flow.ts";
import type { CloseReason } from "../core/reasons.ts";
import type { NativeFlow } from "../shell/datapath/native/native_records.ts";
import { backendUsable, type PoolHost, UpstreamPool } from "../shell/datapath/native/upstream_pool.ts";

let nextFd = 100;
/** A closed flow's record as the pool sees it: its flow (reason, backend, knobs) and its fd. */
function closed(backend: Backend, reason: CloseReason = "responses", reuse?: boolean): NativeFlow {
  const flow = {
    closeReason: reason,
    backend,
    knobs: { name: "c", ...(reuse === undefined ? {} : { reuseUpstream: reuse }) },
  } as unknown as Flow;
  return { flow, fd: nextFd++, closed: true } as unknown as NativeFlow;
}

function host(over: Partial<PoolHost> = {}) {
  const released: NativeFlow[] = [];
  const drained: NativeFlow[] = [];
  let now = 0;
  const h: PoolHost = {
    usable: (b) => b.state === "up",
    drain: (nf) => (drained.push(nf), true),
    release: (nf) => released.push(nf),
    clock: () => now,
    ...over,
  };
  return { h, released, drained, set: (t: number) => (now = t) };
}

const be = (port: number) => new Backend({ ip: "127.0.0.1", port, family: 4 }, 1, "up");

describe("upstream socket pool", () => {
  test("only a flow closed by `responses`, to a backend that is up, with reuse on, gives its socket back", () => {
    const { h } = host();
    const pool = new UpstreamPool(h, 8, 100, 1000);
    const b = be(53);
    for (const reason of ["idle", "requests", "drain", "aborted", "disconnected"] as const) {
      assert.equal(pool.put(closed(b, reason), 0), false, reason);
    }
    assert.equal(pool.put(closed(b, "responses", false), 0), false); // reuse_upstream = false
    const down = be(54);
    down.adminState = "down";
    down.refresh();
    assert.equal(pool.put(closed(down), 0), false);
    assert.equal(pool.put(closed(b), 0), true);
    assert.equal(pool.put(closed(b, "responses", true), 0), true);
    assert.equal(pool.size, 2);
    pool.releaseAll();
  });

  test("a socket is handed on only after its quarantine, oldest first, drained, and to its own backend", () => {
    const { h, drained } = host();
    const pool = new UpstreamPool(h, 8, 100, 1000);
    const a = be(53), other = be(5353);
    const first = closed(a), second = closed(a);
    pool.put(first, 0);
    pool.put(second, 10);
    assert.equal(pool.take(a, 99), null); // still in quarantine
    assert.equal(pool.take(other, 500), null); // connected to another backend
    assert.equal(pool.take(a, 100), first);
    assert.deepEqual(drained, [first]);
    assert.equal(pool.take(a, 105), null);
    assert.equal(pool.take(a, 110), second);
    assert.equal(pool.size, 0);
    assert.equal(pool.stats.reused, 2);
    pool.releaseAll();
  });

  test("a socket whose drain fails is closed, and the next one is tried", () => {
    const bad = new Set<NativeFlow>();
    const { h, released } = host({ drain: (nf) => !bad.has(nf) });
    const pool = new UpstreamPool(h, 8, 0, 1000);
    const a = be(53);
    const x = closed(a), y = closed(a);
    bad.add(x);
    pool.put(x, 0);
    pool.put(y, 0);
    assert.equal(pool.take(a, 1), y);
    assert.deepEqual(released, [x]);
    pool.releaseAll();
  });

  test("bounded: past its size a socket is refused (the caller closes it), across backends", () => {
    const { h } = host();
    const pool = new UpstreamPool(h, 3, 100, 1000);
    const a = be(53), b = be(54);
    assert.ok(pool.put(closed(a), 0));
    assert.ok(pool.put(closed(b), 0));
    assert.ok(pool.put(closed(a), 0));
    assert.equal(pool.put(closed(b), 0), false);
    assert.equal(pool.size, 3);
    assert.equal(pool.stats.full, 1);
    // A ring grows past its first 16 slots and keeps its order.
    const big = new UpstreamPool(host().h, 100, 0, 1000);
    const all = Array.from({ length: 40 }, () => closed(a));
    for (const nf of all) big.put(nf, 0);
    for (let k = 0; k < 20; k++) assert.equal(big.take(a, 1), all[k]);
    for (const nf of all.slice(0, 20)) big.put(nf, 2);
    const order = [];
    for (let nf = big.take(a, 3); nf !== null; nf = big.take(a, 3)) order.push(nf);
    assert.deepEqual(order, [...all.slice(20), ...all.slice(0, 20)]);
    pool.releaseAll();
    big.releaseAll();
  });

  test("emptied for a backend that goes down or is removed, and of sockets idle too long", () => {
    const gone = new Set<Backend>();
    const { h, released } = host({ usable: (b) => b.state === "up" && !gone.has(b) });
    const pool = new UpstreamPool(h, 16, 100, 1000);
    const a = be(53), b = be(54), c = be(55);
    pool.put(closed(a), 0);
    pool.put(closed(b), 0);
    pool.put(closed(c), 0);
    pool.put(closed(c), 900);
    pool.sweep(500);
    assert.equal(pool.size, 4);
    a.adminState = "down";
    a.refresh();
    gone.add(b);
    pool.sweep(600);
    assert.equal(pool.sizeOf(a), 0);
    assert.equal(pool.sizeOf(b), 0);
    assert.equal(released.length, 2);
    pool.sweep(1100); // c's first socket: quarantine 100 + idle 1000 ended
    assert.equal(pool.sizeOf(c), 1);
    pool.drop(c);
    assert.equal(pool.size, 0);
    assert.equal(released.length, 4);
  });

  test("the sweep runs by itself while the pool holds sockets; releaseAll stops it", async () => {
    let usable = true;
    const { h, released, set } = host({ usable: () => usable });
    const pool = new UpstreamPool(h, 16, 100, 1000);
    pool.put(closed(be(53)), 0);
    usable = false;
    set(1);
    await new Promise((r) => setTimeout(r, 400)); // one sweep period (250 ms) and slack
    assert.equal(pool.size, 0);
    assert.equal(released.length, 1);
    pool.put(closed(be(54)), 0);
    pool.releaseAll();
    assert.equal(released.length, 2);
  });

  test("backendUsable: up, and still configured or resolved in its cluster", () => {
    const a = be(53), b = be(54), ext = be(55);
    const core = {
      cluster: (name: string) =>
        name === "c" ? { backends: [a], external: new Map([[ext.key, ext]]) } : undefined,
    };
    assert.equal(backendUsable(core, a, "c"), true);
    assert.equal(backendUsable(core, ext, "c"), true);
    assert.equal(backendUsable(core, b, "c"), false);
    assert.equal(backendUsable(core, a, "gone"), false);
    a.adminState = "draining";
    a.refresh();
    assert.equal(backendUsable(core, a, "c"), false);
  });
});
