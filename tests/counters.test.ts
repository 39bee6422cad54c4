// Listener counters declared once (core/counters.ts): the counter objects of each protocol, the snapshot a
// relay takes, the sum over workers and the /metrics families all follow the declaration, a UDP listener
// shows no TCP family and a TCP listener no UDP one, and the names dashboards rely on stay.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  appliesTo,
  type CounterDecl,
  countersFor,
  LISTENER_COUNTERS,
  newListenerCounters,
  type Protocol,
} from "../core/counters.ts";
import { snapshotFields, sumCounterSnapshots } from "../core/counter_snapshot.ts";
import type { ListenerMetrics, MetricsSnapshot, StatusInfo } from "../core/control_api.ts";
import { RelayCore } from "../core/relay_core.ts";
import {
  BACKEND_FIELDS,
  newBackendCounters,
  snapshotBackendCounters,
  sumBackendCounters,
} from "../core/backend_counters.ts";
import { FakeControl } from "./support/fake_control.ts";
import { Drop } from "../core/drops.ts";
import { type Add, collectMetrics, renderPrometheus } from "../admin/metrics.ts";
import { METRICS } from "../admin/metric_names.ts";
import { listenerMetrics } from "../shell/relay/change_target.ts";
import { mergeMetrics } from "../shell/relay/aggregate.ts";
import { type ParsedSample, parsePrometheus } from "./support/prometheus.ts";
import { addr, bytes, cluster, config, listener } from "./support/fixtures.ts";
import { assertSummed } from "./support/counters.ts";

const DECLS = Object.entries(LISTENER_COUNTERS) as [string, CounterDecl][];
const PROTOCOLS: Protocol[] = ["udp", "tcp"];

/**
 * The listener families /metrics had before they were derived (dashboards, alerts and the README name
 * them): renaming one breaks them, so this list changes only on purpose.
 */
const EXISTING_FAMILIES = [
  "ferry_listener_datagrams_in_total",
  "ferry_listener_bytes_in_total",
  "ferry_listener_datagrams_out_total",
  "ferry_listener_bytes_out_total",
  "ferry_listener_active_flows",
  "ferry_listener_flows_created_total",
  "ferry_listener_flows_closed_total",
  "ferry_listener_drops_total",
  "ferry_listener_tcp_connections_active",
  "ferry_listener_tcp_connections_total",
  "ferry_listener_tcp_connections_closed_total",
  "ferry_listener_tcp_bytes_up_total",
  "ferry_listener_tcp_bytes_down_total",
  "ferry_listener_rxq_overflows_total",
  "ferry_listener_client_unreachable_total",
  "ferry_listener_upstream_rxq_overflows_total",
];

/** A core with a UDP listener "u" and a TCP listener "t", some traffic through both, and its snapshot. */
function trafficSnapshot(): MetricsSnapshot {
  const core = new RelayCore(
    config([cluster({ name: "c" }, 2)], [
      listener({ name: "u" }),
      listener({ name: "t", protocol: "tcp", address: addr("127.0.0.1:7001") }),
    ]),
    { seed: 1 },
  );
  const u = core.listener("u")!;
  const t = core.listener("t")!;
  const f = core.fromClient(u, "192.0.2.1", 1000, bytes(10), 0);
  assert.ok(typeof f === "object");
  core.fromBackend(f, 20, 1);
  core.close(f, "idle");
  assert.equal(core.fromClient(u, "192.0.2.1", 1000, bytes(0), 2), Drop.Invalid);
  const c = core.openConnection(t, "192.0.2.2", 2000, 3);
  assert.ok(typeof c === "object");
  core.endConnection(c, "closed", 4);
  while (core.poll() !== undefined);
  const shell = { rxqOverflows: 3, upstreamRxqOverflows: 4 };
  return {
    listeners: [listenerMetrics(u, shell), listenerMetrics(t, shell)],
    clusters: [],
    process: { residentBytes: 1, heapUsedBytes: 1, uptimeSeconds: 1, startTimeSeconds: 1 },
  };
}

