/**
 * The cost of session records and flow histograms at the core benchmark's churn (scripts/bench-core.ts
 * "admit+close"): 64 Ki new clients, each admitted, answered once and closed, with the closed events
 * handed to a FlowRecorder as the UDP driver does. Rows: the bare churn, then the same churn with the
 * recorder in each mode (histograms are always on). Records go to a rotating file in the temp dir.
 *
 *   deno run -A scripts/bench-records.ts [--quick]
 *   bun scripts/bench-records.ts [--quick]
 *
 * Prints ns per flow (median of interleaved rounds) and the overhead over the bare churn.
 *
 * @module
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { RelayCore } from "../core/relay_core.ts";
import type { RecordsSettings } from "../core/types.ts";
import { FlowRecorder } from "../shell/records/recorder.ts";
import { cluster, config, listener } from "../tests/support/fixtures.ts";

const QUICK = process.argv.includes("--quick");
const CHURN = QUICK ? 4_096 : 65_536;
const ROUNDS = QUICK ? 3 : 7;
const PAYLOAD = new Uint8Array(64).fill(0x61);
const dir = mkdtempSync(`${tmpdir()}/ferry-bench-records-`);

const ips: string[] = [];
const ports: number[] = [];
for (let i = 0; i < CHURN; i++) {
  ips.push(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  ports.push(1024 + (i % 60000));
}

const base: RecordsSettings = {
  mode: "off",
  sample: 100,
  interim: 0,
  format: "json",
  file: "",
  maxSize: 100 * 1024 * 1024,
  keep: 1,
};

/** One round: ms for CHURN flows, with `recorder` fed the closed events (or none). */
function round(settings: RecordsSettings | null): number {
  let clock = 1;
  const core = new RelayCore(config([cluster({}, 8)], [listener({ maxFlows: 1 << 24 })]), { seed: 1 });
  const l = core.listener("l")!;
  const recorder = settings === null ? null : new FlowRecorder(settings, () => clock);
  const t0 = performance.now();
  for (let i = 0; i < CHURN; i++) {
    clock += 0.01;
    const r = core.fromClient(l, ips[i], ports[i], PAYLOAD, clock);
    if (typeof r === "number") continue;
    core.fromBackend(r, 64, clock + 0.005);
    core.close(r, "responses");
    for (let e = core.poll(); e !== undefined; e = core.poll()) {
      if (e.kind === "closed" && recorder !== null) recorder.flowClosed(e.flow);
    }
  }
  recorder?.flush();
  const ms = performance.now() - t0;
  recorder?.close();
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const cases: [string, RecordsSettings | null][] = [
  ["churn alone", null],
  ["+ histograms (records off)", base],
  ["+ records sampled 1/100, JSON file", { ...base, mode: "sampled", file: `${dir}/sampled.log` }],
  ["+ records all, JSON file", { ...base, mode: "all", file: `${dir}/all.log` }],
  ["+ records all, text file", { ...base, mode: "all", format: "text", file: `${dir}/text.log` }],
];
const runtime = "Bun" in globalThis ? "bun" : "deno";
console.log(`session records at churn: ${CHURN} flows per round, median of ${ROUNDS} rounds, ${runtime}`);
try {
  // Interleaved rounds, after two warm-up rounds of every case: JIT warm-up and machine noise fall on all
  // cases alike instead of on whichever runs first.
  for (let w = 0; w < 2; w++) for (const [, settings] of cases) round(settings);
  const times: number[][] = cases.map(() => []);
  for (let r = 0; r < ROUNDS; r++) cases.forEach(([, settings], i) => times[i].push(round(settings)));
  const ns = times.map((t) => (median(t) * 1e6) / CHURN);
  cases.forEach(([name], i) => {
    const over = i === 0
      ? ""
      : `  +${(ns[i] - ns[0]).toFixed(0)} ns/flow (${((ns[i] / ns[0] - 1) * 100).toFixed(0)}%)`;
    console.log(
      `${name.padEnd(38)} ${ns[i].toFixed(0).padStart(6)} ns/flow  ${
        (1e9 / ns[i] / 1000).toFixed(0)
      }k flows/s${over}`,
    );
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
