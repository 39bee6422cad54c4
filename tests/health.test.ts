import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  BackendHealth,
  decodeEscaped,
  decodeHex,
  DEFAULT_HEALTH,
  encodeEscaped,
  type HealthSettings,
  matchesExpect,
} from "../core/health.ts";
import { RelayCore } from "../core/relay_core.ts";
import { Drop, type Listener } from "../core/listener.ts";
import type { Flow } from "../core/flow.ts";
import { backend, bytes, cluster, config, listener } from "./support/fixtures.ts";

const PROBES: HealthSettings = { ...DEFAULT_HEALTH, mode: "udp", send: new Uint8Array([1]), maxFails: 0 };

describe("health record", () => {
  test("fall failed probes take it down, rise successes bring it up; streaks reset each other", () => {
    const h = new BackendHealth(0);
    assert.equal(h.probe("timeout", 1, PROBES), null);
    assert.equal(h.probe("timeout", 2, PROBES), null);
    h.probe(null, 3, PROBES); // resets the failure streak
    assert.equal(h.probe("timeout", 4, PROBES), null);
    assert.equal(h.probe("timeout", 5, PROBES), null);
    const down = h.probe("mismatch", 6, PROBES);
    assert.deepEqual(down, { from: "up", to: "down", reason: "3 failed probes: mismatch" });
    assert.equal(h.changedAt, 6);
    assert.equal(h.lastError, "mismatch");
    assert.equal(h.probe(null, 7, PROBES), null);
    assert.equal(h.probe(null, 8, PROBES)?.to, "up");
  });

  test("passive: max_fails within fail_timeout, restored when the window ends", () => {
    const s: HealthSettings = { ...DEFAULT_HEALTH, maxFails: 3, failTimeout: 1000 };
    const h = new BackendHealth(0);
    assert.equal(h.passive("refused", 0, s), null);
    assert.equal(h.passive("refused", 500, s), null);
    assert.equal(h.passive("refused", 1200, s), null); // the one at 0 fell out of the window
    assert.equal(h.passive("refused", 1300, s)?.to, "down");
    assert.equal(h.passiveUntil, 2300);
    assert.equal(h.expire(2299, s), null);
    assert.equal(h.expire(2300, s)?.to, "up");
  });

  test("a passive window does not restore a backend the probes judge down", () => {
    const s: HealthSettings = { ...PROBES, maxFails: 1, failTimeout: 100 };
    const h = new BackendHealth(0);
    h.passive("refused", 0, s);
    for (let t = 1; t <= 3; t++) h.probe("timeout", t, s);
    assert.equal(h.expire(200, s), null);
    assert.equal(h.status, "down");
  });

  test("max_fails = 0 turns passive detection off", () => {
    const h = new BackendHealth(0);
    for (let i = 0; i < 100; i++) assert.equal(h.passive("refused", i, PROBES), null);
    assert.equal(h.status, "up");
  });

  test("expect: exact, prefix, regex over Latin-1", () => {
    const reply = new Uint8Array([0xff, 0x49, 0x41, 0x42]);
    assert.ok(matchesExpect(null, reply));
    assert.ok(matchesExpect({ kind: "exact", bytes: reply.slice() }, reply));
    assert.ok(!matchesExpect({ kind: "exact", bytes: reply.slice(0, 3) }, reply));
    assert.ok(matchesExpect({ kind: "prefix", bytes: reply.slice(0, 2) }, reply));
    assert.ok(!matchesExpect({ kind: "prefix", bytes: new Uint8Array([0xfe]) }, reply));
    assert.ok(matchesExpect({ kind: "regex", source: "^\\xffI[A-Z]+$" }, reply));
    assert.ok(!matchesExpect({ kind: "regex", source: "^PONG" }, reply));
  });

  test("escaped text and hex decode; encoding round-trips", () => {
    assert.deepEqual(decodeEscaped("a\\x00\\xff\\n\\\\"), new Uint8Array([0x61, 0, 0xff, 10, 92]));
    assert.equal(typeof decodeEscaped("\\q"), "string");
    assert.equal(typeof decodeEscaped("\\x4"), "string");
    assert.equal(typeof decodeEscaped("€"), "string");
    assert.deepEqual(decodeHex("ff 00 0a"), new Uint8Array([0xff, 0, 10]));
    assert.equal(typeof decodeHex("abc"), "string");
    const all = new Uint8Array(256).map((_, i) => i);
    assert.deepEqual(decodeEscaped(encodeEscaped(all)), all);
  });
});

