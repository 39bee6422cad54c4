/**
 * Assertions over listener figures that follow the declaration in core/counters.ts, so a new counter is
 * checked without editing a test.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { ListenerMetrics } from "../../core/control_api.ts";
import { snapshotFields } from "../../core/counter_snapshot.ts";

/** `sum` has, for every field declared for its protocol (core/counters.ts), the sum of `a`'s and `b`'s. */
export function assertSummed(
  sum: ListenerMetrics,
  a: ListenerMetrics,
  b: ListenerMetrics,
  what: string,
): void {
  const [s, x, y] = [sum, a, b] as unknown as Record<string, number | Record<string, number>>[];
  for (const field of snapshotFields(sum.protocol)) {
    const v = s[field];
    if (typeof v === "number") {
      assert.equal(v, (x[field] as number) + (y[field] as number), `${what}: ${field}`);
    } else {
      const keys = new Set([...Object.keys(x[field]), ...Object.keys(y[field])]);
      assert.deepEqual(Object.keys(v).sort(), [...keys].sort(), `${what}: ${field} keys`);
      for (const k of keys) {
        const xv = (x[field] as Record<string, number>)[k] ?? 0;
        assert.equal(v[k], xv + ((y[field] as Record<string, number>)[k] ?? 0), `${what}: ${field}.${k}`);
      }
    }
  }
}
