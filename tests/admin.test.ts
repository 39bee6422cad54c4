/**
 * The admin API over a fake Control, in process (Hono's app.request): every route, auth, validation that
 * names the bad field and changes nothing, metrics under a strict exposition parser, the OpenAPI document,
 * and one real server on 127.0.0.1.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { checkAdminBinding, createAdminApp } from "../admin/app.ts";
import { digestsEqual, tokensEqual } from "../admin/auth.ts";
import { METRICS } from "../admin/metric_names.ts";
import { OPENAPI } from "../admin/openapi.ts";
import { mergePatch } from "../core/config_raw.ts";
import { topClients } from "../admin/clients.ts";
import { configToToml, parseConfigToml } from "../core/config.ts";
import { serve } from "../shell/process/serve.ts";
import { configOf, FAKE_CONFIG_TOML, FakeControl, flow } from "./support/fake_control.ts";
import { parsePrometheus } from "./support/prometheus.ts";
import { addr } from "./support/fixtures.ts";

const TOKEN = "t0ken-for-tests";

// deno-lint-ignore no-explicit-any
type Json = any;

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: Json;
}

interface CallOptions {
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as is, with `type` (default text/plain). */
  text?: string;
  type?: string;
  /** The bearer token; null sends no Authorization header. Default: the right one. */
  token?: string | null;
  headers?: Record<string, string>;
}

async function call(app: Hono, method: string, path: string, o: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...o.headers };
  const token = o.token === undefined ? TOKEN : o.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (o.body !== undefined) {
    body = JSON.stringify(o.body);
    headers["content-type"] = "application/json";
  }
  if (o.text !== undefined) {
    body = o.text;
    headers["content-type"] = o.type ?? "text/plain";
  }
  const res = await app.request(path, { method, headers, body });
  const text = await res.text();
  const json = (res.headers.get("content-type") ?? "").includes("json") ? JSON.parse(text) : undefined;
  return { status: res.status, headers: res.headers, text, json };
}

function setup(token = TOKEN): { control: FakeControl; app: Hono } {
  const control = new FakeControl();
  return { control, app: createAdminApp(control, { token }) };
}

/** Asserts a JSON error response with `status` and, if given, an error at each path. */
function assertError(r: Reply, status: number, paths: string[] = []): void {
  assert.equal(r.status, status, r.text);
  assert.equal(typeof r.json?.error, "string", r.text);
  assert.ok(Array.isArray(r.json.errors), r.text);
  for (const p of paths) {
    assert.ok(r.json.errors.some((e: Json) => e.path === p), `expected an error at ${p}, got ${r.text}`);
  }
}

/** Asserts a request changed nothing: same config, no apply. */
function assertUnchanged(control: FakeControl, before: string): void {
  assert.equal(configToToml(control.current), before);
  assert.equal(control.callsTo("applyConfig").length, 0);
}

describe("auth", () => {
  test("/healthz and /readyz are open; /readyz is 503 when not ready", async () => {
    const { control, app } = setup();
    const h = await call(app, "GET", "/healthz", { token: null });
    assert.equal(h.status, 200);
    assert.deepEqual(h.json, { status: "ok" });
    assert.equal((await call(app, "GET", "/readyz", { token: null })).status, 200);
    control.isReady = false;
    const r = await call(app, "GET", "/readyz", { token: null });
    assertError(r, 503);
    assert.equal(r.json.status, "not ready");
    assert.equal((await call(app, "GET", "/healthz", { token: null })).status, 200);
  });

  test("everything else needs the token", async () => {
    const { app } = setup();
    for (const path of ["/api/v1/status", "/metrics", "/api/v1/openapi.json", "/api/v1/config", "/nowhere"]) {
      const r = await call(app, "GET", path, { token: null });
      assertError(r, 401);
      assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="ferry"');
    }
    const del = await call(app, "DELETE", "/api/v1/listeners/dns", { token: null });
    assertError(del, 401);
  });

  test("wrong, short, long and malformed tokens are refused", async () => {
    const { control, app } = setup();
    for (const token of ["wrong", "", TOKEN + "x", TOKEN.slice(0, -1), TOKEN.toUpperCase()]) {
      assertError(await call(app, "GET", "/api/v1/status", { token }), 401);
    }
    for (const authorization of [`Basic ${TOKEN}`, TOKEN, `Bearer`, `Bearer ${TOKEN} extra`]) {
      const r = await call(app, "GET", "/api/v1/status", { token: null, headers: { authorization } });
      assertError(r, 401);
    }
    assertError(await call(app, "DELETE", "/api/v1/clusters/spare", { token: "nope" }), 401);
    assert.equal(control.callsTo("applyConfig").length, 0);
    const ok = await call(app, "GET", "/api/v1/status", {
      token: null,
      headers: { authorization: `bearer ${TOKEN}` },
    });
    assert.equal(ok.status, 200);
  });

  test("an empty token turns auth off", async () => {
    const { app } = setup("");
    assert.equal((await call(app, "GET", "/api/v1/status", { token: null })).status, 200);
  });

  test("token comparison", async () => {
    assert.equal(await tokensEqual("abc", "abc"), true);
    assert.equal(await tokensEqual("abc", "abd"), false);
    assert.equal(await tokensEqual("abc", "abcd"), false);
    assert.equal(digestsEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])), true);
    assert.equal(digestsEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 0])), false);
  });

  test("checkAdminBinding allows no token only on loopback", () => {
    assert.equal(checkAdminBinding(addr("127.0.0.1:9901"), ""), null);
    assert.equal(checkAdminBinding(addr("127.0.0.5:9901"), ""), null);
    assert.equal(checkAdminBinding(addr("[::1]:9901"), ""), null);
    assert.equal(checkAdminBinding(addr("[::ffff:127.0.0.1]:9901"), ""), null);
    assert.match(checkAdminBinding(addr("0.0.0.0:9901"), "") ?? "", /no token/);
    assert.match(checkAdminBinding(addr("[::]:9901"), "") ?? "", /no token/);
    assert.match(checkAdminBinding(addr("10.1.2.3:9901"), "") ?? "", /admin\.token/);
    assert.equal(checkAdminBinding(addr("0.0.0.0:9901"), "secret"), null);
  });
});

