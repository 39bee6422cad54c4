/**
 * The peak_ewma balancer through the core, on simulated time: new flows follow the faster backend once both
 * have latency samples, and drift back towards an even split when the slow one recovers.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { RelayCore } from "../core/relay_core.ts";
import type { Flow } from "../core/flow.ts";
import type { Candidate } from "../core/balancers/balancer.ts";
import { PeakEwmaBalancer } from "../core/balancers/peak_ewma.ts";
import { Rng } from "../core/rng.ts";
import { backend, bytes, cluster, config, listener } from "./support/fixtures.ts";

const FAST = "10.0.0.1:9000";
const SLOW = "10.0.0.2:9000";
// Longer than the slow backend's answer time: request/response, so every reply pairs with its request.
const TICK = 60;
/** Each flow makes one request per tick and lives this many ticks. */
const LIFE = 50;

interface Sim {
  readonly core: RelayCore;
  /** Backend answer time by key, ms; changeable mid-run. */
  readonly delay: Map<string, number>;
  /** New flows per backend key between `from` and `to` (ms). */
  count(from: number, to: number): Map<string, number>;
  run(until: number): void;
}

function simulate(states: { fast: "up" | "down"; slow: "up" | "down" } = { fast: "up", slow: "up" }): Sim {
  const cfg = config([
    cluster({
      balancer: "peak_ewma",
      backends: [backend(FAST, 1, states.fast), backend(SLOW, 1, states.slow)],
    }),
  ], [listener()]);
  const core = new RelayCore(cfg, { seed: 16 });
  const l = core.listener("l")!;
  const delay = new Map([[FAST, 5], [SLOW, 50]]);
  const admitted: { at: number; key: string }[] = [];
  const live: { flow: Flow; born: number }[] = [];
  let replies: { at: number; flow: Flow }[] = [];
  const payload = bytes(32);
  let t = 0;
  let port = 1;
  const run = (until: number) => {
    for (; t < until; t += TICK) {
      // Replies due by now, in time order, then this tick's requests and one new client.
      replies.sort((a, b) => a.at - b.at);
      const due = replies.filter((r) => r.at <= t);
      replies = replies.filter((r) => r.at > t);
      for (const r of due) core.fromBackend(r.flow, 32, r.at);
      for (let i = live.length - 1; i >= 0; i--) {
        if (t - live[i].born >= LIFE * TICK) {
          core.close(live[i].flow, "idle");
          live.splice(i, 1);
        }
      }
      const f = core.fromClient(l, "198.51.100.7", port++, payload, t);
      assert.equal(typeof f, "object");
      const flow = f as Flow;
      admitted.push({ at: t, key: flow.backend!.key });
      live.push({ flow, born: t });
      for (const x of live) {
        if (x.flow.requests > 0 && x.born !== t) {
          core.fromClient(l, x.flow.clientIp, x.flow.clientPort, payload, t);
        }
        replies.push({ at: t + delay.get(x.flow.backend!.key)!, flow: x.flow });
      }
      while (core.poll() !== undefined) { /* closed events: nothing to release */ }
    }
  };
  const count = (from: number, to: number) => {
    const out = new Map([[FAST, 0], [SLOW, 0]]);
    for (const a of admitted) if (a.at >= from && a.at < to) out.set(a.key, out.get(a.key)! + 1);
    return out;
  };
  return { core, delay, count, run };
}

describe("peak_ewma balancer", () => {
  test("5 ms against 50 ms: at least 70% of new flows go to the fast backend, then back towards even", () => {
    const sim = simulate();
    sim.run(20_000);
    const early = sim.count(5_000, 20_000);
    const fastShare = early.get(FAST)! / (early.get(FAST)! + early.get(SLOW)!);
    assert.ok(fastShare >= 0.7, `fast share ${fastShare.toFixed(3)}`);
    assert.ok(early.get(SLOW)! > 0, "the slow backend still gets some flows (cost × (flows + 1))");
    // The slow backend recovers: both answer in 5 ms.
    sim.delay.set(SLOW, 5);
    sim.run(80_000);
    const late = sim.count(60_000, 80_000);
    const lateShare = late.get(FAST)! / (late.get(FAST)! + late.get(SLOW)!);
    assert.ok(lateShare > 0.35 && lateShare < 0.65, `fast share after recovery ${lateShare.toFixed(3)}`);
    assert.ok(Math.abs(lateShare - 0.5) < Math.abs(fastShare - 0.5));
  });

  test("health is respected: a down backend gets nothing however fast", () => {
    const sim = simulate({ fast: "down", slow: "up" });
    sim.run(2_000);
    assert.equal(sim.count(0, 2_000).get(FAST), 0);
  });

  test("weights divide the cost; without samples the pair is settled by flows per weight", () => {
    const b = new PeakEwmaBalancer();
    const rng = new Rng(1);
    const cost = (ms: number) => ({ peakCost: () => ms });
    const heavy: Candidate = { key: "a", weight: 3, flows: 0, quality: cost(10) };
    const light: Candidate = { key: "b", weight: 1, flows: 0, quality: cost(5) };
    // 10 × 1 / 3 < 5 × 1 / 1: the heavier one wins though slower.
    for (let i = 0; i < 20; i++) assert.equal(b.pick([heavy, light], 1, 0, rng, 0), 0);
    const unsampled: Candidate = { key: "c", weight: 1, flows: 0, quality: cost(0) };
    const busy: Candidate = { key: "d", weight: 1, flows: 5, quality: cost(1) };
    for (let i = 0; i < 20; i++) assert.equal(b.pick([busy, unsampled], 2, 0, rng, 0), 1);
  });
});
