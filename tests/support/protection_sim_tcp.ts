/**
 * TCP in the edge-protection simulation: connections to a TCP listener with random `[listeners.limits]` pay
 * the per-source new-flow limits and meet the bans like UDP flows, in TCP admission's order (max_flows and
 * the source policy first, then bans, then limits). Each attempt's fate is predicted by the same models and
 * checked, with exactly one counter moved.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Connection } from "../../core/connection.ts";
import type { Listener, TcpListener } from "../../core/listener.ts";
import type { ModelAutoBan } from "./protection_model.ts";
import type { ProtectionSim } from "./protection_sim.ts";
import { AUTO_MAX_FLOWS, IPS, PORTS, REASON_OF } from "./protection_world.ts";

/** The TCP listener's name. */
export const TCP_NAME = "t1";
/** What a TCP attempt may end as (besides a connection). */
export const TCP_DROPS = ["no_backend", "fd_limit", "shed", "invalid", "banned", "rate_limited"] as const;

/** Open connections of the simulation, to end now and then. */
const open = new WeakMap<ProtectionSim, Connection[]>();

/** A client connects (or, now and then, an open connection ends). */
export function opTcp(sim: ProtectionSim): void {
  const l = sim.core.listener(TCP_NAME)!;
  const conns = open.get(sim) ?? [];
  open.set(sim, conns);
  if (conns.length > 0 && sim.chance(0.3)) {
    const conn = conns.splice(sim.int(conns.length), 1)[0];
    sim.label(`endConnection ${conn.clientIp}:${conn.clientPort}`);
    assert.equal(sim.core.endConnection(conn, "closed", sim.now), true);
    return;
  }
  const ip = sim.pick(IPS), port = sim.pick(PORTS);
  sim.label(`openConnection ${ip}:${port}`);
  const m = sim.model(l);
  const exact = sim.exact(l);
  const c = (l as TcpListener).counters;
  const counts = () => [c.connectionsTotal, ...TCP_DROPS.map((d) => c.drops[d])];
  const before = counts();
  const banned = sim.bans.holding(ip, sim.now);
  const autoBans: ModelAutoBan[] = [];
  const limit = l.config.maxFlows > 0 ? l.config.maxFlows : AUTO_MAX_FLOWS;
  // The one admission order UDP and TCP share (core/admission_order.ts): bans and limits, then shed, then
  // the source policy.
  let want: string;
  const v = banned.length > 0 ? null : m.limits?.check(ip, true, 0, sim.now) ?? null;
  if (v?.ban) autoBans.push(v.ban);
  if (banned.length > 0) want = "banned";
  else if (v !== null) want = "rate_limited";
  else if (l.flows >= limit) want = "shed";
  else if (ip.includes("%") || ip.startsWith("224.")) want = "invalid";
  else want = "in";
  const flows = l.flows;
  const r = sim.core.openConnection(l, ip, port, sim.now);
  sim.received.set(l, sim.received.get(l)! + 1);
  const got = typeof r === "number" ? REASON_OF[r] ?? `drop${r}` : "in";
  const moved = counts().map((v, i) => v - before[i]);
  const which = ["in", ...TCP_DROPS].filter((_, i) => moved[i] !== 0);
  if (which.length !== 1 || which[0] !== got || moved.reduce((a, b) => a + b, 0) !== 1) {
    assert.fail(`tcp ${ip}:${port}: returned ${got}, counters moved [${moved.join(" ")}]`);
  }
  const agrees = got === want || (!exact && (got === "rate_limited" || want === "rate_limited"));
  if (!agrees) assert.fail(`tcp ${ip}:${port}: ${got}, the model says ${want}`);
  sim.hit(`tcp:${got}`);
  if (typeof r === "number") {
    if (l.flows !== flows) assert.fail(`tcp ${ip}:${port}: refused (${got}) but a connection counted`);
  } else {
    conns.push(r);
    sim.ledge(l, ip, true, 0);
  }
  sim.takeAutoBans(l, exact, autoBans);
}

/** Checks the TCP listener's counters add up: attempts = connections + each drop reason. */
export function checkTcp(sim: ProtectionSim, l: Listener): void {
  const c = (l as TcpListener).counters;
  const sum = c.connectionsTotal + TCP_DROPS.reduce((s, d) => s + c.drops[d], 0);
  if (sum !== sim.received.get(l)) assert.fail(`tcp: ${sim.received.get(l)} attempts, ${sum} counted`);
}
