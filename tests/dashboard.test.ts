/**
 * The dashboard's routes in process (Hono's app.request), under whichever runtime runs the suite, so both
 * `deno` and `bun` are shown to bundle and serve the files (the compiled binary is
 * tests/dashboard_browser.test.ts's): the page and every file it or its modules name are served without a
 * token, with the strict CSP; nothing else opens up; `/status` says whether the instance is in a fleet.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createAdminApp } from "../admin/app.ts";
import type { FleetAccess } from "../core/control_api.ts";
import { ASSETS, INDEX_HTML } from "../admin/dashboard/assets.ts";
import { DASHBOARD_CSP } from "../admin/dashboard/routes.ts";
import { FakeControl } from "./support/fake_control.ts";

const TOKEN = "dashboard-test-token";

function app(token = TOKEN, fleet: FleetAccess | null = null) {
  return createAdminApp(new FakeControl(), { token, fleet });
}

/** The same-origin paths a page or module names: src/href attributes and ES module imports. */
function referenced(text: string): string[] {
  const paths = new Set<string>();
  for (const [, p] of text.matchAll(/(?:src|href)="(\/[^"]*)"/g)) paths.add(p);
  for (const [, p] of text.matchAll(/from "\.\/([^"]+)"/g)) paths.add(`/ui/${p}`);
  return [...paths];
}

describe("dashboard", () => {
  test("the page is served without a token, with a strict CSP", async () => {
    const res = await app().request("/");
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
    const csp = res.headers.get("content-security-policy") ?? "";
    assert.equal(csp, DASHBOARD_CSP);
    for (
      const directive of [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
      ]
    ) {
      assert.ok(csp.split("; ").includes(directive), `CSP lacks ${directive}: ${csp}`);
    }
    assert.doesNotMatch(csp, /unsafe|https?:|\*/);
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    assert.equal(res.headers.get("x-frame-options"), "DENY");
    assert.equal(res.headers.get("referrer-policy"), "no-referrer");
    const html = await res.text();
    assert.equal(html, INDEX_HTML);
    assert.match(html, /<meta name="ferry-auth" content="token">/);
    // No inline script or style, no other origin: the CSP would refuse them anyway.
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/);
    assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=|https?:\/\//i);
  });

  test("every file the page and its modules name is served without a token", async () => {
    const a = app();
    const seen = new Set<string>();
    const queue = referenced(INDEX_HTML);
    while (queue.length > 0) {
      const path = queue.shift()!;
      if (seen.has(path)) continue;
      seen.add(path);
      const res = await a.request(path);
      const body = await res.text();
      assert.equal(res.status, 200, `${path}: ${body}`);
      assert.equal(res.headers.get("content-security-policy"), DASHBOARD_CSP, path);
      const type = res.headers.get("content-type") ?? "";
      if (path.endsWith(".js")) {
        assert.match(type, /^text\/javascript/, path);
        // The CSP forbids eval and inline code; the page's scripts must not need them.
        assert.doesNotMatch(body, /\beval\(|new Function|innerHTML|\.style\.|setAttribute\("style"/, path);
        queue.push(...referenced(body));
      }
      if (path.endsWith(".css")) assert.match(type, /^text\/css/, path);
      if (path.endsWith(".svg")) assert.match(type, /^image\/svg\+xml/, path);
    }
    assert.deepEqual([...seen].filter((p) => p.startsWith("/ui/")).sort(), [...ASSETS.keys()].sort());
  });

  test("only the dashboard's own files are open", async () => {
    const a = app();
    for (const path of ["/ui/nope.js", "/ui/", "/index.html", "/api/v1/status"]) {
      const res = await a.request(path);
      assert.equal(res.status, 401, path);
      await res.body?.cancel();
    }
    const known = await a.request("/ui/nope.js", { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(known.status, 404);
    assert.match((await known.json()).error, /no dashboard file/);
    const query = await a.request("/?x=1");
    assert.equal(query.status, 400);
    await query.body?.cancel();
    const post = await a.request("/", { method: "POST" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
  });

  test("the page says when the API wants no token", async () => {
    const html = await (await app("").request("/")).text();
    assert.match(html, /<meta name="ferry-auth" content="none">/);
    assert.doesNotMatch(html, /content="token"/);
  });

  test("/status names the fleet instance, or null", async () => {
    const auth = { headers: { authorization: `Bearer ${TOKEN}` } };
    assert.equal((await (await app().request("/api/v1/status", auth)).json()).fleet, null);
    const fleet: FleetAccess = {
      instance: "edge-1",
      connected: () => true,
      publish: () => Promise.resolve(),
      instances: () => Promise.resolve([]),
    };
    const status = await (await app(TOKEN, fleet).request("/api/v1/status", auth)).json();
    assert.equal(status.fleet, "edge-1");
  });
});
