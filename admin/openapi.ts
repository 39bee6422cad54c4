/**
 * The OpenAPI 3.1 document of the admin API, served at `/api/v1/openapi.json`. The routes are written here;
 * every config-shaped schema (listeners, clusters, backends, the whole config, their merge patches) comes
 * from the config declaration (`openapi_schemas.ts`). tests/admin.test.ts checks that every route served is
 * described; tests/openapi_conformance.test.ts that requests and responses agree with the schemas.
 *
 * @module
 */

import { DASHBOARD_OPENAPI } from "./dashboard/routes.ts";
import { SCHEMAS } from "./openapi_schemas.ts";
import { PROTECTION_PATHS } from "./openapi_protection.ts";

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ "application/json": { schema } });
const ok = (description: string, schema: unknown) => ({ description, content: json(schema) });
const err = (description: string) => ({ description, content: json(ref("Error")) });
const applied = (extra: Record<string, unknown> = {}) => ({
  allOf: [ref("Applied"), { type: "object", properties: extra }],
});
const body = (schema: unknown, required = true) => ({ required, content: json(schema) });
const param = (name: string, description: string, schema: unknown = { type: "string" }) => ({
  name,
  in: "path",
  required: true,
  description,
  schema,
});
const query = (
  name: string,
  description: string,
  schema: unknown = { type: "string" },
  required = false,
) => ({
  name,
  in: "query",
  required,
  description,
  schema,
});

const PERSIST = { $ref: "#/components/parameters/persist" };
const SCOPE = query(
  "scope",
  "local (default): this instance; fleet: also write the change to Redis for every instance of the fleet.",
  { type: "string", enum: ["local", "fleet"], default: "local" },
);
const E503 = err(
  "scope=fleet while Redis is unreachable (nothing changed), or the change was applied here only.",
);
const NAME = param("name", "The listener's or cluster's name.");
const ADDRESS = param("address", 'Backend "ip:port" ("[::1]:53" for IPv6), URL-encoded.');
const E400 = err("Invalid request: `errors` names each bad field; nothing was changed.");
const E404 = err("No such listener, cluster or backend.");
const E409 = err("Conflict (exists, in use), or the relay could not apply the config; nothing was changed.");

const IF_MATCH = {
  name: "If-Match",
  in: "header",
  required: false,
  description:
    'Apply only if the running config is still this one: its ETag from GET /config ("<hash>"), or *.',
  schema: { type: "string", pattern: '^(\\*|"[0-9a-f]{64}")$' },
};
const E412 = err(
  "If-Match named another config than the running one (it changed meanwhile); nothing changed.",
);
const E500 = err("?persist=true could not write the config file; nothing was changed.");

/** A config-changing operation: takes ?persist and If-Match, answers 400/404/409/412/500. */
function change(summary: string, extra: Record<string, unknown>, okResponse: Record<string, unknown>) {
  return {
    summary,
    parameters: [PERSIST, IF_MATCH, ...((extra.parameters as unknown[]) ?? [])],
    ...(extra.requestBody !== undefined ? { requestBody: extra.requestBody } : {}),
    responses: { ...okResponse, "400": E400, "404": E404, "409": E409, "412": E412, "500": E500 },
  };
}

