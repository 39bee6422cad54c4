/**
 * The schemas of the OpenAPI document (`openapi.ts`). Config objects use the config file's keys
 * (snake_case); live state added by the API uses camelCase, as the Control reports it.
 *
 * @module
 */

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
const duration = {
  oneOf: [{ type: "string", examples: ["500ms", "30s", "1m30s"] }, { type: "integer", minimum: 0 }],
  description: 'A duration: "500ms", "30s", "5m", "1h", "1m30s", or integer milliseconds.',
};
const address = { type: "string", description: '"ip:port"; IPv6 as "[::1]:53".', examples: ["10.0.0.1:53"] };
const backendState = { type: "string", enum: ["up", "down", "draining"] };

const listenerKeys = {
  name: { type: "string", pattern: "^[a-z0-9_-]{1,64}$" },
  protocol: { type: "string", enum: ["udp", "tcp"], default: "udp" },
  address,
  cluster: str,
  max_flows: { ...int, default: 0, description: "0 = the relay's automatic limit." },
  max_datagram_size: { type: "integer", minimum: 1, maximum: 65507, default: 1500, description: "udp only." },
  sources: obj({
    reject: arr({ type: "string", enum: ["port0", "unspecified", "multicast", "broadcast", "loopback"] }),
    deny: arr({ type: "string", description: "CIDR block" }),
    allow: arr({ type: "string", description: "CIDR block" }),
  }),
};

const backendKeys = {
  address,
  weight: { type: "integer", minimum: 1, maximum: 1000, default: 1 },
  state: { ...backendState, default: "up", description: "draining = no new flows; down = no traffic." },
};

const clusterKeys = {
  balancer: {
    type: "string",
    enum: [
      "round_robin",
      "random",
      "least_flows",
      "power_of_two",
      "rendezvous",
      "maglev",
      "peak_ewma",
      "redis",
    ],
    default: "round_robin",
    description: 'redis: each new flow\'s backend is the "ip:port" in the Redis key redis_key.',
  },
  redis_key: {
    type: "string",
    description: 'balancer = "redis": the key (default "ferry:backend:<cluster>").',
  },
  redis_fallback: {
    type: "string",
    enum: [
      "drop",
      "round_robin",
      "random",
      "least_flows",
      "power_of_two",
      "rendezvous",
      "maglev",
      "peak_ewma",
    ],
    description: 'balancer = "redis": without a usable answer, balance over backends, or drop (default).',
  },
  redis_cache: { ...duration, description: 'balancer = "redis": reuse an answer this long (default 0).' },
  affinity: { type: "string", enum: ["ip_port", "ip"], default: "ip_port" },
  requests: int,
  responses: int,
  front_timeout: duration,
  back_timeout: duration,
  proxy_protocol: { type: "string", enum: ["off", "first", "every"] },
  hash_seed: int,
  fail_open: bool,
  maglev_table_size: { type: "integer", description: "A prime, 3..1000003." },
  connect_timeout: duration,
  idle_timeout: duration,
  proxy_protocol_version: { type: "integer", enum: [1, 2] },
  sequence: obj({
    offset: { type: "integer", minimum: 0, maximum: 65531, description: "Byte offset in the payload." },
    size: { type: "integer", enum: [1, 2, 4], default: 2, description: "Bytes, big-endian." },
  }),
  backends: arr(ref("Backend")),
};

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

const flow = obj(
  {
    id: str,
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
  [],
  true,
);

const client = obj({
  client: address,
  flows: int,
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
  ageSeconds: { type: "number", description: "Age of its oldest flow." },
  bytesIn: int,
  bytesOut: int,
  datagramsIn: int,
  datagramsOut: int,
});

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
    }, ["path", "message"])),
  }, ["error", "errors"]),
  Applied: obj(
    {
      configHash: { type: "string", description: "SHA-256 of the running config as TOML." },
      persisted: { type: "boolean", description: "True when the config file was rewritten (?persist=true)." },
    },
    ["configHash", "persisted"],
    true,
  ),
  Listener: obj(listenerKeys, ["name", "address", "cluster"]),
  ListenerPatch: {
    ...obj(listenerKeys),
    description: "RFC 7396 merge patch; null resets a key to its default.",
  },
  ListenerView: obj({
    ...listenerKeys,
    bound: { type: ["string", "null"], description: "The address bound, or null." },
    active: { ...int, description: "Live flows (udp) or open connections (tcp)." },
    draining: bool,
  }),
  Backend: obj(backendKeys, ["address"]),
  BackendPatch: {
    ...obj({ weight: backendKeys.weight, state: backendKeys.state }),
    description: "Merge patch.",
  },
  BackendView: obj({ ...backendKeys, ...backendLive }),
  ClusterCreate: obj({ name: listenerKeys.name, ...clusterKeys }, ["name"]),
  ClusterPatch: {
    ...obj(clusterKeys),
    description: "RFC 7396 merge patch; `backends` replaces the whole list.",
  },
  ClusterView: obj({ name: str, ...clusterKeys, failOpenEvents: int, backends: arr(ref("BackendView")) }),
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
    type: "object",
    description:
      "A config file as JSON: the keys of relay, admin, redis, fleet, [[listeners]] and [clusters.NAME].",
    properties: {
      relay: { type: "object" },
      admin: { type: "object" },
      redis: { type: "object" },
      fleet: { type: "object" },
      listeners: arr(ref("Listener")),
      clusters: { type: "object" },
    },
  },
  MetricsJson: obj({
    families: arr(obj({
      name: str,
      type: { type: "string", enum: ["counter", "gauge"] },
      help: str,
      labels: arr(str),
      samples: arr(
        obj({ labels: { type: "object", additionalProperties: str }, value: { type: ["number", "null"] } }),
      ),
    })),
  }),
};
