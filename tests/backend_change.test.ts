/**
 * A change of backends stays small: the change queue finds it (core/backend_delta.ts) and hands the target
 * its edits instead of the whole config; the edits rebuild exactly the config the whole change gives; the
 * backend edits validate one cluster yet give what validating the whole config gives; and a core rebuilds
 * only the changed cluster's balancer (its version moves; the others' maglev tables stay).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { type BackendDelta, backendDelta, withBackendDeltas } from "../core/backend_delta.ts";
import {
  addBackend,
  addListener,
  patchBackend,
  patchCluster,
  removeBackend,
  replaceConfig,
} from "../core/config_edits.ts";
import { parseConfigToml } from "../core/config.ts";
import { define, type Table, toRaw } from "../core/config_raw.ts";
import { RelayCore } from "../core/relay_core.ts";
import { Rng } from "../core/rng.ts";
import type { FerryConfig } from "../core/types.ts";
import { ChangeQueue, type ChangeTarget } from "../shell/relay/changes.ts";
import { FAKE_CONFIG_TOML, FakeControl } from "./support/fake_control.ts";

/** Three maglev clusters a, b, c of three backends each (10.0.<i>.<j>:9000), one listener on a. */
function threeClusters(): FerryConfig {
  const clusters = ["a", "b", "c"].map((name, i) =>
    `[clusters.${name}]\nbalancer = "maglev"\nmaglev_table_size = 251\nbackends = [${
      [1, 2, 3].map((j) => `{ address = "10.0.${i}.${j}:9000" }`).join(", ")
    }]\n`
  );
  const r = parseConfigToml(
    `[[listeners]]\nname = "l"\naddress = "127.0.0.1:7000"\ncluster = "a"\n\n${clusters.join("\n")}`,
  );
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config;
}

/** The edit validated the old way: the whole config in file shape, edited, validated whole. */
function wholeEdit(config: FerryConfig, cluster: string, edit: (backends: Table[]) => void): FerryConfig {
  const raw = toRaw(config);
  const cl = raw.clusters[cluster];
  const backends = [...(cl.backends as Table[])];
  edit(backends);
  define(cl, "backends", backends);
  return replaceConfig(raw);
}

describe("backend deltas", () => {
  const base = threeClusters();

  test("an add, a patch and a remove are each one edit of one cluster, and rebuild the same config", () => {
    const cases: [FerryConfig, BackendDelta[]][] = [
      [addBackend(base, "b", { address: "10.0.9.9:9000", weight: 3 }), [{
        cluster: "b",
        edits: [{
          kind: "add",
          backend: { address: { ip: "10.0.9.9", port: 9000, family: 4 }, weight: 3, state: "up" },
        }],
      }]],
      [patchBackend(base, "c", "10.0.2.2:9000", { state: "draining" }), [{
        cluster: "c",
        edits: [{
          kind: "update",
          backend: { address: { ip: "10.0.2.2", port: 9000, family: 4 }, weight: 1, state: "draining" },
        }],
      }]],
      [removeBackend(base, "a", "10.0.0.1:9000"), [{
        cluster: "a",
        edits: [{ kind: "remove", address: "10.0.0.1:9000" }],
      }]],
    ];
    for (const [next, want] of cases) {
      const delta = backendDelta(base, next);
      assert.deepEqual(delta, want);
      assert.deepEqual(withBackendDeltas(base, delta!), next);
    }
  });

  test("anything else changed, or a list reordered, is no delta; nothing changed is an empty one", () => {
    assert.equal(backendDelta(base, patchCluster(base, "b", { hash_seed: 9 })), null);
    assert.equal(
      backendDelta(base, addListener(base, { name: "m", address: "127.0.0.1:7001", cluster: "b" })),
      null,
    );
    const reordered = patchCluster(base, "a", {
      backends: [{ address: "10.0.0.2:9000" }, { address: "10.0.0.1:9000" }, { address: "10.0.0.3:9000" }],
    });
    assert.equal(backendDelta(base, reordered), null);
    assert.deepEqual(backendDelta(base, replaceConfig(toRaw(base))), []);
    // A cluster's list replaced whole by a PATCH with the same order plus one: still a delta.
    const grown = patchCluster(base, "c", {
      backends: [1, 2, 3, 4].map((j) => ({ address: `10.0.2.${j}:9000` })),
    });
    assert.deepEqual(backendDelta(base, grown)?.map((d) => [d.cluster, d.edits.map((e) => e.kind)]), [[
      "c",
      ["add"],
    ]]);
  });

  test("a delta naming an unknown cluster is refused, changing nothing", () => {
    assert.throws(
      () =>
        withBackendDeltas(base, [{ cluster: "zz", edits: [{ kind: "remove", address: "10.0.0.1:9000" }] }]),
      /unknown cluster\(s\) zz/,
    );
  });

  test("backend edits validate one cluster and give what validating the whole config gives", () => {
    const added = addBackend(base, "b", { address: "10.0.9.9:9000" });
    assert.deepEqual(added, wholeEdit(base, "b", (bs) => bs.push({ address: "10.0.9.9:9000" })));
    // The clusters and listeners it did not touch are the very objects they were.
    assert.equal(added.clusters[0], base.clusters[0]);
    assert.equal(added.clusters[2], base.clusters[2]);
    assert.equal(added.listeners, base.listeners);
    const patched = patchBackend(base, "a", "10.0.0.3:9000", { weight: 7 });
    assert.deepEqual(patched, wholeEdit(base, "a", (bs) => (bs[2] = { ...bs[2], weight: 7 })));
    assert.deepEqual(
      removeBackend(base, "c", "10.0.2.1:9000"),
      wholeEdit(base, "c", (bs) => bs.splice(0, 1)),
    );
    // Errors name the key as a whole-config validation would.
    assert.throws(
      () => addBackend(base, "b", { address: "10.0.9.9:9000", weight: 0 }),
      (e: Error & { errors?: { path: string }[] }) => e.errors?.[0]?.path === "clusters.b.backends[3].weight",
    );
    assert.throws(() => addBackend(base, "nope", { address: "10.0.9.9:9000" }), /no cluster named "nope"/);
  });
});

