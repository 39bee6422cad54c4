/**
 * `/api/v1/clusters` and their backends: list and read (config keys joined with live state and counters),
 * add, merge-patch and delete. Backend addresses in paths are "ip:port" or "[v6]:port", URL-encoded or not.
 *
 * @module
 */

import { Hono } from "hono";
import type { FerryConfig } from "../../core/types.ts";
import type { Changes } from "../apply.ts";
import type { Control, FleetAccess } from "../../core/control_api.ts";
import {
  addBackend,
  addCluster,
  patchBackend,
  patchCluster,
  removeBackend,
  removeCluster,
} from "../../core/config_edits.ts";
import { ApiError } from "../errors.ts";
import { own, toRaw } from "../../core/config_raw.ts";
import { addressOf, jsonBody, persistOf, queryOf } from "../validate.ts";
import { clusterView } from "../views.ts";
import { fleetScope, shareWith } from "./fleet.ts";

/** The cluster and backend routes; backend changes take `?scope=fleet` when `fleet` is given. */
export function clusterRoutes(control: Control, changes: Changes, fleet: FleetAccess | null = null): Hono {
  const app = new Hono();

  const view = async (config: FerryConfig, name: string) => {
    const clusters = toRaw(config).clusters;
    if (!Object.prototype.hasOwnProperty.call(clusters, name)) {
      throw new ApiError(404, `no cluster named ${JSON.stringify(name)}`);
    }
    const metrics = (await control.metrics()).clusters.find((m) => m.name === name);
    return clusterView(name, clusters[name], metrics);
  };
  const backendView = async (config: FerryConfig, name: string, address: string) => {
    const backend = ((await view(config, name)).backends as Record<string, unknown>[])
      .find((b) => own(b, "address") === address);
    if (backend === undefined) {
      throw new ApiError(404, `cluster ${JSON.stringify(name)} has no backend ${address}`);
    }
    return backend;
  };
  const applied = (r: { configHash: string; persisted: boolean }) => ({
    configHash: r.configHash,
    persisted: r.persisted,
  });

  app.get("/clusters", async (c) => {
    queryOf(c, []);
    const metrics = (await control.metrics()).clusters;
    const clusters = Object.entries(toRaw(control.config()).clusters).map(([name, raw]) =>
      clusterView(name, raw, metrics.find((m) => m.name === name))
    );
    return c.json({ clusters });
  });

  app.get("/clusters/:name", async (c) => {
    queryOf(c, []);
    return c.json({ cluster: await view(control.config(), c.req.param("name")) });
  });

  app.post("/clusters", async (c) => {
    const persist = persistOf(queryOf(c, ["persist"]));
    const body = await jsonBody(c);
    const r = await changes.apply(c, (config) => addCluster(config, body), persist);
    const name = String(own(body as Record<string, unknown>, "name"));
    return c.json({ cluster: await view(r.config, name), ...applied(r) }, 201);
  });

  app.patch("/clusters/:name", async (c) => {
    const persist = persistOf(queryOf(c, ["persist"]));
    const name = c.req.param("name");
    const body = await jsonBody(c);
    const r = await changes.apply(c, (config) => patchCluster(config, name, body), persist);
    return c.json({ cluster: await view(r.config, name), ...applied(r) });
  });

  app.delete("/clusters/:name", async (c) => {
    const persist = persistOf(queryOf(c, ["persist"]));
    const name = c.req.param("name");
    const r = await changes.apply(c, (config) => removeCluster(config, name), persist);
    return c.json({ deleted: name, ...applied(r) });
  });

  app.get("/clusters/:name/backends", async (c) => {
    queryOf(c, []);
    return c.json({ backends: (await view(control.config(), c.req.param("name"))).backends });
  });

  app.post("/clusters/:name/backends", async (c) => {
    const query = queryOf(c, ["persist", "scope"]);
    const persist = persistOf(query);
    const shared = fleetScope(query, fleet);
    const name = c.req.param("name");
    const body = await jsonBody(c);
    const r = await changes.apply(
      c,
      (config) => addBackend(config, name, body),
      persist,
      shareWith(shared, name),
    );
    const address = addressOf(String(own(body as Record<string, unknown>, "address")), "address");
    return c.json({ backend: await backendView(r.config, name, address), ...applied(r) }, 201);
  });

  app.get("/clusters/:name/backends/:address", async (c) => {
    queryOf(c, []);
    const address = addressOf(c.req.param("address"), "address");
    return c.json({ backend: await backendView(control.config(), c.req.param("name"), address) });
  });

  app.patch("/clusters/:name/backends/:address", async (c) => {
    const query = queryOf(c, ["persist", "scope"]);
    const persist = persistOf(query);
    const shared = fleetScope(query, fleet);
    const name = c.req.param("name");
    const address = addressOf(c.req.param("address"), "address");
    const body = await jsonBody(c);
    const edit = (config: FerryConfig) => patchBackend(config, name, address, body);
    const r = await changes.apply(c, edit, persist, shareWith(shared, name));
    return c.json({ backend: await backendView(r.config, name, address), ...applied(r) });
  });

  app.delete("/clusters/:name/backends/:address", async (c) => {
    const query = queryOf(c, ["persist", "scope"]);
    const persist = persistOf(query);
    const shared = fleetScope(query, fleet);
    const name = c.req.param("name");
    const address = addressOf(c.req.param("address"), "address");
    const edit = (config: FerryConfig) => removeBackend(config, name, address);
    const r = await changes.apply(c, edit, persist, shareWith(shared, name));
    return c.json({ deleted: address, ...applied(r) });
  });

  return app;
}
