/**
 * A `ferry` command spawned as a child process for end-to-end tests: the real main.ts under the runtime
 * running the tests, JSON logs parsed, signals sent through process.kill(pid) (Deno's node:child_process
 * `child.kill` delivers only the first signal and then misreports the exit).
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";

const root = new URL("../..", import.meta.url).pathname;
const isDeno = "Deno" in globalThis;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A running (or finished) ferry process and what it printed. */
export class Ferry {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  readonly exited: Promise<number | null>;

  constructor(args: string[], env: Record<string, string> = {}) {
    // The outer environment must not leak FERRY_* settings into the command under test.
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("FERRY_")));
    this.child = spawn(process.execPath, [...(isDeno ? ["run", "-A"] : []), "main.ts", ...args], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...clean, NO_COLOR: "1", ...env },
    });
    this.child.stdout!.on("data", (d) => (this.stdout += d));
    this.child.stderr!.on("data", (d) => (this.stderr += d));
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)));
  }

  /** The JSON log lines so far. */
  logs(): Record<string, unknown>[] {
    return this.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  }

  /** Waits for a log line matching `match`, failing after `ms`. */
  async waitLog(
    match: (l: Record<string, unknown>) => boolean,
    ms = 10_000,
  ): Promise<Record<string, unknown>> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const hit = this.logs().find(match);
      if (hit) return hit;
      if (this.child.exitCode !== null) break;
      await sleep(20);
    }
    throw new Error(`no matching log line; stderr so far:\n${this.stderr}`);
  }

  signal(sig: "SIGTERM" | "SIGINT" | "SIGHUP"): void {
    process.kill(this.child.pid!, sig);
  }

  /** The exit code, failing if the process runs longer than `ms`. */
  async exit(ms: number): Promise<number | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`still running after ${ms} ms:\n${this.stderr}`)), ms);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      try {
        process.kill(this.child.pid!, "SIGKILL");
      } catch { /* already gone */ }
    }
  }
}
