// Adding up relay workers' snapshots (shell/relay/aggregate.ts): counters summed per listener, cluster and
// backend, states from the first worker, flows listed oldest first with "worker:id" ids.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { MetricsSnapshot, StatusInfo } from "../core/control_api.ts";
import { assertSummed } from "./support/counters.ts";
import { mergeFlows, mergeMetrics, mergeStatus, type PoolFacts } from "../shell/relay/aggregate.ts";
import { FakeControl, flow } from "./support/fake_control.ts";

const PROCESS = { residentBytes: 1, heapUsedBytes: 2, uptimeSeconds: 3, startTimeSeconds: 4 };

describe("mergeMetrics", () => {
  test("sums every counter of two workers, keyed records included", () => {
    const one = new FakeControl().metricsNow();
    const merged = mergeMetrics([one, one], PROCESS);
    assert.equal(merged.listeners.length, one.listeners.length);
    for (const [i, l] of merged.listeners.entries()) {
      const o = one.listeners[i];
      assert.equal(l.name, o.name);
      assert.equal(l.protocol, o.protocol);
      assertSummed(l, o, o, `listener ${l.name}`);
    }
    const backend = merged.clusters[0].backends[1];
    assert.equal(backend.address, one.clusters[0].backends[1].address);
    assert.equal(backend.weight, one.clusters[0].backends[1].weight); // a setting, not a counter
    assert.equal(backend.flowsTotal, 2 * one.clusters[0].backends[1].flowsTotal);
    assert.equal(merged.clusters[0].failOpen, 2 * one.clusters[0].failOpen);
    assert.deepEqual(merged.process, PROCESS);
  });

  test("keys only one worker has (mid-change) are kept", () => {
    const one = new FakeControl().metricsNow();
    const fewer: MetricsSnapshot = {
      ...one,
      listeners: one.listeners.slice(1),
      clusters: [{ ...one.clusters[0], backends: one.clusters[0].backends.slice(0, 1) }],
    };
    const merged = mergeMetrics([fewer, one], PROCESS);
    assert.deepEqual(merged.listeners.map((l) => l.name).sort(), one.listeners.map((l) => l.name).sort());
    assert.equal(merged.clusters.length, one.clusters.length);
    assert.equal(merged.clusters[0].backends.length, one.clusters[0].backends.length);
    const only = merged.listeners.find((l) => l.name === one.listeners[0].name)!;
    assert.deepEqual(only, one.listeners[0]);
  });
});

describe("mergeStatus", () => {
  test("activity summed, draining if any worker drains, facts from the pool", async () => {
    const control = new FakeControl();
    control.flowList = [flow({ id: "1", client: "192.0.2.1:1" })];
    const a: StatusInfo = await control.status();
    const b: StatusInfo = {
      ...a,
      draining: true,
      listeners: a.listeners.map((l) => ({ ...l, address: null })),
    };
    const facts: PoolFacts = { ...a, workers: 2, configHash: "h" };
    const merged = mergeStatus([b, a], facts);
    assert.equal(merged.workers, 2);
    assert.equal(merged.configHash, "h");
    assert.equal(merged.draining, true);
    const game = merged.listeners.find((l) => l.name === "game")!;
    assert.equal(game.active, 2);
    assert.equal(game.address, "127.0.0.1:7000"); // the first worker that reports one
  });
});

describe("mergeFlows", () => {
  test("ids name their worker; oldest first across workers", () => {
    const merged = mergeFlows([
      [flow({ id: "1", client: "a:1", ageSeconds: 9 }), flow({ id: "2", client: "a:2", ageSeconds: 1 })],
      [flow({ id: "1", client: "b:1", ageSeconds: 5 })],
    ]);
    assert.deepEqual(merged.map((f) => f.id), ["0:1", "1:1", "0:2"]);
  });
});