describe("errors and headers", () => {
  test("unknown routes are JSON 404s", async () => {
    const { app } = setup();
    assertError(await call(app, "GET", "/api/v1/nope"), 404);
    assertError(await call(app, "GET", "/api/v2/status"), 404);
  });

  test("wrong methods are JSON 405s with Allow", async () => {
    const { app } = setup();
    const r = await call(app, "PUT", "/api/v1/status");
    assertError(r, 405);
    assert.match(r.headers.get("allow") ?? "", /GET/);
    const d = await call(app, "DELETE", "/api/v1/listeners");
    assertError(d, 405);
    assert.match(d.headers.get("allow") ?? "", /POST/);
    assertError(await call(app, "POST", "/healthz", { token: null }), 405);
  });

  test("bodies over 1 MiB are 413s", async () => {
    const { control, app } = setup();
    const before = configToToml(control.current);
    const r = await call(app, "PUT", "/api/v1/config", { text: "#".repeat(1024 * 1024 + 1) });
    assertError(r, 413);
    assertUnchanged(control, before);
  });

  test("secure headers and no caching", async () => {
    const { app } = setup();
    const r = await call(app, "GET", "/api/v1/status");
    assert.equal(r.headers.get("x-content-type-options"), "nosniff");
    assert.equal(r.headers.get("x-frame-options"), "DENY");
    assert.equal(r.headers.get("cache-control"), "no-store");
  });

  test("bad JSON is a 400, another media type a 415", async () => {
    const { control, app } = setup();
    const before = configToToml(control.current);
    assertError(
      await call(app, "POST", "/api/v1/listeners", { text: "{nope", type: "application/json" }),
      400,
      [""],
    );
    assertError(await call(app, "POST", "/api/v1/listeners", { text: "name=1", type: "text/plain" }), 415);
    assertError(await call(app, "POST", "/api/v1/listeners", { body: [1, 2] }), 400, [""]);
    assertError(await call(app, "POST", "/api/v1/listeners"), 400, [""]);
    assertUnchanged(control, before);
  });

  test("unknown or repeated query parameters and bad persist values are refused", async () => {
    const { control, app } = setup();
    const before = configToToml(control.current);
    const patch = { body: { max_flows: 5 } };
    assertError(await call(app, "PATCH", "/api/v1/listeners/game?persits=true", patch), 400, ["persits"]);
    assertError(await call(app, "PATCH", "/api/v1/listeners/game?persist=yes", patch), 400, ["persist"]);
    assertError(await call(app, "PATCH", "/api/v1/listeners/game?persist=true&persist=false", patch), 400, [
      "persist",
    ]);
    assertError(await call(app, "GET", "/api/v1/status?verbose=1"), 400, ["verbose"]);
    assertUnchanged(control, before);
  });

  test("an unexpected failure is a JSON 500", async () => {
    const control = new FakeControl();
    const seen: unknown[] = [];
    const app = createAdminApp(control, { token: TOKEN, onError: (e) => seen.push(e) });
    control.status = () => {
      throw new Error("boom");
    };
    const r = await call(app, "GET", "/api/v1/status");
    assertError(r, 500);
    assert.match(r.json.error, /boom/);
    assert.equal(seen.length, 1);
  });
});

describe("status, drain, reload", () => {
  test("GET /status", async () => {
    const { app } = setup();
    const r = await call(app, "GET", "/api/v1/status");
    assert.equal(r.status, 200);
    assert.equal(r.json.version, "0.1.0-test");
    assert.deepEqual(r.json.listeners.map((l: Json) => l.name), ["dns", "game", "game-tcp"]);
  });

  test("POST /drain, everywhere or on one listener", async () => {
    const { control, app } = setup();
    const one = await call(app, "POST", "/api/v1/drain", { body: { listener: "dns" } });
    assert.equal(one.status, 200);
    assert.deepEqual(one.json, { draining: true, listener: "dns" });
    const all = await call(app, "POST", "/api/v1/drain");
    assert.deepEqual(all.json, { draining: true, listener: null });
    assert.deepEqual(control.callsTo("drain").map((c) => c.args[0]), ["dns", undefined]);
  });

  test("POST /drain with a bad body names the field and drains nothing", async () => {
    const { control, app } = setup();
    assertError(await call(app, "POST", "/api/v1/drain", { body: { listener: 5 } }), 400, ["listener"]);
    assertError(await call(app, "POST", "/api/v1/drain", { body: { listenr: "dns" } }), 400, ["listenr"]);
    assertError(await call(app, "POST", "/api/v1/drain", { body: "dns" }), 400, [""]);
    assertError(await call(app, "POST", "/api/v1/drain", { body: { listener: "nope" } }), 404, ["listener"]);
    assert.equal(control.callsTo("drain").length, 0);
  });

  test("POST /reload applies the file, or reports why not and changes nothing", async () => {
    const { control, app } = setup();
    const before = configToToml(control.current);
    control.reloadWith = [{ path: "listeners[0].address", message: "bad" }];
    const bad = await call(app, "POST", "/api/v1/reload");
    assertError(bad, 422, ["listeners[0].address"]);
    assert.equal(configToToml(control.current), before);
    control.reloadWith = configOf(FAKE_CONFIG_TOML.replace("max_flows = 100", "max_flows = 7"));
    const ok = await call(app, "POST", "/api/v1/reload");
    assert.equal(ok.status, 200);
    assert.equal(ok.json.persisted, false);
    assert.equal(typeof ok.json.configHash, "string");
    assert.equal(control.current.listeners[1].maxFlows, 7);
  });
});

