/**
 * Edge protection routes: `GET/POST/DELETE /bans` and `GET/DELETE /top` (top talkers, reset by DELETE or
 * `?reset=true`). Without a protection control every route answers 404.
 *
 * @module
 */

import { Hono } from "hono";
import { parseCidr } from "../../core/address.ts";
import { parseDuration } from "../../core/config.ts";
import { ApiError, badField } from "../errors.ts";
import type { ProtectionControl } from "../../core/protection_api.ts";
import { intOf, jsonBody, queryOf } from "../validate.ts";

/** Longest ban reason kept (a label for operators, not a document). */
export const MAX_REASON = 200;
/** Longest ban TTL: a year; "0" or absent means until removed. */
export const MAX_BAN_TTL_MS = 366 * 24 * 3_600_000;

function cidrOf(value: unknown, path: string): string {
  if (typeof value !== "string") {
    throw badField(path, 'required: a CIDR block or address, e.g. "203.0.113.0/24"');
  }
  const parsed = parseCidr(value);
  if (typeof parsed === "string") throw badField(path, parsed);
  return value;
}

function ttlOf(value: unknown): number {
  if (value === undefined) return 0;
  const ms = typeof value === "number" && Number.isInteger(value)
    ? value * 1000
    : typeof value === "string"
    ? parseDuration(value)
    : 'expected a duration ("10m") or integer seconds';
  if (typeof ms === "string") throw badField("ttl", ms);
  if (ms < 0 || ms > MAX_BAN_TTL_MS) {
    throw badField("ttl", "out of range (0 = until removed, at most 366 days)");
  }
  return ms;
}

/** The protection routes over `control` (404s when it is absent). */
export function protectionRoutes(control: ProtectionControl | undefined): Hono {
  const app = new Hono();
  const need = (): ProtectionControl => {
    if (control === undefined) throw new ApiError(404, "edge protection is not available in this process");
    return control;
  };

  app.get("/bans", async (c) => {
    queryOf(c, []);
    return c.json({ bans: await need().bans() });
  });

  app.post("/bans", async (c) => {
    queryOf(c, []);
    const p = need();
    const body = await jsonBody(c);
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw badField("", "expected an object { cidr, ttl?, reason? }");
    }
    const b = body as Record<string, unknown>;
    for (const key of Object.keys(b)) {
      if (!["cidr", "ttl", "reason"].includes(key)) {
        throw badField(key, "unknown field (known: cidr, ttl, reason)");
      }
    }
    const cidr = cidrOf(b.cidr, "cidr");
    const ttlMs = ttlOf(b.ttl);
    const reason = b.reason === undefined ? "" : b.reason;
    if (typeof reason !== "string" || reason.length > MAX_REASON) {
      throw badField("reason", `expected a string of at most ${MAX_REASON} characters`);
    }
    return c.json({ ban: await p.addBan({ cidr, ttlMs, reason }) }, 201);
  });

  app.delete("/bans", async (c) => {
    const q = queryOf(c, ["cidr"]);
    const cidr = cidrOf(q.cidr, "cidr");
    if (!(await need().removeBan(cidr))) throw new ApiError(404, `no ban on ${cidr}`);
    return c.json({ removed: cidr });
  });

  app.get("/top", async (c) => {
    const q = queryOf(c, ["n", "reset"]);
    const n = intOf(q, "n", 10, 1, 1000);
    if (q.reset !== undefined && q.reset !== "true" && q.reset !== "false") {
      throw badField("reset", `expected true or false, got ${JSON.stringify(q.reset)}`);
    }
    const reset = q.reset === "true";
    return c.json(await need().top(n, reset));
  });

  app.delete("/top", async (c) => {
    queryOf(c, []);
    return c.json(await need().top(0, true));
  });

  return app;
}