const DESCRIPTION = `The admin API of Ferry, a UDP/TCP edge relay.

**Authentication.** Every route except /healthz, /readyz and the dashboard's page and files (/, /ui/*) requires \`Authorization: Bearer <token>\`
(admin.token). With an empty token auth is off, which Ferry allows only on a loopback address.

**Changes are whole configs.** Every change to listeners, clusters and backends edits the running config and
validates the result with the config file's rules, then applies it atomically. A 400 lists every problem
with the key path a config file would have (\`listeners[1].max_flows\`, \`clusters.game.backends[0].weight\`);
nothing changes on any error. PATCH bodies are RFC 7396 merge patches of the config-file keys (\`null\`
resets a key to its default). Changes to a listener or cluster apply to new flows; existing flows keep the
settings they were admitted under. A removed listener's flows drain.

**Persistence.** Config-changing routes (listeners, clusters, backends, PUT /config) take \`?persist=true\`
to also write the config file (atomically, keeping a backup). The default, \`persist=false\`, changes the
running relay only: the change is lost on restart or reload. \`GET /config\` shows what runs; compare
\`configHash\` in /status to see whether it differs from the file.

**Errors** are JSON \`{ "error": "...", "errors": [{ "path": "...", "message": "..." }] }\` on every status.
Unknown query parameters are refused (a misspelt \`?persist\` must not silently skip the file).

**Fleet.** With \`[fleet] instance\` set, backend changes (add, patch: weight or state, remove) take
\`?scope=fleet\`: the change is applied here, then written to Redis and applied by every instance of the
fleet (at runtime: no instance's file is written, and an instance that starts loads the fleet's state).
\`GET /fleet\` lists the live instances.

**Flows** (\`GET /flows\`) are UDP flows and TCP connections together, told apart by \`protocol\`; a TCP
connection shows its backend, bytes up and down, age and idle time (UDP's quality figures are UDP's only).
\`DELETE /flows?client=\` and \`DELETE …/backends/{address}/flows\` close both.

**Clients** (\`GET /clients\`) are flows grouped by client ip:port and ranked worst first: by priority (the
highest, i.e. worst, score first), by loss (the worst of drops, unanswered and sequence loss, highest first),
by latency (highest first) or by bandwidth (highest first). A client's TCP connections add their count and
bytes; a client with TCP connections only scores priority 0.

**Draining a listener** (\`POST /drain {"listener": …}\` or \`PATCH /listeners/{name} {"draining": true}\`) is
undone by \`PATCH /listeners/{name} {"draining": false}\` or by a reload. A drain of everything (\`POST /drain\`
with no listener, as at shutdown) is not undone.`;

