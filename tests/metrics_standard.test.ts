// The standard process families, event-loop lag and the flow histograms on /metrics of a spawned Ferry,
// read with the strict parser and, where installed, `promtool check metrics`.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { FerryProcess, ferryTargets, freePorts, killAll } from "./support/ferry_process.ts";
import { parsePrometheus } from "./support/prometheus.ts";
import { Client, EchoBackend, until } from "./support/udp.ts";
import { FlowStats, Histogram, mergeHistograms } from "../shell/records/flow_stats.ts";
import { LagMonitor, parseMaxFds } from "../shell/process/process_stats.ts";

after(killAll);
const T = { timeout: 30_000 };

/** True when promtool runs. */
function hasPromtool(): boolean {
  return spawnSync("promtool", ["--version"], { stdio: "ignore" }).status === 0;
}

describe("flow histograms and process figures (units)", () => {
  test("an observation lands in the first bucket whose bound it does not exceed", () => {
    const h = new Histogram([1, 5]);
    for (const v of [0.5, 1, 3, 9]) h.observe(v);
    assert.deepEqual(h.counts, [2, 1, 1]);
    assert.equal(h.sum, 13.5);
    assert.equal(h.count, 4);
  });

  test("workers' series merge by name and labels; NaN quality figures are not observed", () => {
    const a = new FlowStats();
    const b = new FlowStats();
    a.duration("g", "udp", 2);
    b.duration("g", "udp", 2000);
    b.quality("c", NaN, NaN);
    b.quality("c", 12, 30);
    const merged = mergeHistograms([a.snapshot(), b.snapshot()]);
    const d = merged.find((s) => s.name === "ferry_flow_duration_seconds")!;
    assert.equal(d.count, 2);
    assert.equal(d.sum, 2002);
    assert.equal(merged.find((s) => s.name === "ferry_flow_rtt_seconds")!.count, 1);
    assert.equal(merged.find((s) => s.name === "ferry_flow_first_reply_seconds")!.sum, 0.03);
  });

  test("lag is the largest of the last window; the fd limit parses", () => {
    const lag = new LagMonitor();
    lag.tick(3);
    lag.tick(40);
    lag.tick(1);
    assert.equal(lag.lagMs, 40);
    for (let i = 0; i < 20; i++) lag.tick(2);
    assert.equal(lag.lagMs, 2);
    assert.equal(
      parseMaxFds("Max open files            1024                 524288               files\n"),
      1024,
    );
    assert.equal(parseMaxFds("nothing"), undefined);
  });
});

for (const target of ferryTargets()) {
  describe(`${target.name}: standard metrics`, () => {
    test("process families, lag and histograms after flows closed; promtool accepts them", T, async (t) => {
      const backend = await new EchoBackend().start();
      const client = await new Client().start();
      const [udp] = await freePorts("udp", 1);
      const f = await FerryProcess.start(
        target,
        `[admin]\nlisten = "127.0.0.1:0"\n[[listeners]]\nname = "dns"\nprotocol = "udp"\n` +
          `address = "127.0.0.1:${udp}"\ncluster = "dns"\n[clusters.dns]\nresponses = 1\n` +
          `backends = [{ address = "127.0.0.1:${backend.port}" }]\n`,
      );
      try {
        // responses = 1: each exchange is a flow that closes on its reply, as DNS.
        for (let i = 0; i < 3; i++) assert.equal(await client.ask(`q${i}`, udp), `q${i}`);
        assert.ok(await until(() => backend.received.length === 3));
        let text = "";
        const closed = async () => {
          text = await (await f.api("/metrics")).text();
          const fam = parsePrometheus(text).get("ferry_flow_duration_seconds");
          return fam?.samples.find((s) => s.name.endsWith("_count"))?.value === 3;
        };
        for (let i = 0; i < 50 && !(await closed()); i++) await new Promise((r) => setTimeout(r, 50));
        const families = parsePrometheus(text);
        for (
          const name of [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
            "ferry_event_loop_lag_seconds",
          ]
        ) {
          const fam = families.get(name);
          assert.ok(fam !== undefined && fam.samples.length === 1, name);
          assert.ok(fam.samples[0].value >= 0, `${name} = ${fam.samples[0].value}`);
        }
        assert.ok(families.get("process_open_fds")!.samples[0].value > 3);
        assert.ok(families.get("process_cpu_seconds_total")!.samples[0].value > 0);

        const duration = families.get("ferry_flow_duration_seconds")!;
        assert.equal(duration.type, "histogram");
        const count = duration.samples.find((s) => s.name.endsWith("_count"))!;
        assert.deepEqual(count.labels, { listener: "dns", protocol: "udp" });
        assert.equal(count.value, 3);
        const inf = duration.samples.find((s) => s.labels.le === "+Inf")!;
        assert.equal(inf.value, 3);
        // Every exchange took well under a second: all three sit in the 0.1 s bucket already.
        assert.equal(duration.samples.find((s) => s.labels.le === "0.1")!.value, 3);
        const rtt = families.get("ferry_flow_rtt_seconds")!;
        assert.equal(rtt.samples.find((s) => s.name.endsWith("_count"))!.value, 3);
        assert.equal(rtt.samples.find((s) => s.name.endsWith("_count"))!.labels.cluster, "dns");
        const first = families.get("ferry_flow_first_reply_seconds")!;
        assert.equal(first.samples.find((s) => s.name.endsWith("_count"))!.value, 3);

        if (!hasPromtool()) return t.skip("promtool is missing (Debian package prometheus)");
        const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
        assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
      } finally {
        await f.stop();
        client.close();
        backend.close();
      }
    });
  });
}
