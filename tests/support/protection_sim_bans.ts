/**
 * Operator bans in the edge-protection simulation: placed, lifted and listed through the core's ban table
 * and mirrored in the model, which then predicts every new flow's fate (tests/support/protection_sim.ts).
 *
 * @module
 */

import assert from "node:assert/strict";
import type { ProtectionSim } from "./protection_sim.ts";
import { BAN_BLOCKS, BAN_TTLS } from "./protection_world.ts";

/** The operator bans a block (any spelling) for a while or for good. */
export function opBan(sim: ProtectionSim): void {
  const cidr = sim.pick(BAN_BLOCKS);
  const ttl = sim.pick(BAN_TTLS);
  sim.label(`ban ${cidr} ttl ${ttl}`);
  const ban = sim.core.protection.bans.add({ cidr, ttlMs: ttl, reason: "sim", origin: "api" }, sim.now);
  if (typeof ban === "string") assert.fail(`ban ${cidr}: ${ban}`);
  const key = sim.bans.add(cidr, ttl, sim.now);
  if (ban.cidr !== key) assert.fail(`ban ${cidr} is held as ${ban.cidr}, the model says ${key}`);
  sim.hit(cidr.startsWith("::ffff:") ? "ban:mapped" : "ban:add");
}

/** The operator lifts the ban on a block, by any spelling of it. */
export function opUnban(sim: ProtectionSim): void {
  const cidr = sim.pick(BAN_BLOCKS);
  sim.label(`unban ${cidr}`);
  const had = sim.core.protection.bans.get(cidr) !== undefined;
  const removed = sim.core.protection.bans.remove(cidr);
  if (removed !== had) assert.fail(`remove ${cidr}: ${removed}, get said ${had}`);
  sim.bans.remove(cidr, sim.now);
  if (removed) sim.hit("ban:removed");
}

/** The operator lists the bans: exactly the live ones of the model. */
export function opListBans(sim: ProtectionSim): void {
  sim.label("list bans");
  const listed = sim.core.protection.bans.list(sim.now).map((b) => b.cidr).sort().join(" ");
  const want = sim.bans.live(sim.now).join(" ");
  if (listed !== want) assert.fail(`bans listed [${listed}], the model has [${want}]`);
  if (sim.core.protection.bans.size !== sim.bans.live(sim.now).length) {
    assert.fail("ban count after list");
  }
}
