import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { BANDWIDTH_ALPHA, LOSS_WINDOW, Quality, SAMPLE_MS } from "../core/quality.ts";
import { DeadlineHeap } from "../core/deadlines.ts";

describe("quality formulas", () => {
  test("bandwidth is an EWMA over the bytes since the last sample, not totals", () => {
    const q = new Quality(0);
    q.onClient(1000, 0);
    q.onBackend(1000, 500);
    assert.equal(q.bandwidth(999), 0); // no sample yet
    // First sample: 2000 bytes over 1000 ms.
    assert.equal(q.bandwidth(SAMPLE_MS), 2000);
    // Next window: 500 bytes over 1000 ms → ewma = 2000 + α(500 − 2000).
    q.onClient(500, 1500);
    assert.equal(q.bandwidth(2000), 2000 + BANDWIDTH_ALPHA * (500 - 2000));
    // An idle window pulls it down towards zero.
    assert.equal(q.bandwidth(3000), 1625 + BANDWIDTH_ALPHA * (0 - 1625));
  });

  test("a datagram after a gap opens the new window instead of inflating the idle one", () => {
    const q = new Quality(0);
    q.onClient(100, 0);
    q.onClient(9000, 10_000);
    assert.equal(q.bandwidth(10_000), 100 * 1000 / 10_000);
    assert.equal(q.windowBytes, 9000);
  });

  test("latency: a reply with one request outstanding pairs with it; srtt and jitter as RFC 6298", () => {
    const q = new Quality(0);
    q.onClient(10, 0);
    q.onClient(10, 0.5); // no reply before the next: the first is unanswered, the latest is the one awaited
    assert.equal(q.unanswered, 1);
    q.onBackend(10, 40.5);
    assert.equal(q.srtt, 40);
    assert.equal(q.rttvar, 20);
    q.onBackend(10, 45); // nothing outstanding: an extra reply, no sample
    assert.equal(q.srtt, 40);
    assert.equal(q.samples, 1);
    q.onClient(10, 100);
    q.onBackend(10, 120); // sample 20
    assert.equal(q.rttvar, 20 + (Math.abs(20 - 40) - 20) / 4);
    assert.equal(q.srtt, 40 + (20 - 40) / 8);
  });

  test("loss per-mille, halved past the window", () => {
    const q = new Quality(0);
    for (let i = 0; i < 90; i++) q.onClient(1, i);
    for (let i = 0; i < 10; i++) q.onDrop();
    assert.equal(q.lossPermille, 100);
    for (let i = 0; i < LOSS_WINDOW; i++) q.onClient(1, 100);
    assert.ok(q.handled <= LOSS_WINDOW);
    assert.ok(q.dropped < 10 && q.dropped > 0);
    assert.ok(q.lossPermille >= 0 && q.lossPermille <= 1000);
  });

  test("priority = srtt + 2·jitter + loss/2 + min(KiB/s, 10000)/100, lower is better", () => {
    const good = new Quality(0);
    good.onClient(1024, 0);
    good.onBackend(1024, 10);
    const p = good.priority(1000);
    // srtt 10, jitter 5, loss 0, 2 KiB over 1 s.
    assert.equal(p, Math.round(10 + 2 * 5 + 0 + 2 / 100));
    const bad = new Quality(0);
    bad.onClient(10, 0);
    bad.onBackend(10, 200);
    bad.onDrop();
    assert.ok(bad.priority(1000) > p);
    // Cached until an input changes, then recomputed.
    assert.equal(good.priority(1000), p);
    good.onClient(10, 1001);
    good.onBackend(10, 1041);
    assert.notEqual(good.priority(1200), p);
  });
});

describe("deadline heap", () => {
  test("pops in deadline order and skips stale generations", () => {
    const heap = new DeadlineHeap<{ timerGen: number; id: number }>();
    const items = [5, 1, 4, 2, 3].map((at) => ({ timerGen: 0, id: at }));
    for (const it of items) heap.push(it.id * 10, it);
    items[2].timerGen++; // id 4 is stale
    assert.equal(heap.peek(), 10);
    const out: number[] = [];
    for (let it = heap.popDue(100); it !== undefined; it = heap.popDue(100)) out.push(it.id);
    assert.deepEqual(out, [1, 2, 3, 5]);
    assert.equal(heap.peek(), Infinity);
  });

  test("popDue leaves entries that are not yet due", () => {
    const heap = new DeadlineHeap<{ timerGen: number }>();
    const a = { timerGen: 0 };
    heap.push(50, a);
    assert.equal(heap.popDue(49), undefined);
    assert.equal(heap.popDue(50), a);
  });
});

describe("deadline heap compaction", () => {
  test("compact drops stale entries and keeps heap order", () => {
    const heap = new DeadlineHeap<{ timerGen: number; id: number }>();
    const items = Array.from({ length: 1000 }, (_, i) => ({ timerGen: 0, id: i }));
    // Deadlines in a scrambled order.
    for (const it of items) heap.push((it.id * 7919) % 1000, it);
    for (const it of items) if (it.id % 3 !== 0) it.timerGen++;
    heap.compact();
    assert.equal(heap.size, 334);
    const out: number[] = [];
    for (let it = heap.popDue(1e9); it !== undefined; it = heap.popDue(1e9)) out.push((it.id * 7919) % 1000);
    assert.equal(out.length, 334);
    for (let i = 1; i < out.length; i++) assert.ok(out[i - 1] <= out[i]);
  });
});
