/**
 * `/api/v1/config`: the running config as TOML (or, with `?format=json`, the file-shaped object), and its
 * atomic replacement from TOML or JSON, validated whole first. The token is shown as `<redacted>`, and a
 * replacement that sends that back keeps the running token.
 *
 * @module
 */

import { Hono } from "hono";
import { configToToml } from "../../core/config.ts";
import { type Changes, etagOf } from "../apply.ts";
import type { Control } from "../../core/control_api.ts";
import { redactConfig, replaceConfig, replaceConfigToml } from "../../core/config_edits.ts";
import type { FerryConfig } from "../../core/types.ts";
import { badField } from "../errors.ts";
import { toRaw } from "../../core/config_raw.ts";
import { choiceOf, isJsonType, jsonBody, persistOf, queryOf } from "../validate.ts";

/** Checks a whole config body with the running token, as replaceConfigToml / replaceConfig (their EditError). */
export type ConfigChecker = (
  body: ({ readonly toml: string } | { readonly json: unknown }) & { readonly token: string },
) => Promise<FerryConfig>;

/** The config routes; `check`, when given, checks a replacement before its turn (off the data path). */
export function configRoutes(control: Control, changes: Changes, check?: ConfigChecker): Hono {
  const app = new Hono();

  // The token is never shown; its ETag is the config hash, for a conditional write (If-Match).
  app.get("/config", (c) => {
    const format = choiceOf(queryOf(c, ["format"]), "format", ["toml", "json"] as const, "toml");
    const config = redactConfig(control.config());
    c.header("ETag", etagOf(control.configHash()));
    if (format === "json") return c.json(toRaw(config));
    return c.body(configToToml(config), 200, { "content-type": "text/plain; charset=utf-8" });
  });

  app.put("/config", async (c) => {
    const persist = persistOf(queryOf(c, ["persist"]));
    let edit;
    let body;
    if (isJsonType(c.req.header("content-type"))) {
      const raw = await jsonBody(c);
      body = { json: raw };
      edit = (current: FerryConfig) => replaceConfig(raw, undefined, current);
    } else {
      const text = await c.req.text();
      if (text.trim() === "") {
        throw badField("", "a config body (TOML, or JSON with application/json) is required");
      }
      body = { toml: text };
      edit = (current: FerryConfig) => replaceConfigToml(text, current);
    }
    if (check !== undefined) {
      // Checked before its turn, with the token running now; if that changes meanwhile, checked again.
      const token = control.config().admin.token;
      const checked = await check({ ...body, token });
      const inTurn = edit;
      edit = (current: FerryConfig) => current.admin.token === token ? checked : inTurn(current);
    }
    const r = await changes.apply(c, edit, persist);
    return c.json({ configHash: r.configHash, persisted: r.persisted });
  });

  return app;
}
