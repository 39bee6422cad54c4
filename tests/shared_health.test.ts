/**
 * One health state for several cores (core/health_ledger.ts): probe results and the passive failures of
 * any core go into one record per backend, each transition comes out once; a core that does not own its
 * health reports passive failures instead of judging them and follows the verdicts it is given.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { HealthLedger } from "../core/health_ledger.ts";
import { DEFAULT_HEALTH, type HealthSettings } from "../core/health.ts";
import { RelayCore } from "../core/relay_core.ts";
import type { Listener } from "../core/listener.ts";
import type { Flow } from "../core/flow.ts";
import { backend, bytes, cluster, config, listener } from "./support/fixtures.ts";

const D = bytes(10);

function twoBackends(health: Partial<HealthSettings>) {
  return config([
    cluster({
      health: { ...DEFAULT_HEALTH, ...health },
      backends: [backend("10.0.0.1:53"), backend("10.0.0.2:53")],
    }),
  ], [listener()]);
}

describe("health ledger", () => {
  test("passive failures reported by different cores add up in one window, one transition", () => {
    const ledger = new HealthLedger(twoBackends({ maxFails: 3, failTimeout: 1000 }), 0);
    // Workers 0, 1 and 0 again each saw one refusal: none alone reaches max_fails, together they do.
    assert.equal(ledger.passiveFailure("c", "10.0.0.1:53", "refused", 10), null);
    assert.equal(ledger.passiveFailure("c", "10.0.0.1:53", "refused", 20), null);
    const t = ledger.passiveFailure("c", "10.0.0.1:53", "refused", 30);
    assert.deepEqual(t, {
      cluster: "c",
      backend: "10.0.0.1:53",
      change: { from: "up", to: "down", reason: "3 passive failures within 1000 ms: refused" },
      closeFlows: false,
    });
    assert.equal(ledger.record("c", "10.0.0.1:53")?.status, "down");
    assert.equal(ledger.expiry, 1030);
    assert.deepEqual(ledger.tick(1029), []);
    assert.deepEqual(ledger.tick(1030).map((x) => [x.backend, x.change.to]), [["10.0.0.1:53", "up"]]);
    assert.equal(ledger.expiry, Infinity);
  });

  test("probe results follow rise and fall; a config sync keeps kept records and drops gone ones", () => {
    const cfg = twoBackends({ mode: "tcp", fall: 2, rise: 1, maxFails: 0 });
    const ledger = new HealthLedger(cfg, 0);
    assert.equal(ledger.probeResult("c", "10.0.0.2:53", "refused", 1), null);
    assert.equal(ledger.probeResult("c", "10.0.0.2:53", "refused", 2)?.change.to, "down");
    assert.equal(ledger.probeResult("c", "10.0.0.9:53", "refused", 3), null); // not configured
    const kept = ledger.record("c", "10.0.0.2:53");
    ledger.sync(
      config([cluster({ ...cfg.clusters[0], backends: [backend("10.0.0.2:53")] })], [listener()]),
      5,
    );
    assert.equal(ledger.record("c", "10.0.0.2:53"), kept);
    assert.equal(ledger.record("c", "10.0.0.1:53"), undefined);
    assert.equal(ledger.probeResult("c", "10.0.0.2:53", null, 6)?.change.to, "up");
  });
});

describe("a core whose health is owned elsewhere", () => {
  test("reports passive failures instead of judging them, and adopts verdicts", () => {
    const reports: string[] = [];
    const core = new RelayCore(twoBackends({ maxFails: 1, closeFlowsOnDown: true }), {
      seed: 1,
      reportPassive: (c, b, e) => reports.push(`${c} ${b} ${e}`),
    });
    const l = core.listener("l") as Listener;
    const f = core.fromClient(l, "1.1.1.1", 1, D, 0) as Flow;
    assert.equal(f.backend?.key, "10.0.0.1:53");
    core.sendFailed(f, "to_backend", "refused", 10);
    assert.deepEqual(reports, ["c 10.0.0.1:53 refused (ICMP port unreachable)"]);
    // max_fails = 1 would have taken it down here; the owner has not said so.
    assert.equal(f.backend?.state, "up");
    assert.equal(f.backend?.health.transitions, 0);
    while (core.poll() !== undefined) { /* drain */ }
    core.adoptHealth("c", "10.0.0.1:53", "down", 11);
    assert.equal(f.backend?.state, "down");
    assert.equal(f.backend?.health.transitions, 1);
    // close_flows_on_down: this core closes its own flows on the backend; no "health" event (logged once, elsewhere).
    const events = [];
    for (let e = core.poll(); e !== undefined; e = core.poll()) events.push(e.kind);
    assert.ok(!events.includes("health"), events.join());
    assert.equal(core.flowCount, 0);
    for (let p = 2; p < 6; p++) {
      assert.equal((core.fromClient(l, "1.1.1.1", p, D, 20) as Flow).backend?.key, "10.0.0.2:53");
    }
    core.adoptHealth("c", "10.0.0.1:53", "up", 30);
    assert.equal(core.cluster("c")?.backend("10.0.0.1:53")?.state, "up");
  });
});
