/**
 * What one backend change costs on a big config: 100 clusters × 100 backends (maglev, so a rebuilt balancer
 * is a rebuilt 65537-slot table), four TCP listeners with source policies, on 127.0.0.1 only (health off:
 * nothing is ever sent to a backend).
 *
 *   deno run -A scripts/bench-backend-change.ts [--quick]
 *   bun scripts/bench-backend-change.ts [--quick]
 *
 * Each round adds backend 127.0.200.1:9000 to cluster c50 through the change queue (the path of
 * `POST /api/v1/clusters/c50/backends`: edit, validate, apply, log), and the next round removes it again.
 * Rows, each the median over the rounds:
 * - in-process: one Relay in this thread (relay.workers = 1). "change" is the queue's call end to end;
 *   "picks after" is one backend choice in each of the 100 clusters right after the change (a balancer
 *   whose version moved rebuilds its table on that pick); "allocated" is bytes allocated in this thread over
 *   change + picks (`node:v8` total_allocated_bytes: exact on V8; on JSC a collection inside resets it).
 * - workers = 2: a WorkerPool of two threads. "change" is end to end (both workers applied it); "posted"
 *   is the JSON size of what the main thread posted to each worker for it (structured clone copies about
 *   that much; counted by wrapping Worker.prototype.postMessage); "allocated" is the main thread's.
 *
 * `--quick` runs few rounds: a smoke test, not a measurement.
 *
 * @module
 */

import process from "node:process";
import * as v8 from "node:v8";
import { parseConfigToml } from "../core/config.ts";
import { addBackend, removeBackend } from "../core/config_edits.ts";
import type { FerryConfig } from "../core/types.ts";
import { Rng } from "../core/rng.ts";
import { ChangeQueue } from "../shell/relay/changes.ts";
import { RelayControl, type RelayControlOptions } from "../shell/relay/change_target.ts";
import { Relay } from "../shell/relay/relay.ts";
import { WorkerPool } from "../shell/workers/worker_pool.ts";
import { detectPlatform } from "../shell/process/platform.ts";

const QUICK = process.argv.includes("--quick");
const ROUNDS = QUICK ? 4 : 30;
const WARMUP = QUICK ? 1 : 4;
const CLUSTERS = 100;
const BACKENDS = 100;
/** The listeners' port on their own loopback addresses 127.0.10.1..127.0.13.1 (nothing connects to them). */
const PORT = 20_000 + (process.pid % 20_000);

/** The config as TOML: c0..c99 with 127.0.<c>.<b+1>:9000 each, four TCP listeners with source lists. */
function configText(): string {
  const lines = ['[relay]\nlog_level = "warning"\n', `[admin]\nlisten = "127.0.0.1:${PORT}"\n`];
  for (let l = 0; l < 4; l++) {
    lines.push(
      `[[listeners]]\nname = "l${l}"\nprotocol = "tcp"\naddress = "127.0.1${l}.1:${PORT}"\ncluster = "c${l}"\n`,
      `[listeners.sources]\ndeny = [${
        Array.from({ length: 50 }, (_, i) => `"10.${l}.${i}.0/24"`).join(", ")
      }]\n`,
    );
  }
  for (let c = 0; c < CLUSTERS; c++) {
    const backends = Array.from({ length: BACKENDS }, (_, b) => `{ address = "127.0.${c}.${b + 1}:9000" }`);
    lines.push(`[clusters.c${c}]\nbalancer = "maglev"\nbackends = [${backends.join(", ")}]\n`);
  }
  return lines.join("\n");
}

function load(): FerryConfig {
  const r = parseConfigToml(configText());
  if (!r.ok) throw new Error(JSON.stringify(r.errors.slice(0, 3)));
  return r.config;
}

const allocated = () => v8.getHeapStatistics().total_allocated_bytes;

/** Bytes posted to workers so far (JSON size of each message), counted by wrapping postMessage. */
let posted = 0;
const proto = (globalThis as unknown as { Worker: { prototype: { postMessage(m: unknown): void } } }).Worker
  .prototype;
