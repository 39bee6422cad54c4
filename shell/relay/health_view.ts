/**
 * A backend's health record as the admin API shows it, for a relay's own core (shell/relay/change_target.ts)
 * and for the workers' one shared record (shell/workers/shared_health.ts) alike.
 *
 * @module
 */

import type { BackendHealth } from "../../core/health.ts";
import type { BackendHealthInfo } from "../../core/control_api.ts";

/**
 * `h` as shown: its times are on a monotonic clock that reads `mono` now, while the wall clock reads
 * `wall`, so they are shown as wall-clock ISO times. `probed`: its cluster's health.mode is not "off".
 */
export function backendHealthInfo(
  h: BackendHealth,
  probed: boolean,
  mono: number,
  wall: number,
): BackendHealthInfo {
  const wallTime = (t: number) => new Date(wall - (mono - t)).toISOString();
  return {
    status: h.status,
    probed,
    since: wallTime(h.changedAt),
    lastError: h.lastError,
    okStreak: h.okStreak,
    failStreak: h.failStreak,
    passiveUntil: h.passiveUntil < 0 ? null : wallTime(h.passiveUntil),
    transitions: h.transitions,
  };
}
