/**
 * The admin API's change rules of issue 10, in process over a fake Control: the token is never shown and a
 * replacement that sends the redacted marker back keeps it; `GET /config` has an ETag and a write with a
 * stale `If-Match` is a 412 that changes nothing; a token read per request is live at once.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createAdminApp } from "../admin/app.ts";
import { configToToml } from "../core/config.ts";
import { FakeControl } from "./support/fake_control.ts";

const TOKEN = "s3cret"; // FAKE_CONFIG_TOML's

function auth(token = TOKEN, more: Record<string, string> = {}): Record<string, string> {
  return { authorization: `Bearer ${token}`, ...more };
}

function setup() {
  const control = new FakeControl();
  const app = createAdminApp(control, { token: () => control.config().admin.token });
  return { control, app };
}

describe("admin API: secrets", () => {
  test("GET /config never shows the token, as TOML or JSON", async () => {
    const { app } = setup();
    const toml = await (await app.request("/api/v1/config", { headers: auth() })).text();
    assert.ok(!toml.includes(TOKEN), toml);
    assert.match(toml, /token = "<redacted>"/);
    const json = await (await app.request("/api/v1/config?format=json", { headers: auth() })).json();
    assert.equal(json.admin.token, "<redacted>");
    assert.ok(!JSON.stringify(json).includes(TOKEN));
  });

  test("a PUT that sends the redacted token back keeps the token", async () => {
    const { control, app } = setup();
    const toml = await (await app.request("/api/v1/config", { headers: auth() })).text();
    const r = await app.request("/api/v1/config", {
      method: "PUT",
      headers: auth(TOKEN, { "content-type": "text/plain" }),
      body: toml.replace("max_flows = 100", "max_flows = 64"),
    });
    assert.equal(r.status, 200, await r.text());
    assert.equal(control.current.admin.token, TOKEN);
    assert.equal(control.current.listeners[1].maxFlows, 64);
    const json = await (await app.request("/api/v1/config?format=json", { headers: auth() })).json();
    json.listeners[1].max_flows = 65;
    const j = await app.request("/api/v1/config", {
      method: "PUT",
      headers: auth(TOKEN, { "content-type": "application/json" }),
      body: JSON.stringify(json),
    });
    assert.equal(j.status, 200, await j.text());
    assert.equal(control.current.admin.token, TOKEN);
  });

  test("a PUT that changes the token applies it at once: the old one stops working", async () => {
    const { control, app } = setup();
    const toml = configToToml(control.current).replace(`token = "${TOKEN}"`, 'token = "fresh-token"');
    const r = await app.request("/api/v1/config", {
      method: "PUT",
      headers: auth(TOKEN, { "content-type": "text/plain" }),
      body: toml,
    });
    assert.equal(r.status, 200, await r.text());
    assert.equal((await app.request("/api/v1/status", { headers: auth() })).status, 401);
    assert.equal((await app.request("/api/v1/status", { headers: auth("fresh-token") })).status, 200);
  });
});

describe("admin API: conditional writes (If-Match)", () => {
  test("GET /config has the config hash as its ETag", async () => {
    const { control, app } = setup();
    const r = await app.request("/api/v1/config", { headers: auth() });
    assert.equal(r.headers.get("etag"), `"${control.configHash()}"`);
  });

  test("a write with a stale If-Match is a 412 and changes nothing; a fresh one applies", async () => {
    const { control, app } = setup();
    const etag = (await app.request("/api/v1/config", { headers: auth() })).headers.get("etag")!;
    const patch = (weight: number, ifMatch: string) =>
      app.request("/api/v1/clusters/game/backends/10.0.1.1:7001", {
        method: "PATCH",
        headers: auth(TOKEN, { "content-type": "application/json", "if-match": ifMatch }),
        body: JSON.stringify({ weight }),
      });
    const first = await patch(5, etag);
    assert.equal(first.status, 200, await first.text());
    const before = configToToml(control.current);
    const stale = await patch(6, etag);
    assert.equal(stale.status, 412, await stale.text());
    assert.equal(configToToml(control.current), before);
    const fresh = (await app.request("/api/v1/config", { headers: auth() })).headers.get("etag")!;
    assert.notEqual(fresh, etag);
    assert.equal((await patch(6, fresh)).status, 200);
    assert.equal(control.current.clusters.find((c) => c.name === "game")!.backends[0].weight, 6);
    assert.equal((await patch(7, "*")).status, 200);
    assert.equal((await patch(8, "not-an-etag")).status, 400);
  });

  test("If-Match applies to PUT /config, POST and DELETE too", async () => {
    const { control, app } = setup();
    const stale = '"0000"';
    const before = configToToml(control.current);
    const h = auth(TOKEN, { "content-type": "application/json", "if-match": stale });
    const put = await app.request("/api/v1/config", {
      method: "PUT",
      headers: { ...h, "content-type": "text/plain" },
      body: before,
    });
    assert.equal(put.status, 412);
    const post = await app.request("/api/v1/clusters/spare/backends", {
      method: "POST",
      headers: h,
      body: JSON.stringify({ address: "10.0.2.2:9000" }),
    });
    assert.equal(post.status, 412);
    const del = await app.request("/api/v1/listeners/dns", { method: "DELETE", headers: h });
    assert.equal(del.status, 412);
    assert.equal(configToToml(control.current), before);
  });
});