describe("listeners", () => {
  const NEW = { name: "web", protocol: "tcp", address: "127.0.0.1:8443", cluster: "spare", max_flows: 50 };

  test("GET /listeners and /listeners/:name, in config-file shape with live state", async () => {
    const { control, app } = setup();
    control.flowList = [flow({ id: "1", client: "192.0.2.1:4000" })];
    const r = await call(app, "GET", "/api/v1/listeners");
    assert.equal(r.status, 200);
    const game = r.json.listeners.find((l: Json) => l.name === "game");
    assert.equal(game.max_flows, 100);
    assert.equal(game.max_datagram_size, 1500);
    assert.deepEqual(game.sources.deny, []);
    assert.equal(game.bound, "127.0.0.1:7000");
    assert.equal(game.active, 1);
    assert.equal(game.draining, false);
    const tcp = r.json.listeners.find((l: Json) => l.name === "game-tcp");
    assert.equal("max_datagram_size" in tcp, false);
    const one = await call(app, "GET", "/api/v1/listeners/dns");
    assert.equal(one.json.listener.cluster, "resolvers");
    assertError(await call(app, "GET", "/api/v1/listeners/nope"), 404);
  });

  test("POST adds a listener, runtime only unless ?persist=true", async () => {
    const { control, app } = setup();
    const r = await call(app, "POST", "/api/v1/listeners", { body: NEW });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.listener.name, "web");
    assert.equal(r.json.persisted, false);
    assert.equal(control.current.listeners.length, 4);
    assert.equal(control.callsTo("applyConfig")[0].args[1], false);
    const p = await call(app, "POST", "/api/v1/listeners?persist=true", {
      body: { ...NEW, name: "web2", address: "127.0.0.1:8444" },
    });
    assert.equal(p.status, 201, p.text);
    assert.equal(p.json.persisted, true);
    assert.equal(control.callsTo("applyConfig")[1].args[1], true);
  });

  test("POST with bad fields names each with its config path and changes nothing", async () => {
    const { control, app } = setup();
    const before = configToToml(control.current);
    const r = await call(app, "POST", "/api/v1/listeners", { body: { ...NEW, max_flows: -1 } });
    assertError(r, 400, ["listeners[3].max_flows"]);
    assert.match(r.json.error, /listeners\[3\]\.max_flows/);
    const two = await call(app, "POST", "/api/v1/listeners", {
      body: { ...NEW, address: "nowhere", cluster: "gmae" },
    });
    assertError(two, 400, ["listeners[3].address", "listeners[3].cluster"]);
    assert.match(
      two.json.errors.find((e: Json) => e.path === "listeners[3].cluster").message,
      /did you mean "game"/,
    );
    const typo = await call(app, "POST", "/api/v1/listeners", { body: { ...NEW, maxFlows: 3 } });
    assertError(typo, 400, ["listeners[3].maxFlows"]);
    const clash = await call(app, "POST", "/api/v1/listeners", {
      body: { ...NEW, protocol: "udp", address: "127.0.0.1:5353" },
    });
    assertError(clash, 400, ["listeners[3].address"]);
    assertUnchanged(control, before);
  });

  test("POST with a taken name is a 409", async () => {
    const { control, app } = setup();
    const before = configToToml(control.current);
    assertError(await call(app, "POST", "/api/v1/listeners", { body: { ...NEW, name: "dns" } }), 409, [
      "listeners[3].name",
    ]);
    assertUnchanged(control, before);
  });

  test("PATCH changes limits, sources and even the address (a rebind)", async () => {
    const { control, app } = setup();
    const r = await call(app, "PATCH", "/api/v1/listeners/game", {
      body: { max_flows: 5, max_datagram_size: 1200, sources: { deny: ["10.0.0.0/8"] } },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.listener.max_flows, 5);
    const game = control.current.listeners[1];
    assert.equal(game.maxFlows, 5);
    assert.equal(game.maxDatagramSize, 1200);
    assert.equal(game.sources.deny.length, 1);
    assert.deepEqual(game.sources.reject, ["port0", "unspecified", "multicast", "broadcast"]);
    const moved = await call(app, "PATCH", "/api/v1/listeners/game", { body: { address: "127.0.0.1:7100" } });
    assert.equal(moved.status, 200, moved.text);
    assert.equal(control.current.listeners[1].address.port, 7100);
  });

  test("PATCH draining drains and undoes a drain; with config keys, the config change comes first", async () => {
    const { control, app } = setup();
    const before = configToToml(control.current);
    const on = await call(app, "PATCH", "/api/v1/listeners/game", { body: { draining: true } });
    assert.equal(on.status, 200, on.text);
    assert.equal(on.json.listener.draining, true);
    assert.equal(on.json.persisted, false);
    assertUnchanged(control, before);
    assert.equal(control.callsTo("change").length, 0, "no config change for the drain alone");
    const off = await call(app, "PATCH", "/api/v1/listeners/game", {
      body: { draining: false, max_flows: 7 },
    });
    assert.equal(off.status, 200, off.text);
    assert.equal(off.json.listener.draining, false);
    assert.equal(off.json.listener.max_flows, 7);
    assert.deepEqual(control.callsTo("undrain").map((c) => c.args), [["game"]]);
    // A refused config change leaves the drain alone; an unknown listener is a 404; a non-boolean a 400.
    await call(app, "PATCH", "/api/v1/listeners/game", { body: { draining: true } });
    assertError(
      await call(app, "PATCH", "/api/v1/listeners/game", { body: { draining: false, max_flows: "x" } }),
      400,
      ["listeners[1].max_flows"],
    );
    assert.equal(control.drained.has("game"), true);
    assertError(await call(app, "PATCH", "/api/v1/listeners/nope", { body: { draining: false } }), 404, []);
    assertError(await call(app, "PATCH", "/api/v1/listeners/game", { body: { draining: 1 } }), 400, [
      "draining",
    ]);
  });

  test("PATCH null resets a key; switching to tcp drops max_datagram_size", async () => {
    const { control, app } = setup();
    assert.equal(
      (await call(app, "PATCH", "/api/v1/listeners/game", { body: { max_flows: null } })).status,
      200,
    );
    assert.equal(control.current.listeners[1].maxFlows, 0);
    const r = await call(app, "PATCH", "/api/v1/listeners/dns", {
      body: { protocol: "tcp", address: "127.0.0.1:5354" },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(control.current.listeners[0].protocol, "tcp");
  });

  test("PATCH with bad fields, a rename or an unknown listener changes nothing", async () => {
    const { control, app } = setup();
    const before = configToToml(control.current);
    assertError(await call(app, "PATCH", "/api/v1/listeners/game", { body: { max_flows: "many" } }), 400, [
      "listeners[1].max_flows",
    ]);
    assertError(await call(app, "PATCH", "/api/v1/listeners/game", { body: { name: "other" } }), 400, [
      "listeners[1].name",
    ]);
    assertError(await call(app, "PATCH", "/api/v1/listeners/game", { body: { cluster: "nope" } }), 400, [
      "listeners[1].cluster",
    ]);
    assertError(
      await call(app, "PATCH", "/api/v1/listeners/game-tcp", { body: { max_datagram_size: 100 } }),
      400,
      [
        "listeners[2].max_datagram_size",
      ],
    );
    assertError(
      await call(app, "PATCH", "/api/v1/listeners/game", { body: { sources: { allow: ["300.0.0.0/8"] } } }),
      400,
      [
        "listeners[1].sources.allow[0]",
      ],
    );
    assertError(await call(app, "PATCH", "/api/v1/listeners/nope", { body: { max_flows: 1 } }), 404);
    assertUnchanged(control, before);
  });

  test("DELETE removes a listener", async () => {
    const { control, app } = setup();
    const r = await call(app, "DELETE", "/api/v1/listeners/dns?persist=true");
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.persisted, true);
    assert.deepEqual(control.current.listeners.map((l) => l.name), ["game", "game-tcp"]);
    assertError(await call(app, "DELETE", "/api/v1/listeners/dns"), 404);
  });

  test("concurrent changes are applied one after another, none lost", async () => {
    const { control, app } = setup();
    const apply = control.applyConfig.bind(control);
    control.applyConfig = async (config, persist) => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      return apply(config, persist);
    };
    const [a, b] = await Promise.all([
      call(app, "PATCH", "/api/v1/listeners/game", { body: { max_flows: 11 } }),
      call(app, "PATCH", "/api/v1/listeners/dns", { body: { max_flows: 22 } }),
    ]);
    assert.equal(a.status, 200, a.text);
    assert.equal(b.status, 200, b.text);
    assert.deepEqual(control.current.listeners.map((l) => l.maxFlows), [22, 11, 0]);
  });

  test("a config the relay cannot apply is a 409 and changes nothing", async () => {
    const { control, app } = setup();
    const before = configToToml(control.current);
    control.failNextApply = [{ path: "listeners[3].address", message: "address in use" }];
    const r = await call(app, "POST", "/api/v1/listeners", { body: NEW });
    assertError(r, 409, ["listeners[3].address"]);
    assert.equal(configToToml(control.current), before);
  });
});

