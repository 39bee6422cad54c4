/**
 * A real redis-server for tests, on 127.0.0.1 and a free port, with nothing saved to disk; it can be
 * killed and started again on the same port (an outage). Tests skip when redis-server is not installed
 * (`.ci/run` installs Debian's package).
 *
 * @module
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import process from "node:process";
import { freePorts } from "./ferry_process.ts";

/** Why Redis tests cannot run here, or null when redis-server is installed. */
export function redisMissing(): string | null {
  try {
    const r = spawnSync("redis-server", ["--version"], { encoding: "utf8", timeout: 5000 });
    if (r.status === 0) return null;
  } catch { /* not found */ }
  return "redis-server is not installed (apt-get install redis-server; .ci/run installs it)";
}

const live = new Set<RedisServer>();

/** SIGKILLs every redis-server still running: for after() hooks. */
export function killAllRedis(): void {
  for (const r of [...live]) r.kill();
}

/** A redis-server child process. */
export class RedisServer {
  #child: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();

  private constructor(readonly port: number) {}

  /** "redis://127.0.0.1:PORT" */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts a server on a free port (or `port`) and waits until it accepts connections. */
  static async start(port?: number): Promise<RedisServer> {
    const server = new RedisServer(port ?? (await freePorts("tcp", 1))[0]);
    await server.restart();
    return server;
  }

  /** Starts the server (again) on its port, empty; resolves when it accepts connections (5 s at most). */
  async restart(timeoutMs = 5000): Promise<void> {
    if (this.#child !== null) throw new Error("redis-server is already running");
    const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
    const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    live.add(this);
    let out = "";
    this.#exited = new Promise((resolve) => child.on("exit", () => resolve()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.kill();
        reject(new Error(`redis-server did not start on ${this.port} in ${timeoutMs} ms:\n${out}`));
      }, timeoutMs);
      child.stdout!.on("data", (d) => {
        out += d;
        if (out.includes("Ready to accept connections")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on("exit", () => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited:\n${out}`));
      });
    });
  }

  /** SIGSTOPs the server: connections stay open but nothing is answered (a Redis that hangs). */
  pause(): void {
    if (this.#child?.pid !== undefined) process.kill(this.#child.pid, "SIGSTOP");
  }

  /** SIGCONTs a paused server. */
  resume(): void {
    if (this.#child?.pid !== undefined) process.kill(this.#child.pid, "SIGCONT");
  }

  /** SIGKILLs the server (as a crash would) and waits until it is gone. */
  async crash(): Promise<void> {
    this.kill();
    await this.#exited;
  }

  /** SIGKILLs the server if it runs. */
  kill(): void {
    const child = this.#child;
    this.#child = null;
    live.delete(this);
    if (child !== null && child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch { /* already gone */ }
    }
  }

  /** Stops the server (SIGKILL: it holds nothing worth saving) and waits. */
  async stop(): Promise<void> {
    await this.crash();
  }
}
