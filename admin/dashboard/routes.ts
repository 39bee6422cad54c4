/**
 * The live dashboard: `GET /` (the page) and `GET /ui/{file}` (its script modules, style sheet and icon),
 * all bundled into the process (see ./assets.ts). They need no token because they hold no data: the page's
 * scripts ask for the token once, keep it in the tab's sessionStorage, and poll the JSON API with it, only
 * while the page is visible. The relay keeps no history for the dashboard; the page does.
 *
 * Every dashboard response carries a strict Content-Security-Policy: same-origin scripts, styles, images
 * and fetches only, no inline script or style, no framing, no form posts, no `<base>`.
 *
 * @module
 */

import { Hono } from "hono";
import { ApiError } from "../errors.ts";
import { queryOf } from "../validate.ts";
import { ASSETS, INDEX_HTML } from "./assets.ts";

/** The dashboard's Content-Security-Policy. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Browser features the dashboard never uses, denied outright. */
const PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()";

/** The paths the dashboard serves (all open: they hold no data). */
export const DASHBOARD_PATHS: readonly string[] = ["/", ...ASSETS.keys()];

/** The marker in index.html that tells the page whether the API wants a token. */
const AUTH_MARKER = '<meta name="ferry-auth" content="token">';

/**
 * The dashboard routes. `tokenRequired` (asked at each page load: a reload may set or clear the token) is
 * told to the page (a `<meta>`), so it asks for a token only when the API wants one, rather than learning
 * it from a failed request.
 */
export function dashboardRoutes(tokenRequired: () => boolean): Hono {
  const app = new Hono();
  const open = INDEX_HTML.replace(AUTH_MARKER, '<meta name="ferry-auth" content="none">');
  const headers = (type: string) => ({
    "content-type": type,
    "content-security-policy": DASHBOARD_CSP,
    "permissions-policy": PERMISSIONS_POLICY,
  });

  app.get("/", (c) => {
    queryOf(c, []);
    return c.body(tokenRequired() ? INDEX_HTML : open, 200, headers("text/html; charset=utf-8"));
  });

  app.get("/ui/:file", (c) => {
    queryOf(c, []);
    const asset = ASSETS.get(c.req.path);
    if (asset === undefined) {
      throw new ApiError(404, `no dashboard file ${c.req.path}; known: ${[...ASSETS.keys()].join(", ")}`);
    }
    return c.body(asset.body, 200, headers(asset.type));
  });

  return app;
}

/** The dashboard's entries in the OpenAPI document. */
export const DASHBOARD_OPENAPI = {
  "/": {
    get: {
      summary:
        "The live dashboard (HTML). Holds no data, so needs no token; its scripts call this API with one",
      security: [],
      responses: {
        "200": { description: "The page", content: { "text/html": { schema: { type: "string" } } } },
      },
    },
  },
  "/ui/{file}": {
    get: {
      summary: "The dashboard's scripts, style sheet and icon (bundled into the binary)",
      security: [],
      parameters: [{
        name: "file",
        in: "path",
        required: true,
        description: "The file's name",
        schema: { type: "string", enum: [...ASSETS.keys()].map((p) => p.slice("/ui/".length)) },
      }],
      responses: {
        "200": {
          description: "The file",
          content: {
            "text/javascript": { schema: { type: "string" } },
            "text/css": { schema: { type: "string" } },
            "image/svg+xml": { schema: { type: "string" } },
          },
        },
        "404": {
          description: "No such file",
          content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
        },
      },
    },
  },
};