describe("clusters and backends", () => {
  test("GET /clusters merges each backend's state and counters", async () => {
    const { app } = setup();
    const r = await call(app, "GET", "/api/v1/clusters");
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.clusters.map((c: Json) => c.name), ["game", "resolvers", "spare"]);
    const game = r.json.clusters[0];
    assert.equal(game.balancer, "maglev");
    assert.equal(game.front_timeout, "1m");
    assert.equal(game.failOpenEvents, 4);
    const b = game.backends[1];
    assert.equal(b.address, "10.0.1.2:7001");
    assert.equal(b.state, "draining");
    assert.equal(b.effectiveState, "draining");
    assert.equal(b.flowsTotal, 11);
    assert.equal(b.bytesFrom, 4001);
    const one = await call(app, "GET", "/api/v1/clusters/resolvers");
    assert.equal(one.json.cluster.backends[1].address, "[::1]:53");
    assert.equal(one.json.cluster.backends[1].weight, 2);
    assertError(await call(app, "GET", "/api/v1/clusters/nope"), 404);
  });

  test("POST /clusters adds one; bad or missing fields are named, taken names are 409s", async () => {
    const { control, app } = setup();
    const before = configToToml(control.current);
    assertError(await call(app, "POST", "/api/v1/clusters", { body: { balancer: "random" } }), 400, ["name"]);
    assertError(
      await call(app, "POST", "/api/v1/clusters", { body: { name: "x", balancer: "fastest" } }),
      400,
      [
        "clusters.x.balancer",
      ],
    );
    assertError(
      await call(app, "POST", "/api/v1/clusters", {
        body: { name: "x", backends: [{ address: "10.0.0.1:1", weight: 0 }] },
      }),
      400,
      [
        "clusters.x.backends[0].weight",
      ],
    );
    assertError(await call(app, "POST", "/api/v1/clusters", { body: { name: "Bad Name" } }), 400, [
      'clusters."Bad Name"',
    ]);
    assertError(await call(app, "POST", "/api/v1/clusters", { body: { name: "game" } }), 409, ["name"]);
    assertUnchanged(control, before);
    const r = await call(app, "POST", "/api/v1/clusters", {
      body: {
        name: "voice",
        balancer: "rendezvous",
        front_timeout: "10s",
        backends: [{ address: "10.9.0.1:5000" }],
      },
    });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.cluster.name, "voice");
    assert.equal(r.json.cluster.front_timeout, "10s");
    assert.equal(control.current.clusters.find((c) => c.name === "voice")?.balancer, "rendezvous");
  });

  test("PATCH /clusters/:name changes the balancer and knobs", async () => {
    const { control, app } = setup();
    const r = await call(app, "PATCH", "/api/v1/clusters/game", {
      body: { balancer: "least_flows", back_timeout: "5s" },
    });
    assert.equal(r.status, 200, r.text);
    const game = control.current.clusters.find((c) => c.name === "game");
    assert.equal(game?.balancer, "least_flows");
    assert.equal(game?.backTimeout, 5000);
    assert.equal(game?.backends.length, 2);
    control.calls.splice(0);
    const before = configToToml(control.current);
    assertError(await call(app, "PATCH", "/api/v1/clusters/game", { body: { balancer: "fastest" } }), 400, [
      "clusters.game.balancer",
    ]);
    assertError(
      await call(app, "PATCH", "/api/v1/clusters/game", { body: { front_timeout: 0, back_timeout: 0 } }),
      400,
      ["clusters.game"],
    );
    assertError(await call(app, "PATCH", "/api/v1/clusters/game", { body: { name: "other" } }), 400, [
      "name",
    ]);
    assertError(await call(app, "PATCH", "/api/v1/clusters/nope", { body: {} }), 404);
    assertUnchanged(control, before);
  });

  test("DELETE /clusters/:name in use is a 409 naming the listeners", async () => {
    const { control, app } = setup();
    const before = configToToml(control.current);
    const r = await call(app, "DELETE", "/api/v1/clusters/game");
    assertError(r, 409, ["listeners[1].cluster", "listeners[2].cluster"]);
    assert.match(r.json.error, /game, game-tcp/);
    assertUnchanged(control, before);
    const ok = await call(app, "DELETE", "/api/v1/clusters/spare");
    assert.equal(ok.status, 200, ok.text);
    assert.equal(control.current.clusters.some((c) => c.name === "spare"), false);
    assertError(await call(app, "DELETE", "/api/v1/clusters/spare"), 404);
  });

  test("backends: add, read, patch (v4 and bracketed, URL-encoded v6), delete", async () => {
    const { control, app } = setup();
    const add = await call(app, "POST", "/api/v1/clusters/game/backends", {
      body: { address: "10.0.1.3:7001", weight: 5 },
    });
    assert.equal(add.status, 201, add.text);
    assert.equal(add.json.backend.weight, 5);
    assert.equal(add.json.backend.state, "up");
    assert.equal(control.current.clusters.find((c) => c.name === "game")?.backends.length, 3);
    const list = await call(app, "GET", "/api/v1/clusters/game/backends");
    assert.equal(list.json.backends.length, 3);
    const get = await call(
      app,
      "GET",
      `/api/v1/clusters/resolvers/backends/${encodeURIComponent("[::1]:53")}`,
    );
    assert.equal(get.status, 200, get.text);
    assert.equal(get.json.backend.weight, 2);
    const drain = await call(app, "PATCH", "/api/v1/clusters/game/backends/10.0.1.1%3A7001", {
      body: { state: "draining" },
    });
    assert.equal(drain.status, 200, drain.text);
    assert.equal(drain.json.backend.state, "draining");
    const v6 = await call(
      app,
      "PATCH",
      `/api/v1/clusters/resolvers/backends/${encodeURIComponent("[0:0::1]:53")}`,
      {
        body: { weight: 9, state: "down" },
      },
    );
    assert.equal(v6.status, 200, v6.text);
    const resolvers = control.current.clusters.find((c) => c.name === "resolvers");
    assert.equal(resolvers?.backends[1].weight, 9);
    assert.equal(resolvers?.backends[1].state, "down");
    const del = await call(app, "DELETE", "/api/v1/clusters/game/backends/10.0.1.2:7001");
    assert.equal(del.status, 200, del.text);
    assert.deepEqual(
      control.current.clusters.find((c) => c.name === "game")?.backends.map((b) => b.address.ip),
      ["10.0.1.1", "10.0.1.3"],
    );
  });

  test("bad backend requests name the field and change nothing", async () => {
    const { control, app } = setup();
    const before = configToToml(control.current);
    const base = "/api/v1/clusters/game/backends";
    assertError(await call(app, "POST", base, { body: { address: "10.0.1.1:7001" } }), 409, [
      "clusters.game.backends[2].address",
    ]);
    assertError(await call(app, "POST", base, { body: { address: "10.0.1.9:7001", weight: 2000 } }), 400, [
      "clusters.game.backends[2].weight",
    ]);
    assertError(await call(app, "POST", base, { body: { weight: 2 } }), 400, [
      "clusters.game.backends[2].address",
    ]);
    assertError(
      await call(app, "POST", "/api/v1/clusters/nope/backends", { body: { address: "10.0.1.9:7001" } }),
      404,
    );
    assertError(await call(app, "PATCH", `${base}/10.0.1.1:7001`, { body: { state: "sleeping" } }), 400, [
      "clusters.game.backends[0].state",
    ]);
    assertError(
      await call(app, "PATCH", `${base}/10.0.1.1:7001`, { body: { address: "10.0.1.5:7001" } }),
      400,
      [
        "clusters.game.backends[0].address",
      ],
    );
    assertError(await call(app, "PATCH", `${base}/10.0.1.1`, { body: { weight: 2 } }), 400, ["address"]);
    assertError(await call(app, "PATCH", `${base}/10.0.1.7:7001`, { body: { weight: 2 } }), 404);
    assertError(await call(app, "DELETE", `${base}/10.0.1.7:7001`), 404);
    assertError(await call(app, "GET", `${base}/10.0.1.7:7001`), 404);
    assertUnchanged(control, before);
  });
});

