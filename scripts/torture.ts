/**
 * The torture suite (issue 12): attacks a running Ferry the way the hardening review did, over loopback
 * only, and prints one table: test, load held, faults survived, bad inputs tried, anything lost. Not part
 * of the unit suite; run it through scripts/torture.sh under the shared lock.
 *
 *   deno run -A scripts/torture.ts [--short]
 *
 * @module
 */

import process from "node:process";
import { killAll } from "../tests/support/ferry_process.ts";
import { killAllRedis } from "../tests/support/redis.ts";
import {
  adminAbuseCase,
  configFuzzCase,
  configStallCase,
  faultCases,
  flowCostCase,
  redisHungCase,
  type Row,
  type Size,
  sourceFloodCase,
} from "./torture/cases.ts";
import { nativeSupport } from "../shell/datapath/native/select.ts";

const short = process.argv.includes("--short");
/** `--only NAME[,NAME]`: run just those cases (names as `step` prints them, e.g. "admin abuse"). */
const onlyAt = process.argv.indexOf("--only");
const only = onlyAt < 0 ? null : (process.argv[onlyAt + 1] ?? "").split(",");
const size: Size = short
  ? {
    floodSources: 4000,
    idleFlows: 3000,
    newFlows: 2000,
    checkFuzz: 8,
    putFuzz: 150,
    hupFuzz: 15,
    adminConcurrent: 400,
    halfOpen: 300,
    phaseMs: 1500,
  }
  : {
    floodSources: 40_000,
    idleFlows: 8_000,
    newFlows: 8_000,
    checkFuzz: 100,
    putFuzz: 800,
    hupFuzz: 100,
    adminConcurrent: 2000,
    halfOpen: 20_000,
    phaseMs: 3000,
  };

const rows: Row[] = [];
const started = performance.now();
const step = async (name: string, run: () => Promise<Row | Row[] | null>) => {
  if (only !== null && !only.includes(name)) return;
  const t = performance.now();
  try {
    const r = await run();
    if (r !== null) rows.push(...(Array.isArray(r) ? r : [r]));
  } catch (e) {
    rows.push({
      test: name,
      load: "-",
      faults: "ERROR",
      bad: "-",
      lost: String((e as Error)?.message ?? e).slice(0, 120),
    });
  }
  console.error(`  ${name}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
};

const native = await nativeSupport();
try {
  await step("source flood", () => sourceFloodCase(size));
  if (!("reason" in native)) await step("flow cost native", () => flowCostCase(size, "native"));
  await step("flow cost runtime", () => flowCostCase(size, "runtime"));
  await step("config fuzz", () => configFuzzCase(size));
  await step("config stall", () => configStallCase(size));
  await step("admin abuse", () => adminAbuseCase(size));
  await step("faults", () => faultCases(size));
  await step("redis hung", () => redisHungCase(size));
} finally {
  killAll();
  killAllRedis();
}

const head: Row = {
  test: "test",
  load: "load held",
  faults: "faults survived",
  bad: "bad inputs",
  lost: "anything lost",
};
const cols = ["test", "load", "faults", "bad", "lost"] as const;
const width = cols.map((c) => Math.max(...[head, ...rows].map((r) => r[c].length)));
const line = (r: Row) => `| ${cols.map((c, i) => r[c].padEnd(width[i])).join(" | ")} |`;
console.log(line(head));
console.log(`| ${width.map((w) => "-".repeat(w)).join(" | ")} |`);
for (const r of rows) console.log(line(r));
console.log(`\n${short ? "short" : "full"} run, ${((performance.now() - started) / 1000).toFixed(0)} s`);
process.exit(rows.some((r) => /CRASH|LOST|DOWN|ERROR|CHANGED/.test(r.faults + r.lost)) ? 1 : 0);