/** The OpenAPI 3.1 document. */
export const OPENAPI = {
  openapi: "3.1.0",
  info: { title: "Ferry admin API", version: "1", description: DESCRIPTION },
  servers: [{ url: "/" }],
  security: [{ bearer: [] }],
  paths: {
    ...DASHBOARD_OPENAPI,
    "/healthz": {
      get: {
        summary: "Liveness: 200 while the process is up",
        security: [],
        responses: { "200": ok("Up", { type: "object" }) },
      },
    },
    "/readyz": {
      get: {
        summary: "Readiness: listeners bound, config loaded, not draining",
        security: [],
        responses: { "200": ok("Ready", { type: "object" }), "503": ok("Not ready", { type: "object" }) },
      },
    },
    "/metrics": {
      get: {
        summary: "Metrics in the Prometheus text format 0.0.4, or JSON with ?format=json",
        parameters: [
          query("format", "prometheus (default) or json", { type: "string", enum: ["prometheus", "json"] }),
        ],
        responses: {
          "200": {
            description: "Metrics",
            content: { "text/plain": { schema: { type: "string" } }, ...json(ref("MetricsJson")) },
          },
        },
      },
    },
    "/api/v1/docs": {
      get: {
        summary: "The interactive reference of this document (HTML; no token needed, it holds no data)",
        security: [],
        responses: {
          "200": { description: "The page", content: { "text/html": { schema: { type: "string" } } } },
        },
      },
    },
    "/api/v1/docs/app.js": {
      get: {
        summary: "The reference page's script",
        security: [],
        responses: {
          "200": {
            description: "JavaScript",
            content: { "text/javascript": { schema: { type: "string" } } },
          },
        },
      },
    },
    "/api/v1/docs/app.css": {
      get: {
        summary: "The reference page's style",
        security: [],
        responses: { "200": { description: "CSS", content: { "text/css": { schema: { type: "string" } } } } },
      },
    },
    "/api/v1/openapi.json": {
      get: { summary: "This document", responses: { "200": ok("OpenAPI 3.1", { type: "object" }) } },
    },
    "/api/v1/status": {
      get: {
        summary: "Process, runtime and listener status",
        responses: { "200": ok("Status", ref("Status")) },
      },
    },
    "/api/v1/drain": {
      post: {
        summary: "Stop admitting new flows and connections, everywhere or on one listener",
        requestBody: body({
          type: "object",
          properties: { listener: { type: "string" } },
          additionalProperties: false,
        }, false),
        responses: { "200": ok("Draining", { type: "object" }), "400": E400, "404": E404 },
      },
    },
    "/api/v1/reload": {
      post: {
        summary: "Re-read the config file (as SIGHUP); an invalid file changes nothing",
        responses: {
          "200": ok("Applied", ref("Applied")),
          "422": err("The file is invalid or could not be applied"),
        },
      },
    },
    "/api/v1/config": {
      get: {
        summary: "The running config as TOML, or as a JSON object with ?format=json",
        parameters: [query("format", "toml (default) or json", { type: "string", enum: ["toml", "json"] })],
        responses: {
          "200": {
            description:
              'Config (admin.token shown as "<redacted>"; a PUT that sends it back keeps the token)',
            headers: {
              ETag: {
                description: "The config hash, quoted: send it as If-Match to change only this config.",
                schema: { type: "string" },
              },
            },
            content: { "text/plain": { schema: { type: "string" } }, ...json(ref("RawConfig")) },
          },
        },
      },
      put: change("Replace the whole config atomically (TOML body, or JSON with application/json)", {
        requestBody: {
          required: true,
          content: {
            "text/plain": { schema: { type: "string" } },
            "application/toml": { schema: { type: "string" } },
            ...json(ref("RawConfig")),
          },
        },
      }, { "200": ok("Applied", ref("Applied")) }),
    },
    "/api/v1/listeners": {
      get: {
        summary: "Every listener",
        responses: {
          "200": ok("Listeners", {
            type: "object",
            properties: { listeners: { type: "array", items: ref("ListenerView") } },
          }),
        },
      },
      post: change("Add a listener", { requestBody: body(ref("Listener")) }, {
        "201": ok("Added", applied({ listener: ref("ListenerView") })),
      }),
    },
    "/api/v1/listeners/{name}": {
      get: {
        summary: "One listener",
        parameters: [NAME],
        responses: {
          "200": ok("Listener", { type: "object", properties: { listener: ref("ListenerView") } }),
          "404": E404,
        },
      },
      patch: change("Change a listener (address and protocol rebind it)", {
        parameters: [NAME],
        requestBody: body(ref("ListenerPatch")),
      }, {
        "200": ok("Changed", applied({ listener: ref("ListenerView") })),
      }),
      delete: change("Remove a listener; its flows drain", { parameters: [NAME] }, {
        "200": ok("Removed", applied()),
      }),
    },
    "/api/v1/clusters": {
      get: {
        summary: "Every cluster, with backends' state and counters",
        responses: {
          "200": ok("Clusters", {
            type: "object",
            properties: { clusters: { type: "array", items: ref("ClusterView") } },
          }),
        },
      },
      post: change("Add a cluster", { requestBody: body(ref("ClusterCreate")) }, {
        "201": ok("Added", applied({ cluster: ref("ClusterView") })),
      }),
    },
    "/api/v1/clusters/{name}": {
      get: {
        summary: "One cluster",
        parameters: [NAME],
        responses: {
          "200": ok("Cluster", { type: "object", properties: { cluster: ref("ClusterView") } }),
          "404": E404,
        },
      },
      patch: change("Change a cluster's balancer and knobs (new flows only)", {
        parameters: [NAME],
        requestBody: body(ref("ClusterPatch")),
      }, {
        "200": ok("Changed", applied({ cluster: ref("ClusterView") })),
      }),
      delete: change(
        "Remove a cluster (409 naming the listeners that still use it)",
        { parameters: [NAME] },
        { "200": ok("Removed", applied()) },
      ),
    },
    "/api/v1/clusters/{name}/backends": {
      get: {
        summary: "A cluster's backends",
        parameters: [NAME],
        responses: {
          "200": ok("Backends", {
            type: "object",
            properties: { backends: { type: "array", items: ref("BackendView") } },
          }),
          "404": E404,
        },
      },
      post: change("Add a backend", { parameters: [NAME, SCOPE], requestBody: body(ref("Backend")) }, {
        "201": ok("Added", applied({ backend: ref("BackendView") })),
        "503": E503,
      }),
    },
    "/api/v1/clusters/{name}/backends/{address}": {
      get: {
        summary: "One backend",
        parameters: [NAME, ADDRESS],
        responses: {
          "200": ok("Backend", { type: "object", properties: { backend: ref("BackendView") } }),
          "400": E400,
          "404": E404,
        },
      },
      patch: change("Change a backend's weight or state (draining = no new flows)", {
        parameters: [NAME, ADDRESS, SCOPE],
        requestBody: body(ref("BackendPatch")),
      }, {
        "200": ok("Changed", applied({ backend: ref("BackendView") })),
        "503": E503,
      }),
      delete: change("Remove a backend", { parameters: [NAME, ADDRESS, SCOPE] }, {
        "200": ok("Removed", applied()),
        "503": E503,
      }),
    },
    "/api/v1/clusters/{name}/backends/{address}/flows": {
      delete: {
        summary: "Close every flow and TCP connection pinned to a backend",
        parameters: [NAME, ADDRESS],
        responses: {
          "200": ok("Closed", { type: "object", properties: { closed: { type: "integer" } } }),
          "400": E400,
        },
      },
    },
    "/api/v1/fleet": {
      get: {
        summary: "The live instances of the fleet (heartbeats in Redis)",
        responses: {
          "200": ok("Instances", {
            type: "object",
            properties: {
              instance: { type: "string", description: "The instance answering." },
              instances: { type: "array", items: ref("FleetInstance") },
            },
          }),
          "409": err("This instance is not in a fleet ([fleet] instance is empty)."),
          "503": err("Redis is unreachable."),
        },
      },
    },
    "/api/v1/flows": {
      get: {
        summary: "UDP flows (with quality figures) and TCP connections in admission order, paged",
        parameters: [
          query("protocol", "Only UDP flows or only TCP connections", {
            type: "string",
            enum: ["udp", "tcp"],
          }),
          query("listener", "Only this listener's flows"),
          query("cluster", "Only this cluster's flows"),
          query("backend", "Only flows pinned to this backend ip:port"),
          query("client", "Only this client: ip or ip:port"),
          query("limit", "Page size (default 100)", {
            type: "integer",
            minimum: 1,
            maximum: 10000,
            default: 100,
          }),
          query("offset", "Flows to skip", { type: "integer", minimum: 0, default: 0 }),
        ],
        responses: { "200": ok("A page of flows", ref("FlowPage")), "400": E400 },
      },
      delete: {
        summary: "Disconnect a client: close its flows and TCP connections, optionally on one listener",
        parameters: [
          query("client", "ip (every port) or ip:port", { type: "string" }, true),
          query("listener", "Only on this listener"),
        ],
        responses: {
          "200": ok("Closed", { type: "object", properties: { closed: { type: "integer" } } }),
          "400": E400,
        },
      },
    },
    "/api/v1/clients": {
      get: {
        summary: "The top N clients, worst first",
        parameters: [
          query("top", "How many (default 10)", { type: "integer", minimum: 1, maximum: 1000, default: 10 }),
          query(
            "by",
            "priority: highest (worst) score first; loss: highest worstLossPermille first; latency: highest " +
              "latencyMs first; bandwidth: highest first",
            {
              type: "string",
              enum: ["priority", "loss", "latency", "bandwidth"],
              default: "priority",
            },
          ),
          query("listener", "Only this listener's flows"),
        ],
        responses: {
          "200": ok("Clients", {
            type: "object",
            properties: {
              by: { type: "string" },
              top: { type: "integer" },
              clients: { type: "array", items: ref("Client") },
            },
          }),
          "400": E400,
        },
      },
    },
    ...PROTECTION_PATHS,
  },
  components: {
    securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "admin.token" } },
    parameters: {
      persist: query(
        "persist",
        "true: also write the config file (atomically, keeping a backup); false (default): runtime only, lost on restart.",
        { type: "boolean", default: false },
      ),
    },
    schemas: SCHEMAS,
  },
} as const;