describe("flows and clients", () => {
  function withFlows(): { control: FakeControl; app: Hono } {
    const s = setup();
    s.control.flowList = Array.from({ length: 25 }, (_, i) =>
      flow({
        id: String(i),
        client: `192.0.2.${i % 5}:${4000 + i}`,
        listener: i % 2 === 0 ? "game" : "dns",
        cluster: i % 2 === 0 ? "game" : "resolvers",
        backend: i % 2 === 0 ? "10.0.1.1:7001" : "10.0.0.1:53",
        priority: i,
        lossPermille: (i * 7) % 25,
        bandwidth: 1000 - i,
      }));
    return s;
  }

  test("GET /flows pages in admission order", async () => {
    const { app } = withFlows();
    const first = await call(app, "GET", "/api/v1/flows");
    assert.equal(first.json.total, 25);
    assert.equal(first.json.limit, 100);
    assert.equal(first.json.flows.length, 25);
    const page = await call(app, "GET", "/api/v1/flows?limit=10&offset=20");
    assert.deepEqual(page.json.flows.map((f: Json) => f.id), ["20", "21", "22", "23", "24"]);
    assert.equal(page.json.total, 25);
    assert.equal(page.json.offset, 20);
    const mid = await call(app, "GET", "/api/v1/flows?limit=3&offset=3");
    assert.deepEqual(mid.json.flows.map((f: Json) => f.id), ["3", "4", "5"]);
    const past = await call(app, "GET", "/api/v1/flows?offset=100");
    assert.deepEqual(past.json.flows, []);
    const f = first.json.flows[0];
    for (
      const key of [
        "bandwidth",
        "latencyMs",
        "lossPermille",
        "priority",
        "ageSeconds",
        "bytesIn",
        "datagramsOut",
      ]
    ) {
      assert.ok(key in f, key);
    }
  });

  test("GET /flows filters", async () => {
    const { control, app } = withFlows();
    const game = await call(app, "GET", "/api/v1/flows?listener=game&limit=2");
    assert.equal(game.json.total, 13);
    const backend = await call(app, "GET", "/api/v1/flows?cluster=resolvers&backend=10.0.0.1:53");
    assert.equal(backend.json.total, 12);
    const client = await call(app, "GET", "/api/v1/flows?client=192.0.2.1");
    assert.equal(client.json.total, 5);
    const exact = await call(app, "GET", "/api/v1/flows?client=192.0.2.1:4001");
    assert.equal(exact.json.total, 1);
    assert.deepEqual(control.callsTo("flows")[1].args[0], { cluster: "resolvers", backend: "10.0.0.1:53" });
  });

  test("GET /flows refuses bad paging and filters, naming the parameter", async () => {
    const { app } = withFlows();
    assertError(await call(app, "GET", "/api/v1/flows?limit=0"), 400, ["limit"]);
    assertError(await call(app, "GET", "/api/v1/flows?limit=10001"), 400, ["limit"]);
    assertError(await call(app, "GET", "/api/v1/flows?offset=-1"), 400, ["offset"]);
    assertError(await call(app, "GET", "/api/v1/flows?limit=ten"), 400, ["limit"]);
    assertError(await call(app, "GET", "/api/v1/flows?backend=10.0.0.1"), 400, ["backend"]);
    assertError(await call(app, "GET", "/api/v1/flows?client=host.example"), 400, ["client"]);
  });

  test("DELETE /flows disconnects a client", async () => {
    const { control, app } = withFlows();
    assertError(await call(app, "DELETE", "/api/v1/flows"), 400, ["client"]);
    assertError(await call(app, "DELETE", "/api/v1/flows?client=nope"), 400, ["client"]);
    const one = await call(app, "DELETE", "/api/v1/flows?client=192.0.2.1:4001");
    assert.deepEqual(one.json, { closed: 1 });
    const ip = await call(app, "DELETE", "/api/v1/flows?client=192.0.2.2&listener=game");
    assert.deepEqual(ip.json, { closed: 3 });
    assert.deepEqual(control.callsTo("disconnect").map((c) => c.args), [
      ["192.0.2.1:4001", undefined],
      ["192.0.2.2", "game"],
    ]);
    assert.equal(control.flowList.length, 21);
  });

  test("DELETE a backend's flows", async () => {
    const { control, app } = withFlows();
    const r = await call(
      app,
      "DELETE",
      `/api/v1/clusters/game/backends/${encodeURIComponent("10.0.1.1:7001")}/flows`,
    );
    assert.deepEqual(r.json, { closed: 13 });
    assert.deepEqual(control.callsTo("closeBackendFlows")[0].args, ["game", "10.0.1.1:7001"]);
    assertError(await call(app, "DELETE", "/api/v1/clusters/game/backends/junk/flows"), 400, ["address"]);
  });

  test("GET /clients ranks worst first", async () => {
    const { app } = withFlows();
    const byPriority = await call(app, "GET", "/api/v1/clients?top=3");
    assert.equal(byPriority.json.by, "priority");
    assert.deepEqual(byPriority.json.clients.map((c: Json) => c.priority), [24, 23, 22]);
    assert.equal(byPriority.json.clients[0].client, "192.0.2.4:4024");
    const byBandwidth = await call(app, "GET", "/api/v1/clients?by=bandwidth&top=2");
    assert.deepEqual(byBandwidth.json.clients.map((c: Json) => c.bandwidth), [1000, 999]);
    const byLoss = await call(app, "GET", "/api/v1/clients?by=loss&top=1&listener=dns");
    assert.equal(byLoss.json.clients[0].lossPermille, 24);
    assertError(await call(app, "GET", "/api/v1/clients?by=speed"), 400, ["by"]);
    assertError(await call(app, "GET", "/api/v1/clients?top=0"), 400, ["top"]);
  });

  test("clients aggregate every flow of one address", () => {
    const flows = [
      flow({ id: "a", client: "192.0.2.9:1", listener: "game", bandwidth: 10, priority: 5, latencyMs: null }),
      flow({ id: "b", client: "192.0.2.9:1", listener: "dns", bandwidth: 30, priority: 2, latencyMs: 80 }),
      flow({ id: "c", client: "192.0.2.8:1", bandwidth: 25, priority: 3 }),
    ];
    const [top] = topClients(flows, "bandwidth", 1);
    assert.equal(top.client, "192.0.2.9:1");
    assert.equal(top.flows, 2);
    assert.equal(top.bandwidth, 40);
    assert.equal(top.priority, 5);
    assert.equal(top.latencyMs, 80);
    assert.deepEqual(top.listeners, ["game", "dns"]);
  });
});

