/**
 * The schemas of the OpenAPI document (`openapi.ts`). Config objects use the config file's keys
 * (snake_case); live state added by the API uses camelCase, as the Control reports it.
 *
 * @module
 */

import { publicSchema } from "../core/config/json_schema.ts";
import { BackendSchema, ClusterSchema, ConfigSchema, ListenerSchema } from "../core/config/schema.ts";

const str = { type: "string" };
const int = { type: "integer", minimum: 0 };
const num = { type: "number" };
const bool = { type: "boolean" };
const arr = (items: unknown) => ({ type: "array", items });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const obj = (properties: Record<string, unknown>, required: string[] = [], extra = false) => ({
  type: "object",
  properties,
  ...(required.length > 0 ? { required } : {}),
  additionalProperties: extra,
});
const address = { type: "string", description: '"ip:port"; IPv6 as "[::1]:53".', examples: ["10.0.0.1:53"] };
const backendState = { type: "string", enum: ["up", "down", "draining"] };

// Config objects come from the one declaration (core/config/schema.ts), so the API accepts and shows
// exactly what a config file may hold.
type Json = Record<string, unknown>;
const pub = (schema: unknown) => publicSchema(schema) as Json;
const propsOf = (schema: unknown) => (pub(schema).properties ?? {}) as Record<string, unknown>;
/** A merge patch of an object: every key optional, `null` resets it to its default (RFC 7396). */
const mergePatch = (props: Record<string, unknown>) => ({
  type: "object",
  properties: Object.fromEntries(
    Object.entries(props).map(([k, v]) => [k, { anyOf: [v, { type: "null" }] }]),
  ),
  additionalProperties: false,
});

const listenerKeys = propsOf(ListenerSchema);
const backendKeys = propsOf(BackendSchema);
const clusterKeys = { ...propsOf(ClusterSchema), backends: arr(ref("Backend")) };
/** What GET returns for a cluster's keys: every key filled in, so the health table is always there. */
const clusterShown = { ...propsOf(ClusterSchema) };
delete (clusterShown as Json).backends;

const sequenceInfo = obj({
  expected: int,
  received: int,
  lost: int,
  reordered: int,
  duplicates: int,
  lossPermille: num,
});

const backendQuality = obj({
  latencyMs: { type: ["number", "null"], description: "Smoothed RTT over its flows; null before a sample." },
  jitterMs: num,
  peakEwmaMs: { type: "number", description: "The peak_ewma balancer's latency cost, decayed to now." },
  samples: int,
  answered: { type: "integer", minimum: 0, description: "Requests its flows saw answered (total)." },
  unanswered: { type: "integer", minimum: 0, description: "Requests its flows saw unanswered (total)." },
  unansweredPermille: { type: "number", description: "Unanswered over judged requests, recent window." },
  sequenceUp: sequenceInfo,
  sequenceDown: sequenceInfo,
});

const backendLive = {
  effectiveState: backendState,
  activeFlows: int,
  flowsTotal: int,
  datagramsTo: int,
  bytesTo: int,
  datagramsFrom: int,
  bytesFrom: int,
  sendErrors: int,
  refusals: int,
  quality: backendQuality,
  health: obj({
    status: { type: "string", enum: ["up", "down"] },
    probed: bool,
    since: { type: "string", format: "date-time" },
    lastError: { type: ["string", "null"] },
    okStreak: int,
    failStreak: int,
    passiveUntil: { type: ["string", "null"], format: "date-time" },
    transitions: int,
  }),
};

const udpFlow = obj(
  {
    id: str,
    protocol: { type: "string", const: "udp" },
    listener: str,
    cluster: str,
    client: address,
    backend: { type: ["string", "null"] },
    state: str,
    ageSeconds: num,
    idleSeconds: num,
    bytesIn: int,
    bytesOut: int,
    datagramsIn: int,
    datagramsOut: int,
    bandwidth: { type: "number", description: "Bytes/s (EWMA)." },
    latencyMs: {
      type: ["number", "null"],
      description: "Smoothed round trip; null before the first sample.",
    },
    jitterMs: num,
    lossPermille: { type: "number", description: "Same as dropPermille (the name kept for old clients)." },
    dropPermille: { type: "number", description: "Datagrams Ferry itself could not deliver, per-mille." },
    unansweredPermille: {
      type: "number",
      description: "Client datagrams that got no reply (end to end, Ferry's drops included), per-mille.",
    },
    sequence: {
      oneOf: [{ type: "null" }, obj({ up: sequenceInfo, down: sequenceInfo })],
      description: "Sequence-number counters per direction, when the cluster reads them; else null.",
    },
    priority: { type: "number", description: "Quality score; lower is better." },
  },
  ["id", "protocol", "listener", "cluster", "client", "backend", "state", "ageSeconds"],
  true,
);

const tcpConnection = obj(
  {
    id: str,
    protocol: { type: "string", const: "tcp" },
    listener: str,
    cluster: str,
    client: address,
    backend: { ...address, description: "The backend it is pinned to." },
    state: { type: "string", enum: ["connecting", "established", "closing"] },
    ageSeconds: num,
    idleSeconds: { type: "number", description: "Since a byte last moved either way." },
    bytesUp: { ...int, description: "Client → backend (payload)." },
    bytesDown: { ...int, description: "Backend → client (payload)." },
  },
  [
    "id",
    "protocol",
    "listener",
    "cluster",
    "client",
    "backend",
    "state",
    "ageSeconds",
    "bytesUp",
    "bytesDown",
  ],
  true,
);

/** A row of `GET /flows`: a UDP flow or a TCP connection, by `protocol`. */
const flow = { oneOf: [udpFlow, tcpConnection] };