const postMessage = proto.postMessage;
proto.postMessage = function (this: unknown, m: unknown) {
  posted += JSON.stringify(m)?.length ?? 0;
  return postMessage.call(this, m);
};

function controlOptions(): RelayControlOptions {
  return {
    version: "bench",
    runtimeVersion: "",
    configPath: null,
    load: () => Promise.reject(new Error("no file")),
    now: Date.now,
    memory: () => ({ rss: 0, heapUsed: 0 }),
  };
}

const ADDED = "127.0.200.1:9000";

/** One round: add (even) or remove (odd) the extra backend of c50. */
async function change(queue: ChangeQueue, round: number): Promise<void> {
  const r = await queue.change({
    source: "api",
    persist: false,
    edit: (c) => round % 2 === 0 ? addBackend(c, "c50", { address: ADDED }) : removeBackend(c, "c50", ADDED),
  });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

interface Row {
  readonly what: string;
  readonly changeMs: number;
  readonly picksMs: number | null;
  readonly allocated: number;
  readonly posted: number | null;
}

async function inProcess(config: FerryConfig): Promise<Row> {
  const relay = await Relay.start(config, detectPlatform(), { seed: 1 });
  const queue = new ChangeQueue(new RelayControl(relay, controlOptions()), controlOptions());
  const rng = new Rng(7);
  const picks = () => {
    let h = 1;
    for (const c of relay.core.clusters()) c.choose(h = Math.imul(h, 0x9e3779b1) >>> 0, rng, 0);
  };
  picks();
  const times: number[] = [], pickTimes: number[] = [], bytes: number[] = [];
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    const a0 = allocated();
    const t0 = performance.now();
    await change(queue, i);
    const t1 = performance.now();
    picks();
    const t2 = performance.now();
    const a1 = allocated();
    if (i < WARMUP) continue;
    times.push(t1 - t0);
    pickTimes.push(t2 - t1);
    bytes.push(a1 - a0);
  }
  relay.stop();
  return {
    what: "in-process (workers = 1)",
    changeMs: median(times),
    picksMs: median(pickTimes),
    allocated: median(bytes),
    posted: null,
  };
}

async function pooled(config: FerryConfig): Promise<Row> {
  const workers = { ...config, relay: { ...config.relay, workers: 2 } };
  const pool = await WorkerPool.start(workers, detectPlatform(), {
    workers: 2,
    seed: 1,
    control: controlOptions(),
    log: { terminal: false, noColor: true },
  });
  const queue = new ChangeQueue(pool, controlOptions());
  const times: number[] = [], bytes: number[] = [], sent: number[] = [];
  try {
    for (let i = 0; i < WARMUP + ROUNDS; i++) {
      const p0 = posted;
      const a0 = allocated();
      const t0 = performance.now();
      await change(queue, i);
      const t1 = performance.now();
      const a1 = allocated();
      if (i < WARMUP) continue;
      times.push(t1 - t0);
      bytes.push(a1 - a0);
      sent.push((posted - p0) / pool.size);
    }
  } finally {
    await pool.shutdown(0);
  }
  return {
    what: "workers = 2",
    changeMs: median(times),
    picksMs: null,
    allocated: median(bytes),
    posted: median(sent),
  };
}

function mib(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

const config = load();
const rows = [await inProcess(config), await pooled(config)];
const runtime = "Bun" in globalThis ? "bun" : "deno";
console.log(`backend change on ${CLUSTERS} clusters × ${BACKENDS} backends (${runtime}, ${ROUNDS} rounds)`);
console.log(
  "| path | change (median) | picks after, 100 clusters | allocated (main thread) | posted per worker |",
);
console.log("|---|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.what} | ${r.changeMs.toFixed(2)} ms | ${
      r.picksMs === null ? "—" : `${r.picksMs.toFixed(2)} ms`
    } | ${mib(r.allocated)} | ${r.posted === null ? "—" : mib(r.posted)} |`,
  );
}
process.exit(0);
