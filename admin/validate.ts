/**
 * Small validators for what a request carries besides config edits: query parameters, JSON bodies and
 * addresses in paths. Each failure is a 400 naming the parameter (or "" for the body as a whole).
 *
 * Query parameters are strict: an unknown or repeated one is refused, so a typo such as `?persits=true` is
 * an error instead of a silently runtime-only change.
 *
 * @module
 */

import type { Context } from "hono";
import { formatIp, formatSocketAddress, parseIp, parseSocketAddress } from "../core/address.ts";
import { ApiError, badField } from "./errors.ts";

/** The query parameters of a request, refusing any not in `allowed` and any given twice. */
export function queryOf(c: Context, allowed: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, values] of Object.entries(c.req.queries())) {
    if (!allowed.includes(key)) {
      const known = allowed.length === 0 ? "none" : allowed.join(", ");
      throw badField(key, `unknown query parameter (known: ${known})`);
    }
    if (values.length !== 1) throw badField(key, "given more than once");
    out[key] = values[0];
  }
  return out;
}

/** `?persist=true|false` (default false). */
export function persistOf(query: Record<string, string>): boolean {
  const v = query.persist;
  if (v === undefined || v === "false") return false;
  if (v === "true") return true;
  throw badField("persist", `expected true or false, got ${JSON.stringify(v)}`);
}

/** An integer query parameter within min..max, or `fallback` when absent. */
export function intOf(
  query: Record<string, string>,
  key: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const v = query[key];
  if (v === undefined) return fallback;
  if (!/^\d{1,15}$/.test(v)) throw badField(key, `expected an integer, got ${JSON.stringify(v)}`);
  const n = Number(v);
  if (n < min || n > max) throw badField(key, `${n} is out of range (${min}..${max})`);
  return n;
}

/** A query parameter that must be one of `options`, or `fallback` when absent. */
export function choiceOf<T extends string>(
  query: Record<string, string>,
  key: string,
  options: readonly T[],
  fallback: T,
): T {
  const v = query[key];
  if (v === undefined) return fallback;
  if ((options as readonly string[]).includes(v)) return v as T;
  throw badField(key, `${JSON.stringify(v)} is not one of ${options.map((o) => `"${o}"`).join(", ")}`);
}

/** True for application/json and any +json type (application/merge-patch+json). */
export function isJsonType(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i.test(contentType);
}

/**
 * The request's JSON body. An empty body is `undefined` when `optional`, else a 400; a body declared as
 * another media type is a 415; unparsable JSON is a 400 at path "".
 */
export async function jsonBody(c: Context, optional = false): Promise<unknown> {
  const type = c.req.header("content-type");
  const text = await c.req.text();
  if (text.trim() === "") {
    if (optional) return undefined;
    throw badField("", "a JSON body is required");
  }
  if (type !== undefined && !isJsonType(type)) {
    throw new ApiError(415, `expected a JSON body (application/json), got ${type}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badField("", `not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** An "ip:port" (IPv6 as "[ip]:port") from a path or query, in canonical form. */
export function addressOf(text: string, path: string): string {
  const parsed = parseSocketAddress(text);
  if (typeof parsed === "string") throw badField(path, parsed);
  return formatSocketAddress(parsed);
}

/** A client as "ip" or "ip:port" (IPv6 bare, bracketed, or "[ip]:port"), in canonical form. */
export function clientOf(text: string, path: string): string {
  const parsed = parseSocketAddress(text);
  if (typeof parsed !== "string") return formatSocketAddress(parsed);
  const ip = parseIp(text);
  if (ip !== null) return formatIp(ip);
  throw badField(path, `${JSON.stringify(text)} is not an IP address or ip:port`);
}