describe("health in the core", () => {
  function setup(over: Partial<HealthSettings>, failOpen = true) {
    const core = new RelayCore(
      config([
        cluster({
          failOpen,
          balancer: "round_robin",
          health: { ...DEFAULT_HEALTH, ...over },
          backends: [backend("10.0.0.1:53"), backend("10.0.0.2:53")],
        }),
      ], [listener()]),
      { seed: 1 },
    );
    return { core, l: core.listener("l") as Listener };
  }
  const D = bytes(10);

  test("a backend probed down gets no new flows; pinned flows stay; probes bring it back", () => {
    const { core, l } = setup({ mode: "udp", send: D, fall: 2, rise: 1, maxFails: 0 });
    const pinned = core.fromClient(l, "1.1.1.1", 1, D, 0) as Flow;
    assert.equal(pinned.backend?.key, "10.0.0.1:53");
    assert.equal(core.poll()?.kind, "open");
    core.probeResult("c", "10.0.0.1:53", "timeout", 1);
    core.probeResult("c", "10.0.0.1:53", "timeout", 2);
    const ev = core.poll();
    assert.equal(ev?.kind, "health");
    for (let p = 2; p < 10; p++) {
      assert.equal((core.fromClient(l, "1.1.1.1", p, D, 3) as Flow).backend?.key, "10.0.0.2:53");
    }
    assert.equal(core.fromClient(l, "1.1.1.1", 1, D, 3), pinned);
    core.probeResult("c", "10.0.0.1:53", null, 4);
    const keys = [20, 21].map((p) => (core.fromClient(l, "1.1.1.1", p, D, 5) as Flow).backend?.key);
    assert.ok(keys.includes("10.0.0.1:53"));
  });

  test("passive ECONNREFUSED marks a backend down, and it returns after fail_timeout", () => {
    const { core, l } = setup({ maxFails: 1, failTimeout: 1000 });
    const f = core.fromClient(l, "1.1.1.1", 1, D, 0) as Flow;
    core.sendFailed(f, "to_backend", "refused", 10);
    assert.equal(f.backend?.state, "down");
    for (let p = 2; p < 6; p++) {
      assert.equal((core.fromClient(l, "1.1.1.1", p, D, 20) as Flow).backend?.key, "10.0.0.2:53");
    }
    // The window ends at 1010: the next admission restores it without any timer.
    const keys = [6, 7].map((p) => (core.fromClient(l, "1.1.1.1", p, D, 1010) as Flow).backend?.key);
    assert.ok(keys.includes("10.0.0.1:53"));
    const changes = [];
    for (let e = core.poll(); e !== undefined; e = core.poll()) {
      if (e.kind === "health") changes.push(e.change.to);
    }
    assert.deepEqual(changes, ["down", "up"]);
  });

  test("all down: fail open counts, fail closed drops as NoBackend", () => {
    for (const failOpen of [true, false]) {
      const { core, l } = setup({ mode: "udp", send: D, fall: 1, maxFails: 0 }, failOpen);
      core.probeResult("c", "10.0.0.1:53", "timeout", 1);
      core.probeResult("c", "10.0.0.2:53", "timeout", 1);
      const r = core.fromClient(l, "1.1.1.1", 1, D, 2);
      if (failOpen) {
        assert.equal(typeof r, "object");
        assert.equal(core.cluster("c")?.counters.failOpen, 1);
        // Logged once per episode: a second fail-open flow adds no event; a usable backend ends the episode.
        core.fromClient(l, "1.1.1.1", 2, D, 3);
        const kinds = () => {
          const out: string[] = [];
          for (let e = core.poll(); e !== undefined; e = core.poll()) out.push(e.kind);
          return out;
        };
        assert.equal(kinds().filter((k) => k === "fail_open").length, 1);
        core.probeResult("c", "10.0.0.1:53", null, 4);
        core.probeResult("c", "10.0.0.1:53", null, 5);
        core.fromClient(l, "1.1.1.1", 3, D, 6);
        assert.equal(core.cluster("c")?.failingOpen, false);
      } else assert.equal(r, Drop.NoBackend);
    }
  });

  test("close_flows_on_down closes the backend's pinned flows", () => {
    const { core, l } = setup({ mode: "udp", send: D, fall: 1, maxFails: 0, closeFlowsOnDown: true });
    const f = core.fromClient(l, "1.1.1.1", 1, D, 0) as Flow;
    core.probeResult("c", f.backend?.key as string, "timeout", 1);
    assert.equal(f.closeReason, "aborted");
  });

  test("admin state wins over health: draining stays draining while healthy", () => {
    const { core } = setup({});
    core.setBackendState("c", "10.0.0.1:53", "draining");
    core.probeResult("c", "10.0.0.1:53", null, 1);
    assert.equal(core.cluster("c")?.backend("10.0.0.1:53")?.state, "draining");
  });
});
