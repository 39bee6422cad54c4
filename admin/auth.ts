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

/** Paths served without a token: liveness and readiness probes, and the dashboard's page and files. */
export const OPEN_PATHS: ReadonlySet<string> = new Set(["/healthz", "/readyz", ...DASHBOARD_PATHS]);

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
 * is off (the shell allows that only on loopback, see `checkAdminBinding`). Failures are 401s.
 */
export function bearerAuth(token: string): MiddlewareHandler {
  if (token === "") return (_c, next) => next();
  const expected = sha256(token);
  return async (c, next) => {
    if (OPEN_PATHS.has(c.req.path)) return next();
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
