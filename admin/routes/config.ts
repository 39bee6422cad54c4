/**
 * `/api/v1/config`: the running config as TOML (or, with `?format=json`, the file-shaped object), and its
 * atomic replacement from TOML or JSON, validated whole first.
 *
 * @module
 */

import { Hono } from "hono";
import { configToToml } from "../../core/config.ts";
import type { Changes } from "../apply.ts";
import type { Control } from "../control.ts";
import { replaceConfig, replaceConfigToml } from "../edits.ts";
import { badField } from "../errors.ts";
import { toRaw } from "../raw.ts";
import { choiceOf, isJsonType, jsonBody, persistOf, queryOf } from "../validate.ts";

/** The config routes. */
export function configRoutes(control: Control, changes: Changes): Hono {
  const app = new Hono();

  app.get("/config", (c) => {
    const format = choiceOf(queryOf(c, ["format"]), "format", ["toml", "json"] as const, "toml");
    const config = control.config();
    if (format === "json") return c.json(toRaw(config));
    return c.body(configToToml(config), 200, { "content-type": "text/plain; charset=utf-8" });
  });

  app.put("/config", async (c) => {
    const persist = persistOf(queryOf(c, ["persist"]));
    let edit;
    if (isJsonType(c.req.header("content-type"))) {
      const raw = await jsonBody(c);
      edit = () => replaceConfig(raw);
    } else {
      const text = await c.req.text();
      if (text.trim() === "") {
        throw badField("", "a config body (TOML, or JSON with application/json) is required");
      }
      edit = () => replaceConfigToml(text);
    }
    const r = await changes.apply(edit, persist);
    return c.json({ configHash: r.configHash, persisted: r.persisted });
  });

  return app;
}
