/**
 * Bearer-token authentication for the admin API. The presented token is compared with the configured one
 * in constant time: both are hashed with SHA-256 and the digests compared with a XOR loop, so neither the
 * position of the first difference nor the tokens' lengths show in the timing.
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import { DASHBOARD_PATHS } from "./dashboard/routes.ts";
import { ApiError } from "./errors.ts";

/**
 * Paths served without a token: liveness and readiness probes, the dashboard's page and files, and the API
 * reference page with its script and style. None holds data: the pages ask for the token once and send it
 * with every call they make.
 */
export const OPEN_PATHS: ReadonlySet<string> = new Set([
  "/healthz",
  "/readyz",
  ...DASHBOARD_PATHS,
  "/api/v1/docs",
  "/api/v1/docs/app.js",
  "/api/v1/docs/app.css",
]);

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** True when the digests are equal, looking at every byte whatever the differences. */
export function digestsEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/** True when `presented` equals `expected`, in time independent of where or whether they differ. */
export async function tokensEqual(presented: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all([sha256(presented), sha256(expected)]);
  return digestsEqual(a, b);
}

/**
 * Requires `Authorization: Bearer <token>` on every path but {@link OPEN_PATHS}; with an empty token, auth
 * is off (the shell allows that only on loopback, see `checkAdminBinding`). Failures are 401s. `token` may
 * be a function, asked at every request: the token of the running config, so a change is live at once.
 */
export function bearerAuth(token: string | (() => string)): MiddlewareHandler {
  const current = typeof token === "string" ? () => token : token;
  // The digest of the token last seen, so an unchanged token is hashed once.
  let cached: { token: string; digest: Promise<Uint8Array> } | null = null;
  return async (c, next) => {
    const t = current();
    if (t === "" || OPEN_PATHS.has(c.req.path)) return next();
    if (cached?.token !== t) cached = { token: t, digest: sha256(t) };
    const expected = cached.digest;
    const header = c.req.header("authorization");
    if (header === undefined) {
      throw new ApiError(401, "authentication required: send Authorization: Bearer <token>");
    }
    const m = /^Bearer +([\x21-\x7e]+) *$/i.exec(header);
    if (m === null) throw new ApiError(401, "malformed Authorization header: expected Bearer <token>");
    if (!digestsEqual(await sha256(m[1]), await expected)) throw new ApiError(401, "invalid token");
    return next();
  };
}