const STATUS: StatusInfo = {
  version: "0",
  runtime: "test",
  runtimeVersion: "0",
  startedAt: new Date(0).toISOString(),
  uptimeSeconds: 1,
  workers: 1,
  configHash: "h",
  configPath: null,
  draining: false,
  listeners: [],
};

describe("listener counters, declared once", () => {
  test("a listener's counter object has exactly the core-kept fields of its protocol", () => {
    for (const p of PROTOCOLS) {
      const expected = DECLS.filter(([, d]) => d.source === "core" && appliesTo(d.protocol, p)).map(([f]) =>
        f
      );
      assert.deepEqual(Object.keys(newListenerCounters(p)), expected, p);
      for (const [field, d] of DECLS) {
        const v = (newListenerCounters(p) as unknown as Record<string, unknown>)[field];
        if (d.source !== "core" || !appliesTo(d.protocol, p)) continue;
        if (d.by === undefined) assert.equal(v, 0, `${p} ${field}`);
        else assert.deepEqual(Object.keys(v as object), [...d.by.keys], `${p} ${field} keys`);
      }
    }
    assert.ok(!("connectionsTotal" in newListenerCounters("udp")), "no TCP counter on a UDP listener");
    assert.ok(!("datagramsIn" in newListenerCounters("tcp")), "no UDP counter on a TCP listener");
  });

  test("the core's listeners carry their protocol's counters; a wrong-protocol input is a counted drop", () => {
    const core = new RelayCore(
      config([cluster({ name: "c" })], [
        listener({ name: "u" }),
        listener({ name: "t", protocol: "tcp", address: addr("127.0.0.1:7001") }),
      ]),
      { seed: 1 },
    );
    const u = core.listener("u")!;
    const t = core.listener("t")!;
    assert.deepEqual(Object.keys(u.counters), Object.keys(newListenerCounters("udp")));
    assert.deepEqual(Object.keys(t.counters), Object.keys(newListenerCounters("tcp")));
    assert.equal(core.fromClient(t, "192.0.2.1", 1, bytes(4), 0), Drop.Invalid);
    assert.equal(t.counters.drops.invalid, 1);
    assert.equal(core.openConnection(u, "192.0.2.1", 1, 0), Drop.Invalid);
    assert.equal(u.counters.drops.invalid, 1);
  });

  test("a snapshot has every declared field of the listener's protocol and no other", () => {
    for (const l of trafficSnapshot().listeners) {
      const { name: _n, protocol: _p, cluster: _c, ...figures } = l;
      assert.deepEqual(Object.keys(figures), snapshotFields(l.protocol), l.name);
    }
  });

  test("the worker sum covers every declared field (each summed, keyed ones key by key)", () => {
    const one = trafficSnapshot();
    const merged = mergeMetrics([one, one], one.process);
    for (const [i, l] of merged.listeners.entries()) {
      assertSummed(l, one.listeners[i], one.listeners[i], l.name);
    }
    // Every declared field of each protocol is a number or a record the sum doubled: none left out.
    for (const p of PROTOCOLS) {
      const ones = Object.fromEntries(
        countersFor(p).map((
          [f, d],
        ) => [f, d.by === undefined ? 1 : Object.fromEntries(d.by.keys.map((k) => [k, 1]))]),
      );
      const sum = sumCounterSnapshots(p, ones as never, ones as never) as unknown as Record<string, unknown>;
      for (const [f, d] of countersFor(p)) {
        const want = d.by === undefined ? 2 : Object.fromEntries(d.by.keys.map((k) => [k, 2]));
        assert.deepEqual(sum[f], want, `${p} ${f}`);
      }
      assert.deepEqual(Object.keys(sum), snapshotFields(p));
    }
  });

  test("every declared figure is a /metrics family on its protocol's listeners only", () => {
    const snapshot = trafficSnapshot();
    const families = parsePrometheus(renderPrometheus(collectMetrics(snapshot, STATUS, true)));
    const byName = new Map(snapshot.listeners.map((l) => [l.name, l]));
    for (const [field, d] of DECLS) {
      const family = families.get(d.metric);
      if (family === undefined) return assert.fail(`${d.metric} is not exposed`);
      assert.equal(family.type, d.kind);
      for (const [name, l] of byName) {
        const samples: ParsedSample[] = family.samples.filter((s) => s.labels.listener === name);
        if (!appliesTo(d.protocol, l.protocol)) {
          assert.equal(samples.length, 0, `${d.metric} on ${l.protocol} listener ${name}`);
          continue;
        }
        const v = (l as unknown as Record<string, number | Record<string, number>>)[field];
        if (d.by === undefined) assert.deepEqual(samples.map((s) => s.value), [v], `${d.metric}{${name}}`);
        else {
          const keyed = v as Record<string, number>;
          assert.deepEqual(samples.map((s) => s.labels[d.by!.label]), d.by.keys, `${d.metric}{${name}} keys`);
          for (const s of samples) assert.equal(s.value, keyed[s.labels[d.by.label]]);
        }
      }
    }
    const value = (n: string, l: Record<string, string>) =>
      families.get(n)?.samples.find((s) => JSON.stringify(s.labels) === JSON.stringify(l))?.value;
    assert.equal(value("ferry_listener_bytes_in_total", { listener: "u" }), 10);
    assert.equal(value("ferry_listener_bytes_out_total", { listener: "u" }), 20);
    assert.equal(value("ferry_listener_flows_closed_total", { listener: "u", reason: "idle" }), 1);
    assert.equal(value("ferry_listener_drops_total", { listener: "u", reason: "invalid" }), 1);
    assert.equal(value("ferry_listener_rxq_overflows_total", { listener: "u" }), 3);
    assert.equal(value("ferry_listener_tcp_connections_total", { listener: "t" }), 1);
    assert.equal(
      value("ferry_listener_tcp_connections_closed_total", { listener: "t", reason: "closed" }),
      1,
    );
    assert.equal(value("ferry_listener_tcp_connections_active", { listener: "t" }), 0);
  });

  test("names and labels that exist stay; kinds and units match the names", () => {
    assert.deepEqual(DECLS.map(([, d]) => d.metric), EXISTING_FAMILIES);
    for (const [field, d] of DECLS) {
      const doc = METRICS.find((m) => m.name === d.metric);
      assert.ok(doc !== undefined, `${d.metric} is in METRICS`);
      assert.deepEqual(doc.labels, d.by === undefined ? ["listener"] : ["listener", d.by.label], field);
      assert.equal(doc.type, d.kind);
      assert.equal(d.metric.endsWith("_total"), d.kind === "counter", `${d.metric}: counters end in _total`);
      if (d.unit === "bytes") assert.match(d.metric, /_bytes_/, `${d.metric} names its unit`);
    }
    assert.equal(new Set(METRICS.map((m) => m.name)).size, METRICS.length, "each family declared once");
  });

  test("promtool accepts the exposition of a UDP and a TCP listener", (t) => {
    if (spawnSync("promtool", ["--version"], { stdio: "ignore" }).status !== 0) {
      return t.skip("promtool is missing (Debian package prometheus)");
    }
    const dir = mkdtempSync(join(tmpdir(), "ferry-counters-"));
    try {
      const file = join(dir, "metrics.txt");
      writeFileSync(file, renderPrometheus(collectMetrics(trafficSnapshot(), STATUS, true)));
      const r = spawnSync("sh", ["-c", `promtool check metrics < "${file}"`], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stdout + r.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The backend and cluster families /metrics had before they were derived (see EXISTING_FAMILIES). */
const EXISTING_BACKEND_FAMILIES = [
  "ferry_backend_datagrams_out_total",
  "ferry_backend_bytes_out_total",
  "ferry_backend_datagrams_in_total",
  "ferry_backend_bytes_in_total",
  "ferry_backend_active_flows",
  "ferry_backend_flows_total",
  "ferry_backend_send_errors_total",
  "ferry_backend_refusals_total",
];
const EXISTING_CLUSTER_SUMS = [
  "ferry_cluster_datagrams_out_total",
  "ferry_cluster_bytes_out_total",
  "ferry_cluster_datagrams_in_total",
  "ferry_cluster_bytes_in_total",
  "ferry_cluster_active_flows",
  "ferry_cluster_flows_total",
];

describe("backend counters, declared once", () => {
  test("the counter object, the snapshot and the worker sum have every declared field", () => {
    const core = new RelayCore(config([cluster({ name: "c" }, 1)], [listener({ name: "u", cluster: "c" })]), {
      seed: 1,
    });
    const f = core.fromClient(core.listener("u")!, "192.0.2.1", 1, bytes(10), 0);
    assert.ok(typeof f === "object" && f.backend !== null);
    core.fromBackend(f, 20, 1);
    const b = f.backend;
    const coreFields = BACKEND_FIELDS.filter(([, d]) => d.source === "core").map(([k]) => k);
    assert.deepEqual(Object.keys(b.counters), coreFields);
    assert.deepEqual(Object.keys(newBackendCounters()), coreFields);
    const snap = snapshotBackendCounters(b.counters, b.flows);
    assert.deepEqual(Object.keys(snap), BACKEND_FIELDS.map(([k]) => k));
    assert.deepEqual(
      [snap.datagramsTo, snap.bytesTo, snap.datagramsFrom, snap.bytesFrom, snap.activeFlows, snap.flowsTotal],
      [1, 10, 1, 20, 1, 1],
    );
    const sum = sumBackendCounters(snap, snap);
    for (const [field] of BACKEND_FIELDS) assert.equal(sum[field], 2 * snap[field], field);
  });

  test("every declared figure is a backend family (and a cluster sum where declared); names stay", () => {
    assert.deepEqual(BACKEND_FIELDS.map(([, d]) => d.metric), EXISTING_BACKEND_FAMILIES);
    assert.deepEqual(BACKEND_FIELDS.flatMap(([, d]) => d.cluster?.metric ?? []), EXISTING_CLUSTER_SUMS);
    const control = new FakeControl();
    const snapshot = control.metricsNow();
    const families = parsePrometheus(renderPrometheus(collectMetrics(snapshot, STATUS, true)));
    for (const c of snapshot.clusters) {
      for (const [field, d] of BACKEND_FIELDS) {
        for (const b of c.backends) {
          const s = families.get(d.metric)?.samples.find((x) =>
            x.labels.cluster === c.name && x.labels.backend === b.address
          );
          assert.equal(s?.value, b[field], `${d.metric}{${c.name},${b.address}}`);
        }
        if (d.cluster === undefined) continue;
        const s = families.get(d.cluster.metric)?.samples.find((x) => x.labels.cluster === c.name);
        assert.equal(
          s?.value,
          c.backends.reduce((n, b) => n + b[field], 0),
          `${d.cluster.metric}{${c.name}}`,
        );
      }
    }
  });
});

/** The type of a snapshot's listener is its protocol's: this does not compile if a TCP field leaks to UDP. */
export function udpHasNoTcpFields(l: ListenerMetrics): number {
  // @ts-expect-error a UDP listener's figures have no connectionsTotal
  return l.protocol === "udp" ? l.connectionsTotal : 0;
}

/** Metric names are checked when compiled: a misspelt family does not compile. */
export function misspeltFamily(add: Add): void {
  // @ts-expect-error not a declared family
  add("ferry_listener_byte_in_total", {}, 1);
}
