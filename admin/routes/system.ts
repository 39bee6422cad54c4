/**
 * `/api/v1/status`, `/drain`, `/reload`, the OpenAPI document and its interactive reference page.
 *
 * @module
 */

import { type Context, Hono } from "hono";
import { DOCS_CSP, DOCS_CSS, DOCS_HTML, DOCS_JS } from "../docs_page.ts";
import type { Control, FleetAccess } from "../../core/control_api.ts";
import { ApiError, badField } from "../errors.ts";
import { OPENAPI } from "../openapi.ts";
import { isTable, own } from "../../core/config_raw.ts";
import { jsonBody, queryOf } from "../validate.ts";

/** The status, drain, reload and OpenAPI routes; `/status` names the fleet instance when in one. */
export function systemRoutes(control: Control, fleet: FleetAccess | null = null): Hono {
  const app = new Hono();

  // The interactive reference: public (it holds no data), bundled, with a policy that allows only itself.
  const page = (body: string, type: string) => (c: Context) => {
    queryOf(c, []);
    return c.body(body, 200, { "content-type": type, "content-security-policy": DOCS_CSP });
  };
  app.get("/docs", page(DOCS_HTML, "text/html; charset=utf-8"));
  app.get("/docs/app.js", page(DOCS_JS, "text/javascript; charset=utf-8"));
  app.get("/docs/app.css", page(DOCS_CSS, "text/css; charset=utf-8"));

  app.get("/openapi.json", (c) => {
    queryOf(c, []);
    return c.json(OPENAPI);
  });

  app.get("/status", async (c) => {
    queryOf(c, []);
    return c.json({ ...(await control.status()), fleet: fleet?.instance ?? null });
  });

  app.post("/drain", async (c) => {
    queryOf(c, []);
    const body = await jsonBody(c, true);
    let listener: string | undefined;
    if (body !== undefined) {
      if (!isTable(body)) throw badField("", 'expected a JSON object: {} or { "listener": "name" }');
      for (const key of Object.keys(body)) {
        if (key !== "listener") throw badField(key, "unknown key (known: listener)");
      }
      const l = own(body, "listener");
      if (l !== undefined && typeof l !== "string") throw badField("listener", "expected a string");
      listener = l;
    }
    if (listener !== undefined && !control.config().listeners.some((l) => l.name === listener)) {
      const message = `no listener named ${JSON.stringify(listener)}`;
      throw new ApiError(404, message, [{ path: "listener", message }]);
    }
    await control.drain(listener);
    return c.json({ draining: true, listener: listener ?? null });
  });

  app.post("/reload", async (c) => {
    queryOf(c, []);
    const r = await control.reload();
    if (!r.ok) {
      throw new ApiError(
        422,
        "reload failed: the config file was not applied; nothing was changed",
        r.errors,
      );
    }
    return c.json({ configHash: r.configHash, persisted: r.persisted });
  });

  return app;
}
