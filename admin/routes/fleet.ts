/**
 * `GET /api/v1/fleet` (the live instances of the fleet, from their heartbeats in Redis) and the
 * `?scope=fleet` of the backend routes: the change is applied here first, as any change, then written to
 * Redis and announced, and every instance of the fleet applies it.
 *
 * @module
 */

import { Hono } from "hono";
import type { Applied } from "../apply.ts";
import type { FleetAccess } from "../../core/control_api.ts";
import { ApiError } from "../errors.ts";
import { choiceOf, queryOf } from "../validate.ts";

const NOT_IN_A_FLEET =
  "this instance is not in a fleet: set [fleet] instance (and [redis] url) in its config";

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * `?scope=local` (the default) or `?scope=fleet`: for fleet, the fleet to share the change with, checked
 * before anything changes (409 when not in a fleet, 503 while Redis is unreachable); null for local.
 */
export function fleetScope(query: Record<string, string>, fleet: FleetAccess | null): FleetAccess | null {
  if (choiceOf(query, "scope", ["local", "fleet"] as const, "local") === "local") return null;
  if (fleet === null) throw new ApiError(409, `scope=fleet: ${NOT_IN_A_FLEET}`);
  if (!fleet.connected()) {
    throw new ApiError(
      503,
      "scope=fleet: Redis is unreachable, so the change could not be shared; nothing was changed",
    );
  }
  return fleet;
}

/**
 * The step that shares a change of `cluster` once it is applied here (run in turn with other changes, so
 * Redis gets them in order); a failure is a 503 saying the change is applied here only.
 */
export function shareWith(
  fleet: FleetAccess | null,
  cluster: string,
): ((applied: Applied) => Promise<void>) | undefined {
  if (fleet === null) return undefined;
  return async (applied) => {
    try {
      await fleet.publish(cluster, applied.config);
    } catch (e) {
      throw new ApiError(
        503,
        `applied on this instance only: sharing it with the fleet failed (${reason(e)})`,
      );
    }
  };
}

/** The fleet listing route. */
export function fleetRoutes(fleet: FleetAccess | null): Hono {
  const app = new Hono();
  app.get("/fleet", async (c) => {
    queryOf(c, []);
    if (fleet === null) throw new ApiError(409, NOT_IN_A_FLEET);
    try {
      return c.json({ instance: fleet.instance, instances: await fleet.instances() });
    } catch (e) {
      throw new ApiError(503, `the fleet could not be listed: Redis: ${reason(e)}`);
    }
  });
  return app;
}
