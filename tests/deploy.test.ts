// deploy/: the Prometheus rules pass `promtool check rules`, the Grafana dashboard's queries are valid
// PromQL (checked as recording rules), and every metric either names is a family of Ferry's /metrics.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { FerryProcess, ferryTargets, freePorts, killAll, ROOT } from "./support/ferry_process.ts";
import { parsePrometheus } from "./support/prometheus.ts";

after(killAll);
const T = { timeout: 30_000 };
const RULES = `${ROOT}deploy/prometheus-rules.yml`;
const DASHBOARD = `${ROOT}deploy/grafana-dashboard.json`;

function hasPromtool(): boolean {
  return spawnSync("promtool", ["--version"], { stdio: "ignore" }).status === 0;
}

interface Panel {
  readonly title: string;
  readonly targets?: readonly { readonly expr: string }[];
}

/** Every query of the dashboard, with Grafana's variables replaced by what Prometheus would see. */
function dashboardExprs(): string[] {
  const d = JSON.parse(readFileSync(DASHBOARD, "utf8")) as { panels: Panel[] };
  return d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr))
    .map((e) => e.replaceAll("$__rate_interval", "5m").replace(/\$(instance|listener|cluster)\b/g, ".*"));
}

/** The alert expressions of the rules file (each `expr:` line). */
function ruleExprs(): string[] {
  return [...readFileSync(RULES, "utf8").matchAll(/^\s+expr: (.+)$/gm)].map((m) => m[1]);
}

/** The Ferry and process metric names a query uses. */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b(?:ferry|process)_[a-z0-9_]+\b/g)].map((m) => m[0]);
}

describe("deploy: alert rules and dashboard", () => {
  test("the rules cover what an operator must hear about", () => {
    const text = readFileSync(RULES, "utf8");
    for (
      const alert of [
        "FerryBackendDown",
        "FerryClusterFailingOpen",
        "FerryDropsRising",
        "FerryDescriptorsNearLimit",
        "FerryKernelReceiveQueueDrops",
        "FerryRedisDown",
      ]
    ) assert.match(text, new RegExp(`- alert: ${alert}$`, "m"));
    assert.ok(dashboardExprs().length >= 20);
  });

  test("promtool check rules accepts the rules, and the dashboard's queries as PromQL", (t) => {
    if (!hasPromtool()) return t.skip("promtool is missing (Debian package prometheus)");
    const r = spawnSync("promtool", ["check", "rules", RULES], { encoding: "utf8" });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    const dir = mkdtempSync(`${tmpdir()}/ferry-deploy-`);
    try {
      const rules = dashboardExprs().map((e, i) =>
        `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(e)}`
      );
      writeFileSync(
        `${dir}/dashboard.yml`,
        `groups:\n  - name: dashboard\n    rules:\n${rules.join("\n")}\n`,
      );
      const d = spawnSync("promtool", ["check", "rules", `${dir}/dashboard.yml`], { encoding: "utf8" });
      assert.equal(d.status, 0, `${d.stdout}${d.stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(
    `${ferryTargets()[0].name}: every metric the rules and the dashboard name is in /metrics`,
    T,
    async () => {
      const [udp] = await freePorts("udp", 1);
      const f = await FerryProcess.start(
        ferryTargets()[0],
        `[admin]\nlisten = "127.0.0.1:0"\n[[listeners]]\nname = "g"\nprotocol = "udp"\n` +
          `address = "127.0.0.1:${udp}"\ncluster = "g"\n[clusters.g]\nbackends = [{ address = "127.0.0.1:9" }]\n`,
      );
      try {
        const families = parsePrometheus(await (await f.api("/metrics")).text());
        const known = (name: string) => {
          if (families.has(name)) return true;
          const base = name.replace(/_(bucket|sum|count)$/, "");
          return base !== name && families.get(base)?.type === "histogram";
        };
        const used = new Set([...ruleExprs(), ...dashboardExprs()].flatMap(metricNames));
        assert.ok(used.size >= 25, `only ${used.size} names found`);
        const missing = [...used].filter((n) => !known(n));
        assert.deepEqual(missing, [], `not in /metrics: ${missing.join(", ")}`);
      } finally {
        await f.stop();
      }
    },
  );
});
