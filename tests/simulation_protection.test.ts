/**
 * Deterministic simulation of edge protection in the sans-io core: a seeded RNG drives client datagrams from
 * a small population of IPv4, IPv6 and IPv4-mapped sources (new and established flows), backend replies,
 * clock jumps, timeouts, bans placed, lifted and listed, reconfigured protection, sprays of fresh sources and
 * TCP connections (tests/support/protection_sim_tcp.ts), against one `RelayCore` whose listeners get random
 * `[listeners.limits]`, `[listeners.filter]` and `[listeners.amplification]` settings (limits only on the TCP
 * one). Each datagram's and connection's fate is predicted by naive models
 * (tests/support/protection_model.ts) and checked, with these invariants after every step:
 * - every client datagram is forwarded or counted under exactly one drop reason, and per listener
 *   received = datagrams_in + the sum of the client-side drop counters (replies: out + amplified + late);
 * - a refused datagram allocates nothing; over-limit sources never get a flow: in any window, admissions per
 *   source IP and prefix stay within burst + rate × window (plus one burst per eviction, the table's
 *   documented fail-open), whatever the model;
 * - a source under a live ban gets no new flow (and the ban counts the hit), and gets one after expiry;
 *   automatic bans appear exactly when the model says (ban_after over a limit), for ban_for;
 * - the amplification guard never lets a flow's replies exceed ratio × its bytes received until it has
 *   sent `datagrams` datagrams, and bites exactly then;
 * - limiter memory is fixed: entries ≤ capacity and bytes constant, however many sources spray;
 * - the top-talker totals (drops, new flows, datagrams, bytes) equal what the listeners counted.
 *
 * The limiter model is exact while a table has evicted nothing; after an eviction that listener's limit
 * verdicts are only checked against the window bound. Knobs as tests/simulation.test.ts (FERRY_SIM_SEEDS,
 * FERRY_SIM_BASE, FERRY_SIM_STEPS, FERRY_SIM_SEED, FERRY_SIM_TRACE, FERRY_SIM_STATS).
 *
 * @module
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ProtectionSim } from "./support/protection_sim.ts";
import { simEnv, simIntEnv } from "./support/sim_knobs.ts";

const SEEDS = simIntEnv("FERRY_SIM_SEEDS", 300);
const BASE = simIntEnv("FERRY_SIM_BASE", 1);
/** Half the main simulation's steps: each step here is cheap but a spray is many datagrams. */
const STEPS = Math.max(1, Math.floor(simIntEnv("FERRY_SIM_STEPS", 400) / 2));
const ONLY = simEnv("FERRY_SIM_SEED");
const TRACE = simEnv("FERRY_SIM_TRACE") === "1";

function simulate(seed: number, steps = STEPS): ProtectionSim {
  const sim = new ProtectionSim(seed, steps, TRACE);
  sim.run();
  return sim;
}

/** Paths every default-sized run must reach. */
const MUST_HIT = [
  ...["in", "rate_limited", "filtered", "banned", "shed", "invalid", "truncated"].map((r) =>
    `client:new:${r}`
  ),
  "client:known:in",
  "client:known:rate_limited",
  "reply:out",
  "reply:amplified",
  "reply:late",
  "ban:add",
  "ban:mapped",
  "ban:auto",
  "ban:removed",
  "ban:admitted-after-expiry",
  "limiter:evicting",
  "limiter:loose-verdict",
  "reconfigure:kept",
  "reconfigure:new",
  "spray",
  ...["in", "rate_limited", "banned", "shed", "invalid"].map((r) => `tcp:${r}`),
];

describe("edge protection simulation", () => {
  if (ONLY !== undefined && ONLY !== "") {
    test(`seed ${ONLY} × ${STEPS} steps`, () => {
      const sim = simulate(Number(ONLY));
      if (TRACE) console.log(Object.fromEntries([...sim.hits].sort()));
    });
    return;
  }
  const totals = new Map<string, number>();
  let runs = 0;
  const CHUNK = Math.max(1, Math.floor(10_000 / STEPS));
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
  test("the runs reached every protection path", () => {
    if (simEnv("FERRY_SIM_STATS") === "1") console.log(Object.fromEntries([...totals].sort()));
    if (runs < 100 || STEPS < 100) return; // too small a run to demand everything
    const missed = MUST_HIT.filter((k) => !totals.has(k));
    assert.deepEqual(missed, [], `never reached: ${missed.join(", ")}`);
  });
  test("a seed replays exactly", () => {
    assert.deepEqual(simulate(BASE, 100).ring, simulate(BASE, 100).ring);
  });
});