describe("config", () => {
  test("GET /config is the running config as TOML, or JSON", async () => {
    const { control, app } = setup();
    const r = await call(app, "GET", "/api/v1/config");
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type") ?? "", /^text\/plain/);
    const parsed = parseConfigToml(r.text);
    assert.ok(parsed.ok);
    // The token is shown redacted (issue 10); everything else is the running config.
    const current = control.current;
    assert.deepEqual(parsed.config, { ...current, admin: { ...current.admin, token: "<redacted>" } });
    const j = await call(app, "GET", "/api/v1/config?format=json");
    assert.equal(j.json.listeners[1].max_flows, 100);
    assert.equal(j.json.clusters.resolvers.backends[1].address, "[::1]:53");
    assertError(await call(app, "GET", "/api/v1/config?format=yaml"), 400, ["format"]);
  });

  test("PUT /config replaces it from TOML or JSON", async () => {
    const { control, app } = setup();
    const toml = FAKE_CONFIG_TOML.replace("max_flows = 100", "max_flows = 64");
    const r = await call(app, "PUT", "/api/v1/config?persist=true", { text: toml });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.persisted, true);
    assert.equal(control.current.listeners[1].maxFlows, 64);
    const raw = (await call(app, "GET", "/api/v1/config?format=json")).json;
    raw.listeners = raw.listeners.slice(0, 1);
    delete raw.clusters.game;
    const j = await call(app, "PUT", "/api/v1/config", { body: raw });
    assert.equal(j.status, 200, j.text);
    assert.equal(j.json.persisted, false);
    assert.deepEqual(control.current.clusters.map((c) => c.name), ["resolvers", "spare"]);
  });

  test("PUT /config with one bad field changes nothing and names it", async () => {
    const { control, app } = setup();
    const before = configToToml(control.current);
    const toml = FAKE_CONFIG_TOML.replace("max_flows = 100", "max_flows = -5");
    const r = await call(app, "PUT", "/api/v1/config", { text: toml });
    assertError(r, 400, ["listeners[1].max_flows"]);
    assert.equal(r.json.errors.length, 1);
    assertUnchanged(control, before);
  });

  test("PUT /config lists every error at once", async () => {
    const { control, app } = setup();
    const before = configToToml(control.current);
    const raw = (await call(app, "GET", "/api/v1/config?format=json")).json;
    raw.listeners[0].address = "nowhere";
    raw.clusters.game.balancer = "fastest";
    raw.clusters.game.backends[0].weight = 0;
    raw.relay.workerz = 2;
    const r = await call(app, "PUT", "/api/v1/config", { body: raw });
    assertError(r, 400, [
      "relay.workerz",
      "listeners[0].address",
      "clusters.game.balancer",
      "clusters.game.backends[0].weight",
    ]);
    assertUnchanged(control, before);
  });

  test("PUT /config refuses syntax errors, empty bodies and a tokenless public admin address", async () => {
    const { control, app } = setup();
    const before = configToToml(control.current);
    assertError(await call(app, "PUT", "/api/v1/config", { text: "[admin\nlisten = 1" }), 400, [""]);
    assertError(await call(app, "PUT", "/api/v1/config", { text: "  " }), 400, [""]);
    const open = FAKE_CONFIG_TOML.replace('listen = "127.0.0.1:9901"', 'listen = "0.0.0.0:9901"').replace(
      'token = "s3cret"',
      'token = ""',
    );
    assertError(await call(app, "PUT", "/api/v1/config", { text: open }), 400, ["admin.token"]);
    assertUnchanged(control, before);
  });

  test("merge patch semantics (RFC 7396)", () => {
    assert.deepEqual(mergePatch({ a: 1, b: { c: 2, d: 3 }, e: [1] }, { a: null, b: { c: 5 }, e: [2, 3] }), {
      b: { c: 5, d: 3 },
      e: [2, 3],
    });
    const evil = mergePatch({}, JSON.parse('{"__proto__": {"polluted": true}}')) as Record<string, unknown>;
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.ok(Object.prototype.hasOwnProperty.call(evil, "__proto__"));
  });
});

