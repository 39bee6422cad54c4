/**
 * Flows and clients: list flows and TCP connections with paging, disconnect a client (udp-gate's
 * disconnect), close every flow and connection of a backend, and rank clients worst first.
 *
 * @module
 */

import { Hono } from "hono";
import { CLIENT_RANKINGS, topClients } from "../clients.ts";
import type { Control, FlowFilter } from "../../core/control_api.ts";
import { badField } from "../errors.ts";
import { addressOf, choiceOf, clientOf, intOf, queryOf } from "../validate.ts";

/** What `GET /flows?protocol=` picks: UDP flows or TCP connections (both when absent). */
const PROTOCOLS = ["udp", "tcp"] as const;

/** Default and largest page size of `GET /flows`. */
export const FLOW_PAGE = { default: 100, max: 10_000 } as const;

/** The flow and client routes. */
export function flowRoutes(control: Control): Hono {
  const app = new Hono();

  app.get("/flows", async (c) => {
    const q = queryOf(c, ["protocol", "listener", "cluster", "backend", "client", "limit", "offset"]);
    const limit = intOf(q, "limit", FLOW_PAGE.default, 1, FLOW_PAGE.max);
    const offset = intOf(q, "offset", 0, 0, Number.MAX_SAFE_INTEGER);
    const filter: FlowFilter = {
      ...(q.protocol !== undefined ? { protocol: choiceOf(q, "protocol", PROTOCOLS, "udp") } : {}),
      ...(q.listener !== undefined ? { listener: q.listener } : {}),
      ...(q.cluster !== undefined ? { cluster: q.cluster } : {}),
      ...(q.backend !== undefined ? { backend: addressOf(q.backend, "backend") } : {}),
      ...(q.client !== undefined ? { client: clientOf(q.client, "client") } : {}),
    };
    const all = await control.flows(filter);
    return c.json({ total: all.length, offset, limit, flows: all.slice(offset, offset + limit) });
  });

  app.delete("/flows", async (c) => {
    const q = queryOf(c, ["client", "listener"]);
    if (q.client === undefined) throw badField("client", "required: the client ip or ip:port to disconnect");
    const closed = await control.disconnect(clientOf(q.client, "client"), q.listener);
    return c.json({ closed });
  });

  app.delete("/clusters/:name/backends/:address/flows", async (c) => {
    queryOf(c, []);
    const address = addressOf(c.req.param("address"), "address");
    return c.json({ closed: await control.closeBackendFlows(c.req.param("name"), address) });
  });

  app.get("/clients", async (c) => {
    const q = queryOf(c, ["top", "by", "listener"]);
    const top = intOf(q, "top", 10, 1, 1000);
    const by = choiceOf(q, "by", CLIENT_RANKINGS, "priority");
    const flows = await control.flows(q.listener !== undefined ? { listener: q.listener } : {});
    return c.json({ by, top, clients: topClients(flows, by, top) });
  });

  return app;
}