describe("a core rebuilds only the changed cluster", () => {
  /** Picks once in every cluster (a balancer whose version moved rebuilds its table then). */
  function pickAll(core: RelayCore): Map<string, number> {
    const rng = new Rng(1);
    const versions = new Map<string, number>();
    for (const c of core.clusters()) {
      c.choose(12345, rng, 0);
      versions.set(c.config.name, c.version);
    }
    return versions;
  }

  test("setCluster with a backend added moves that cluster's version only", () => {
    const base = threeClusters();
    const core = new RelayCore(base, { seed: 1 });
    const before = pickAll(core);
    const next = withBackendDeltas(
      base,
      backendDelta(base, addBackend(base, "b", { address: "10.0.9.9:9000" }))!,
    );
    core.setCluster(next.clusters.find((c) => c.name === "b")!);
    const after = pickAll(core);
    assert.equal(after.get("a"), before.get("a"));
    assert.equal(after.get("c"), before.get("c"));
    assert.notEqual(after.get("b"), before.get("b"));
    assert.equal(core.cluster("b")!.backends.length, 4);
  });

  test("a whole config whose other clusters are unchanged leaves their balancers alone too", () => {
    const base = threeClusters();
    const core = new RelayCore(base, { seed: 1 });
    const before = pickAll(core);
    // A reload: every object new (validated afresh), one backend's weight changed.
    core.applyConfig(replaceConfig(toRaw(patchBackend(base, "c", "10.0.2.1:9000", { weight: 5 }))));
    const after = pickAll(core);
    assert.equal(after.get("a"), before.get("a"));
    assert.equal(after.get("b"), before.get("b"));
    assert.notEqual(after.get("c"), before.get("c"));
  });
});

describe("the change queue delivers a change of backends as its edits", () => {
  class Target extends FakeControl implements ChangeTarget {
    deliveries: string[] = [];
    apply(config: FerryConfig): Promise<void> {
      this.deliveries.push("apply");
      this.current = config;
      return Promise.resolve();
    }
    applyBackends(deltas: readonly BackendDelta[]): Promise<void> {
      this.deliveries.push(`backends ${deltas.map((d) => `${d.cluster}:${d.edits.length}`).join(",")}`);
      this.current = withBackendDeltas(this.current, deltas);
      return Promise.resolve();
    }
  }

  test("a backend add goes as edits, a listener add as a whole config, and both are applied", async () => {
    const target = new Target();
    const queue = new ChangeQueue(target, {
      version: "test",
      runtimeVersion: "test",
      configPath: null,
      load: () => Promise.reject(new Error("no file")),
      now: () => 0,
      memory: () => ({ rss: 0, heapUsed: 0 }),
    });
    const cluster = target.current.clusters[0].name;
    const added = await queue.change({
      source: "api",
      persist: false,
      edit: (c) => addBackend(c, cluster, { address: "10.9.9.9:9000" }),
    });
    assert.ok(added.ok);
    assert.deepEqual(target.deliveries, [`backends ${cluster}:1`]);
    assert.deepEqual(toRaw(target.current), toRaw(added.config));
    assert.equal(queue.configHash(), added.configHash);
    const listener = await queue.change({
      source: "api",
      persist: false,
      edit: (c) => addListener(c, { name: "extra", address: "127.0.0.1:7199", cluster }),
    });
    assert.ok(listener.ok, JSON.stringify(listener));
    assert.deepEqual(target.deliveries, [`backends ${cluster}:1`, "apply"]);
  });

  test("persisted, the edits land in the file as the whole change would", async () => {
    const dir = mkdtempSync(`${tmpdir()}/ferry-backend-change-`);
    try {
      const file = `${dir}/ferry.toml`;
      writeFileSync(file, FAKE_CONFIG_TOML);
      const target = new Target();
      const queue = new ChangeQueue(target, {
        version: "test",
        runtimeVersion: "test",
        configPath: file,
        load: () => Promise.reject(new Error("not here")),
        now: () => 0,
        memory: () => ({ rss: 0, heapUsed: 0 }),
      });
      const cluster = target.current.clusters[0].name;
      const r = await queue.change({
        source: "api",
        persist: true,
        edit: (c) => addBackend(c, cluster, { address: "10.9.9.9:9000", weight: 2 }),
      });
      assert.ok(r.ok, JSON.stringify(r));
      assert.deepEqual(target.deliveries, [`backends ${cluster}:1`]);
      const saved = parseConfigToml(readFileSync(file, "utf8"));
      assert.ok(saved.ok);
      assert.deepEqual(toRaw(saved.config), toRaw(target.current));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
