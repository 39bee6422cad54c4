/**
 * The OpenAPI description of the edge-protection routes (admin/routes/protection.ts), spread into
 * OPENAPI's paths.
 *
 * @module
 */

const json = (schema: unknown) => ({ "application/json": { schema } });
const ok = (description: string, schema: unknown) => ({ description, content: json(schema) });
const err = (description: string) => ({ description, content: json({ $ref: "#/components/schemas/Error" }) });
const str = { type: "string" };
const int = { type: "integer", minimum: 0 };
const nullable = (type: string) => ({ type: [type, "null"] });

const BAN = {
  type: "object",
  properties: {
    cidr: { type: "string", examples: ["203.0.113.0/24"] },
    reason: str,
    origin: { type: "string", enum: ["api", "auto", "fleet"] },
    createdAt: str,
    expiresAt: nullable("string"),
    ttlSeconds: nullable("integer"),
    hits: { ...int, description: "New flows and connections it refused." },
  },
  required: ["cidr", "reason", "origin", "createdAt", "expiresAt", "ttlSeconds", "hits"],
};
const RANKING = {
  type: "object",
  properties: {
    total: int,
    maxError: { ...int, description: "No count exceeds the truth by more than this (≤ total / capacity)." },
    top: {
      type: "array",
      items: {
        type: "object",
        properties: { source: str, count: int, error: int },
        required: ["source", "count", "error"],
      },
    },
  },
};
const TOP = {
  type: "object",
  properties: {
    since: str,
    capacity: int,
    datagrams: RANKING,
    bytes: RANKING,
    flows: RANKING,
    drops: RANKING,
  },
};
const CIDR_QUERY = {
  name: "cidr",
  in: "query",
  required: true,
  description: 'The banned block, e.g. "203.0.113.0/24" (URL-encode the slash or not).',
  schema: str,
};
const E400 = err("Invalid request: `errors` names each bad field.");

/** The protection paths. */
export const PROTECTION_PATHS = {
  "/api/v1/bans": {
    get: {
      summary: "Bans in force, with hit counts (summed over workers)",
      responses: {
        "200": ok("Bans", { type: "object", properties: { bans: { type: "array", items: BAN } } }),
      },
    },
    post: {
      summary: "Ban a CIDR block for a TTL (new flows and connections from it are dropped as `banned`)",
      requestBody: {
        required: true,
        content: json({
          type: "object",
          properties: {
            cidr: str,
            ttl: {
              type: ["string", "integer"],
              description: 'A duration ("10m") or seconds; absent or 0 = until removed.',
            },
            reason: str,
          },
          required: ["cidr"],
        }),
      },
      responses: { "201": ok("Placed", { type: "object", properties: { ban: BAN } }), "400": E400 },
    },
    delete: {
      summary: "Lift the ban on a block",
      parameters: [CIDR_QUERY],
      responses: {
        "200": ok("Lifted", { type: "object" }),
        "400": E400,
        "404": err("No ban on that block."),
      },
    },
  },
  "/api/v1/top": {
    get: {
      summary: "Top talkers by datagrams, bytes, new flows and drops (Space-Saving, bounded error)",
      parameters: [
        { name: "n", in: "query", description: "Sources per ranking (1..1000, default 10).", schema: int },
        {
          name: "reset",
          in: "query",
          description: "true: start counting afresh after answering.",
          schema: str,
        },
      ],
      responses: { "200": ok("Top talkers", TOP), "400": E400 },
    },
    delete: {
      summary: "Reset the top-talker summaries (answers with what they held)",
      responses: { "200": ok("Top talkers before the reset", TOP) },
    },
  },
};