describe("metrics", () => {
  test("/metrics parses under a strict exposition parser", async () => {
    const { app } = setup();
    const r = await call(app, "GET", "/metrics");
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const families = parsePrometheus(r.text);
    assert.deepEqual([...families.keys()], METRICS.map((m) => m.name));
    for (const f of families.values()) {
      assert.match(f.name, /^(ferry|process)_/);
      assert.equal(f.help, METRICS.find((m) => m.name === f.name)?.help);
    }
  });

  test("samples carry the snapshot, with labels escaped", async () => {
    const { control, app } = setup();
    const families = parsePrometheus((await call(app, "GET", "/metrics")).text);
    const value = (name: string, labels: Record<string, string>) =>
      families.get(name)?.samples.find((s) => JSON.stringify(s.labels) === JSON.stringify(labels))?.value;
    assert.equal(value("ferry_listener_datagrams_in_total", { listener: "game" }), 101);
    assert.equal(
      value("ferry_listener_flows_closed_total", { listener: "dns", reason: control.oddReason }),
      1,
    );
    assert.equal(value("ferry_listener_drops_total", { listener: "dns", reason: "truncated" }), 1);
    assert.equal(value("ferry_listener_tcp_connections_total", { listener: "game-tcp" }), 5);
    assert.equal(
      value("ferry_backend_state", { cluster: "game", backend: "10.0.1.2:7001", state: "draining" }),
      1,
    );
    assert.equal(value("ferry_backend_state", { cluster: "game", backend: "10.0.1.2:7001", state: "up" }), 0);
    assert.equal(value("ferry_backend_bytes_in_total", { cluster: "resolvers", backend: "[::1]:53" }), 4001);
    assert.equal(value("ferry_cluster_bytes_out_total", { cluster: "game" }), 5000 + 5001);
    assert.equal(value("ferry_cluster_fail_open_total", { cluster: "game" }), 4);
    assert.equal(value("ferry_cluster_backends", { cluster: "game", state: "draining" }), 1);
    assert.equal(value("process_start_time_seconds", {}), 1.7e9);
    assert.equal(value("ferry_ready", {}), 1);
  });

  test("/metrics?format=json has the same families", async () => {
    const { app } = setup();
    const r = await call(app, "GET", "/metrics?format=json");
    assert.deepEqual(r.json.families.map((f: Json) => f.name), METRICS.map((m) => m.name));
    const up = r.json.families.find((f: Json) => f.name === "ferry_uptime_seconds");
    assert.deepEqual(up.samples, [{ labels: {}, value: 42 }]);
    assertError(await call(app, "GET", "/metrics?format=xml"), 400, ["format"]);
  });

  test("every metric is documented, counters end in _total", () => {
    const names = new Set<string>();
    for (const m of METRICS) {
      assert.equal(names.has(m.name), false, m.name);
      names.add(m.name);
      assert.ok(m.help.length > 10, m.name);
      assert.equal(m.type === "counter", m.name.endsWith("_total"), m.name);
    }
  });

  test("the strict parser refuses what a lenient one would pass", () => {
    const good = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n";
    assert.equal(parsePrometheus(good).get("a_total")?.samples[0].value, 1);
    const bad = [
      "# HELP a_total A.\n# TYPE a_total counter\na_total 1", // no final newline
      "# TYPE a_total counter\na_total 1\n", // no HELP
      "# HELP a A.\n# TYPE a counter\na 1\n", // counter without _total
      '# HELP a A.\n# TYPE a gauge\na{x="\\t"} 1\n', // bad escape
      '# HELP a A.\n# TYPE a gauge\na{x="1",x="2"} 1\n', // repeated label
      "# HELP a A.\n# TYPE a gauge\na one\n", // bad value
      "# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n# TYPE b gauge\nb 1\na 2\n", // not contiguous
      "# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n# TYPE b gauge\n# HELP a A.\n", // family repeated
      "# HELP 1a A.\n# TYPE 1a gauge\n1a 1\n", // bad name
      "# HELP a A.\n# TYPE a gauge\na 1\na 2\n", // duplicate sample
    ];
    for (const text of bad) assert.throws(() => parsePrometheus(text), Error, text);
  });
});

