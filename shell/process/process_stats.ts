/**
 * The standard process figures of `/metrics` that neither runtime hands over as one call: CPU time,
 * open descriptors and their limit (Linux /proc/self), and event-loop lag measured by a timer.
 *
 * Read at scrape time only (a readdir of /proc/self/fd and a small file read), never on the data path.
 *
 * @module
 */

import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";
import type { ProcessMetrics } from "../../core/control_api.ts";

/** How often the lag monitor's timer is due. */
export const LAG_INTERVAL_MS = 500;
/** The lag reported is the largest over the last one or two windows of this many ticks. */
const LAG_WINDOW_TICKS = 10;

/** The process figures `/metrics` adds to memory and uptime. */
export type ProcessFacts = Pick<ProcessMetrics, "cpuSeconds" | "openFds" | "maxFds" | "eventLoopLagSeconds">;

/** Measures how late a repeating timer runs: the event loop's lag, in ms. */
export class LagMonitor {
  #current = 0;
  #previous = 0;
  #ticks = 0;
  #timer: ReturnType<typeof setInterval> | null = null;

  /** Starts the timer (unreferenced: it never keeps the process alive). */
  start(now: () => number = () => performance.now()): this {
    let due = now() + LAG_INTERVAL_MS;
    this.#timer = setInterval(() => {
      const t = now();
      this.tick(Math.max(0, t - due));
      due = t + LAG_INTERVAL_MS;
    }, LAG_INTERVAL_MS);
    const timer = this.#timer as unknown as { unref?: () => void };
    if (typeof timer.unref === "function") timer.unref();
    else if ("Deno" in globalThis) Deno.unrefTimer(this.#timer as unknown as number);
    return this;
  }

  /** One timer run `lagMs` late. */
  tick(lagMs: number): void {
    if (lagMs > this.#current) this.#current = lagMs;
    if (++this.#ticks >= LAG_WINDOW_TICKS) {
      this.#previous = this.#current;
      this.#current = 0;
      this.#ticks = 0;
    }
  }

  /** The largest lag of the last 5 to 10 seconds, in ms. */
  get lagMs(): number {
    return Math.max(this.#current, this.#previous);
  }

  /** Stops the timer. */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}

/** The open-files limit from /proc/self/limits text, or undefined. */
export function parseMaxFds(limits: string): number | undefined {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
  if (m === null) return undefined;
  return m[1] === "unlimited" ? Infinity : Number(m[1]);
}

function openFds(): number | undefined {
  try {
    return readdirSync("/proc/self/fd").length - 1; // readdir's own descriptor is listed too
  } catch {
    return undefined;
  }
}

function maxFds(): number | undefined {
  try {
    return parseMaxFds(readFileSync("/proc/self/limits", "utf8"));
  } catch {
    return undefined;
  }
}

function cpuSeconds(): number | undefined {
  try {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  } catch {
    return undefined;
  }
}

/** A reader of the process facts, with its lag monitor running. */
export function processFacts(lag: LagMonitor): () => ProcessFacts {
  return () => ({
    cpuSeconds: cpuSeconds(),
    openFds: openFds(),
    maxFds: maxFds(),
    eventLoopLagSeconds: lag.lagMs / 1000,
  });
}