const client = obj({
  client: address,
  flows: { ...int, description: "Its UDP flows (the quality figures are theirs)." },
  connections: { ...int, description: "Its open TCP connections." },
  bytesUp: { ...int, description: "Over its TCP connections, client → backend." },
  bytesDown: { ...int, description: "Over its TCP connections, backend → client." },
  listeners: arr(str),
  backends: arr(str),
  bandwidth: { type: "number", description: "Sum over the client's flows, bytes/s." },
  latencyMs: { type: ["number", "null"], description: "Worst of its flows." },
  jitterMs: { type: "number", description: "Worst of its flows." },
  lossPermille: { type: "number", description: "Worst of its flows (Ferry's own drops)." },
  unansweredPermille: { type: "number", description: "Worst of its flows." },
  worstLossPermille: {
    type: "number",
    description: "Worst of its flows' drops, unanswered and sequence loss: what by=loss ranks on.",
  },
  priority: { type: "number", description: "Worst (highest) of its flows." },
  ageSeconds: { type: "number", description: "Age of its oldest flow or connection." },
  bytesIn: int,
  bytesOut: int,
  datagramsIn: int,
  datagramsOut: int,
});

/** A listener's merge patch, plus `draining`: runtime state, not a config key (a reload undoes it too). */
function listenerPatch(): Json {
  const patch = mergePatch(listenerKeys);
  return {
    ...patch,
    properties: {
      ...patch.properties,
      draining: { type: "boolean", description: "true drains the listener; false undoes a drain." },
    },
    description:
      "RFC 7396 merge patch; null resets a key to its default. `draining` is not written to the file.",
  };
}

/** The `components.schemas` of the OpenAPI document. */
export const SCHEMAS: Record<string, unknown> = {
  FleetInstance: obj({
    instance: str,
    version: str,
    runtime: str,
    runtimeVersion: str,
    workers: int,
    startedAt: str,
    uptimeSeconds: num,
    flows: { ...int, description: "Live UDP flows." },
    connections: { ...int, description: "Open TCP connections." },
    datagrams: { ...int, description: "Datagrams received from clients since start." },
    configHash: str,
    draining: bool,
    lastSeen: { type: "string", description: "When its last heartbeat was written (ISO 8601)." },
    ageSeconds: num,
    self: { ...bool, description: "The instance answering." },
  }),
  Error: obj({
    error: { type: "string", description: "What went wrong, for a human." },
    errors: arr(obj({
      path: {
        type: "string",
        description: 'Config-file key path (e.g. "listeners[1].max_flows") or parameter.',
      },
      message: str,
      line: { type: "integer", minimum: 1, description: "The key's line in the TOML text sent, when known." },
    }, ["path", "message"])),
  }, ["error", "errors"]),
  Applied: obj(
    {
      configHash: { type: "string", description: "SHA-256 of the running config as written back to a file." },
      persisted: { type: "boolean", description: "True when the config file was rewritten (?persist=true)." },
    },
    ["configHash", "persisted"],
    true,
  ),
  Listener: pub(ListenerSchema),
  ListenerPatch: listenerPatch(),
  ListenerView: obj({
    ...listenerKeys,
    bound: { type: ["string", "null"], description: "The address bound, or null." },
    active: { ...int, description: "Live flows (udp) or open connections (tcp)." },
    draining: bool,
  }, ["name", "protocol", "address", "cluster", "bound", "active", "draining"]),
  Backend: pub(BackendSchema),
  BackendPatch: {
    ...mergePatch({ address: backendKeys.address, weight: backendKeys.weight, state: backendKeys.state }),
    description: "Merge patch (the address cannot change).",
  },
  BackendView: obj({ ...backendKeys, ...backendLive }, ["address", "weight", "state", "effectiveState"]),
  ClusterCreate: obj({ name: { type: "string", pattern: "^[a-z0-9_-]{1,64}$" }, ...clusterKeys }, ["name"]),
  ClusterPatch: {
    ...mergePatch({ name: str, ...clusterKeys }),
    description: "RFC 7396 merge patch; `backends` replaces the whole list.",
  },
  ClusterView: obj(
    { name: str, ...clusterShown, failOpenEvents: int, backends: arr(ref("BackendView")) },
    ["name", "balancer", "backends"],
  ),
  Flow: flow,
  FlowPage: obj({ total: int, offset: int, limit: int, flows: arr(ref("Flow")) }, [
    "total",
    "offset",
    "limit",
    "flows",
  ]),
  Client: client,
  Status: obj(
    {
      version: str,
      runtime: str,
      runtimeVersion: str,
      startedAt: str,
      uptimeSeconds: num,
      workers: int,
      configHash: str,
      configPath: { type: ["string", "null"] },
      draining: bool,
      fleet: {
        type: ["string", "null"],
        description: "This instance's [fleet] instance name when in a fleet, else null.",
      },
      listeners: arr(obj(
        {
          name: str,
          protocol: str,
          address: { type: ["string", "null"] },
          cluster: str,
          draining: bool,
          active: int,
        },
        [],
        true,
      )),
    },
    [],
    true,
  ),
  RawConfig: {
    ...pub(ConfigSchema),
    description:
      "A config file as JSON: the keys of relay, admin, redis, fleet, [[listeners]] and [clusters.NAME].",
  },
  MetricsJson: obj({
    families: arr(obj({
      name: str,
      type: { type: "string", enum: ["counter", "gauge", "histogram"] },
      help: str,
      labels: arr(str),
      samples: arr(
        obj({
          suffix: { type: "string", enum: ["_bucket", "_sum", "_count"], description: "Histograms only." },
          labels: { type: "object", additionalProperties: str },
          value: { type: ["number", "null"] },
        }),
      ),
    })),
  }),
};
