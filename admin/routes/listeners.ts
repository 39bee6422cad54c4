/**
 * `/api/v1/listeners`: list, read, add, patch (RFC 7396 merge patch of the config-file keys) and delete.
 *
 * @module
 */

import { Hono } from "hono";
import type { Changes } from "../apply.ts";
import type { Control } from "../../core/control_api.ts";
import { addListener, patchListener, removeListener } from "../../core/config_edits.ts";
import { ApiError, badField } from "../errors.ts";
import { isTable, own, toRaw } from "../../core/config_raw.ts";
import type { FerryConfig } from "../../core/types.ts";
import { jsonBody, persistOf, queryOf } from "../validate.ts";
import { listenerView } from "../views.ts";

/**
 * A listener patch's `draining` (runtime state, not a config key: true drains the listener, false undoes
 * it, as `POST /drain` does) and the config keys left to merge-patch.
 */
function splitDraining(body: unknown): { draining: boolean | undefined; keys: unknown } {
  if (!isTable(body) || !Object.prototype.hasOwnProperty.call(body, "draining")) {
    return { draining: undefined, keys: body };
  }
  const { draining, ...keys } = body;
  if (typeof draining !== "boolean") {
    throw badField("draining", "expected true (drain) or false (undo a drain)");
  }
  return { draining, keys };
}

/** The listener routes. */
export function listenerRoutes(control: Control, changes: Changes): Hono {
  const app = new Hono();

  const view = async (config: FerryConfig, name: string) => {
    const raw = toRaw(config).listeners.find((l) => own(l, "name") === name);
    if (raw === undefined) throw new ApiError(404, `no listener named ${JSON.stringify(name)}`);
    return listenerView(raw, (await control.status()).listeners.find((s) => s.name === name));
  };

  app.get("/listeners", async (c) => {
    queryOf(c, []);
    const status = (await control.status()).listeners;
    const listeners = toRaw(control.config()).listeners.map((l) =>
      listenerView(l, status.find((s) => s.name === own(l, "name")))
    );
    return c.json({ listeners });
  });

  app.get("/listeners/:name", async (c) => {
    queryOf(c, []);
    return c.json({ listener: await view(control.config(), c.req.param("name")) });
  });

  app.post("/listeners", async (c) => {
    const persist = persistOf(queryOf(c, ["persist"]));
    const body = await jsonBody(c);
    const r = await changes.apply(c, (config) => addListener(config, body), persist);
    const name = String(own(body as Record<string, unknown>, "name"));
    return c.json(
      { listener: await view(r.config, name), configHash: r.configHash, persisted: r.persisted },
      201,
    );
  });

  app.patch("/listeners/:name", async (c) => {
    const persist = persistOf(queryOf(c, ["persist"]));
    const name = c.req.param("name");
    const { draining, keys } = splitDraining(await jsonBody(c));
    // Config keys first (all or nothing), then the drain: a refused change leaves the drain as it was.
    const r = draining === undefined || Object.keys(keys as object).length > 0
      ? await changes.apply(c, (config) => patchListener(config, name, keys), persist)
      : null;
    if (draining !== undefined) {
      await view(control.config(), name); // 404 for no such listener
      await (draining ? control.drain(name) : control.undrain(name));
    }
    return c.json({
      listener: await view(r?.config ?? control.config(), name),
      configHash: r?.configHash ?? control.configHash(),
      persisted: r?.persisted ?? false,
    });
  });

  app.delete("/listeners/:name", async (c) => {
    const persist = persistOf(queryOf(c, ["persist"]));
    const name = c.req.param("name");
    const r = await changes.apply(c, (config) => removeListener(config, name), persist);
    return c.json({ deleted: name, configHash: r.configHash, persisted: r.persisted });
  });

  return app;
}
