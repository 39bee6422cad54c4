/**
 * The admin HTTP API as a Hono app: `/healthz` and `/readyz` (open), the live dashboard at `/` (open; its
 * scripts call the API with the token), `/metrics`, and the versioned JSON API under `/api/v1` (described by
 * `/api/v1/openapi.json`). It sees the relay only through {@link Control}.
 *
 * Every response that is not a success is JSON `{ error, errors: [{ path, message }] }`: unknown routes are
 * 404s, known routes with a wrong method 405s (with `Allow`), bodies over {@link BODY_LIMIT} 413s.
 *
 * @module
 */

import { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { methodNotAllowed } from "hono/method-not-allowed";
import { secureHeaders } from "hono/secure-headers";
import { Changes } from "./apply.ts";
import { bearerAuth } from "./auth.ts";
import type { Control, FleetAccess } from "../core/control_api.ts";
import { EditError } from "../core/config_edits.ts";
import { ApiError, errorBody, type ErrorStatus } from "./errors.ts";
import type { ProtectionControl } from "../core/protection_api.ts";
import { collectMetrics, metricsJson, PROMETHEUS_CONTENT_TYPE, renderPrometheus } from "./metrics.ts";
import { clusterRoutes } from "./routes/clusters.ts";
import { type ConfigChecker, configRoutes } from "./routes/config.ts";
import { dashboardRoutes } from "./dashboard/routes.ts";
import { fleetRoutes } from "./routes/fleet.ts";
import { flowRoutes } from "./routes/flows.ts";
import { listenerRoutes } from "./routes/listeners.ts";
import { systemRoutes } from "./routes/system.ts";
import { protectionRoutes } from "./routes/protection.ts";
import { choiceOf, queryOf } from "./validate.ts";

export { checkAdminBinding } from "../core/admin_binding.ts";

/** Largest request body accepted: 1 MiB. */
export const BODY_LIMIT = 1024 * 1024;

/** Options of the admin app. */
export interface AdminOptions {
  /**
   * The bearer token every route but /healthz, /readyz and the dashboard's and reference's files requires;
   * "" turns auth off. A function is asked at every request, so a reload or PUT that changes `admin.token`
   * takes effect at once.
   */
  readonly token: string | (() => string);
  /** Called with unexpected errors (those answered with a 500). */
  readonly onError?: (error: unknown) => void;
  /** The fleet (`[fleet] instance` set): `GET /fleet` and `?scope=fleet` on backend changes. */
  readonly fleet?: FleetAccess | null;
  /** Bans and top talkers, when they differ from `control.protection` (shared with the fleet). */
  readonly protection?: ProtectionControl;
  /**
   * Checks a whole config for `PUT /config` (as replaceConfigToml / replaceConfig, throwing their
   * EditError) somewhere that does not stall forwarding; absent, the check runs in the change's turn.
   */
  readonly checkConfig?: ConfigChecker;
}

/** The status of each kind of refused edit. */
const EDIT_STATUS: Readonly<Record<EditError["kind"], ErrorStatus>> = {
  invalid: 400,
  not_found: 404,
  conflict: 409,
};

/** The admin API over `control`. */
export function createAdminApp(control: Control, options: AdminOptions): Hono {
  const app = new Hono();
  const changes = new Changes(control);
  const fleet = options.fleet ?? null;
  const protection = options.protection ?? control.protection;

  app.use(secureHeaders({ crossOriginResourcePolicy: "same-origin", xFrameOptions: "DENY" }));
  app.use(async (c, next) => {
    await next();
    c.header("cache-control", "no-store");
  });
  app.use(methodNotAllowed({
    app,
    onMethodNotAllowed: (c, methods) =>
      c.json(errorBody(`method ${c.req.method} not allowed; allowed: ${methods.join(", ")}`), 405, {
        Allow: methods.join(", "),
      }),
  }));
  // Auth before the body limit, so an unauthenticated client cannot make the server read a body at all.
  app.use(bearerAuth(options.token));
  app.use(bodyLimit({
    maxSize: BODY_LIMIT,
    onError: (c) => c.json(errorBody(`request body larger than ${BODY_LIMIT} bytes`), 413),
  }));

  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get(
    "/readyz",
    async (c) =>
      (await control.ready()) ? c.json({ status: "ready" }) : c.json({
        status: "not ready",
        ...errorBody("not ready: listeners unbound, no config, or draining"),
      }, 503),
  );
  app.get("/metrics", async (c) => {
    const format = choiceOf(queryOf(c, ["format"]), "format", ["prometheus", "json"] as const, "prometheus");
    const [metrics, status, ready, protectionMetrics] = await Promise.all([
      control.metrics(),
      control.status(),
      control.ready(),
      protection?.metrics(),
    ]);
    const families = collectMetrics(metrics, status, ready, protectionMetrics);
    if (format === "json") return c.json(metricsJson(families));
    return c.body(renderPrometheus(families), 200, { "content-type": PROMETHEUS_CONTENT_TYPE });
  });

  const token = options.token;
  app.route("/", dashboardRoutes(() => (typeof token === "string" ? token : token()) !== ""));
  app.route("/api/v1", systemRoutes(control, fleet));
  app.route("/api/v1", listenerRoutes(control, changes));
  app.route("/api/v1", clusterRoutes(control, changes, fleet));
  app.route("/api/v1", fleetRoutes(fleet));
  app.route("/api/v1", flowRoutes(control));
  app.route("/api/v1", configRoutes(control, changes, options.checkConfig));
  app.route("/api/v1", protectionRoutes(protection));

  app.notFound((c) => c.json(errorBody(`no route ${c.req.method} ${c.req.path}`), 404));
  app.onError((err, c) => {
    if (err instanceof ApiError) {
      const headers: Record<string, string> = err.status === 401
        ? { "WWW-Authenticate": 'Bearer realm="ferry"' }
        : {};
      return c.json(errorBody(err.message, err.errors), err.status, headers);
    }
    if (err instanceof EditError) {
      return c.json(errorBody(err.message, err.errors), EDIT_STATUS[err.kind]);
    }
    if (err instanceof HTTPException) {
      return c.json(errorBody(err.message || "request failed"), err.status as ContentfulStatusCode);
    }
    options.onError?.(err);
    return c.json(errorBody(`internal error: ${err instanceof Error ? err.message : String(err)}`), 500);
  });
  return app;
}