describe("openapi", () => {
  test("the document is JSON and describes every route", async () => {
    const { app } = setup();
    const r = await call(app, "GET", "/api/v1/openapi.json");
    assert.equal(r.status, 200);
    const doc = r.json;
    assert.equal(doc.openapi, "3.1.0");
    assert.deepEqual(doc, JSON.parse(JSON.stringify(OPENAPI)));
    const routes = app.routes.filter((x) => x.method !== "ALL");
    assert.ok(routes.length >= 25, String(routes.length));
    for (const route of routes) {
      const path = route.path.replace(/:([a-z]+)/g, "{$1}");
      assert.ok(
        doc.paths[path]?.[route.method.toLowerCase()],
        `${route.method} ${path} is not in the OpenAPI document`,
      );
    }
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      for (const method of Object.keys(ops)) {
        const served = routes.some((x) =>
          x.method.toLowerCase() === method && x.path.replace(/:([a-z]+)/g, "{$1}") === path
        );
        assert.ok(served, `${method} ${path} is documented but not served`);
      }
    }
  });

  test("every $ref resolves", () => {
    const text = JSON.stringify(OPENAPI);
    for (const [, ref] of text.matchAll(/"\$ref":"#\/([^"]+)"/g)) {
      let node: Json = OPENAPI;
      for (const part of ref.split("/")) node = node?.[part];
      assert.ok(node !== undefined, ref);
    }
  });
});

describe("serve", () => {
  test("serves the app on 127.0.0.1 and closes", async () => {
    const { app } = setup();
    const server = await serve(app, addr("127.0.0.1:0"));
    try {
      assert.ok(server.port > 0);
      const res = await fetch(`http://127.0.0.1:${server.port}/healthz`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { status: "ok" });
      const denied = await fetch(`http://127.0.0.1:${server.port}/api/v1/status`);
      assert.equal(denied.status, 401);
      await denied.body?.cancel();
    } finally {
      await server.close();
    }
  });
});
