/**
 * Regression (issue 12, finding 3): the automatic max_flows was per listener ((limit − 128)/2 each), so
 * three listeners could use every descriptor and take the admin API down. Now one budget covers the
 * process's flows (1 descriptor) and TCP connections (2) across listeners, with a reserve and room for
 * the admin API; a full budget refuses new ones, counted as fd_limit and reported once per episode.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { descriptorBudget, FD_ADMIN, FD_RESERVE, workerShare } from "../core/fd_budget.ts";
import { FD_PER_ADMIN_CONNECTION, MAX_ADMIN_CONNECTIONS, MAX_ADMIN_REFUSING } from "../core/limits.ts";
import { type CoreEvent, RelayCore } from "../core/relay_core.ts";
import { Drop, type Listener } from "../core/listener.ts";
import { addr, bytes, cluster, config, listener } from "./support/fixtures.ts";

function events(core: RelayCore): CoreEvent[] {
  const out: CoreEvent[] = [];
  for (let e = core.poll(); e !== undefined; e = core.poll()) out.push(e);
  return out;
}

describe("descriptor budget", () => {
  test("the arithmetic: reserve, admin room, the rest for flows, split over workers", () => {
    const b = descriptorBudget(1024, 3);
    assert.equal(b.reserve, FD_RESERVE + 3);
    assert.equal(b.admin, FD_ADMIN);
    assert.equal(b.relay, 1024 - FD_RESERVE - 3 - FD_ADMIN);
    assert.ok(b.reserve + b.admin + b.relay <= b.limit, "never more than the limit");
    assert.equal(descriptorBudget(1024, 3, 2).reserve, FD_RESERVE + 6, "each worker binds each listener");
    assert.equal(descriptorBudget(100, 1).relay, 64, "a floor for tiny limits");
    assert.equal(workerShare(1000, 3), 333);
  });

  test("the admin room holds the admin API's capped connections and refusals, and its thread's own", () => {
    const capped = MAX_ADMIN_CONNECTIONS * FD_PER_ADMIN_CONNECTION + MAX_ADMIN_REFUSING;
    assert.ok(FD_ADMIN >= capped + 16, `${FD_ADMIN} descriptors for ${capped} at the caps`);
  });

  test("flows of every listener and TCP connections share one budget; refusals are counted and told once", () => {
    const cfg = config([cluster()], [
      listener({ name: "a" }),
      listener({ name: "b", address: addr("127.0.0.1:7001") }),
      listener({ name: "t", protocol: "tcp", address: addr("127.0.0.1:7002") }),
    ]);
    const core = new RelayCore(cfg, { seed: 1, autoMaxFlows: 100, descriptorBudget: 5 });
    const [a, b, t] = ["a", "b", "t"].map((n) => core.listener(n) as Listener);
    const d = bytes(10);
    assert.equal(typeof core.fromClient(a, "10.1.0.1", 1000, d, 0), "object");
    assert.equal(typeof core.fromClient(b, "10.1.0.2", 1000, d, 0), "object");
    const conn = core.openConnection(t, "10.1.0.3", 1000, 0); // two descriptors: 4 in use
    assert.equal(typeof conn, "object");
    assert.equal(core.openConnection(t, "10.1.0.4", 1000, 0), Drop.FdLimit, "a connection needs two");
    assert.equal(typeof core.fromClient(a, "10.1.0.5", 1000, d, 0), "object"); // 5 in use
    assert.equal(core.fromClient(b, "10.1.0.6", 1000, d, 0), Drop.FdLimit);
    assert.equal(core.fromClient(a, "10.1.0.7", 1000, d, 0), Drop.FdLimit);
    assert.deepEqual([a, b, t].map((l) => l.counters.drops.fd_limit), [1, 1, 1]);
    assert.equal(a.counters.drops.shed, 0, "not counted as an ordinary shed");
    assert.deepEqual(events(core).filter((e) => e.kind === "fd_limit"), [{ kind: "fd_limit", budget: 5 }]);
    // Established flows carry on.
    assert.equal(typeof core.fromClient(a, "10.1.0.1", 1000, d, 1), "object");
    // Below 90% of the budget the episode ends; the next refusal is told again.
    core.closeAll("disconnected");
    if (typeof conn === "object") core.endConnection(conn, "closed", 2);
    events(core);
    for (let i = 0; i < 5; i++) assert.equal(typeof core.fromClient(a, `10.2.0.${i}`, 1, d, 3), "object");
    assert.equal(core.fromClient(a, "10.3.0.1", 1, d, 3), Drop.FdLimit);
    assert.equal(events(core).filter((e) => e.kind === "fd_limit").length, 1);
  });

  test("with max_flows = 0 (the budget), a full budget is told as fd_limit, not as an ordinary shed", () => {
    const core = new RelayCore(config(), { seed: 1, autoMaxFlows: 2, descriptorBudget: 2 });
    const l = core.listener("l") as Listener;
    for (let i = 0; i < 2; i++) {
      assert.equal(typeof core.fromClient(l, `10.0.9.${i}`, 1, bytes(4), 0), "object");
    }
    assert.equal(core.fromClient(l, "10.0.9.9", 1, bytes(4), 0), Drop.FdLimit);
    assert.deepEqual([l.counters.drops.fd_limit, l.counters.drops.shed], [1, 0]);
  });
});
