/**
 * Ferry as a child process for end-to-end tests, on 127.0.0.1 only: write a config TOML into a temp dir,
 * start one target (`deno main.ts`, `bun main.ts` or the compiled `dist/ferry`) with `--log-format json`,
 * wait for its `admin_listening` line (logged after every `listening` line), and expose the bound
 * listener ports and the admin URL; then stop it (SIGTERM, SIGKILL if it lingers) and remove the dir.
 *
 * Signals go through process.kill(pid), as in tests/e2e_cli.test.ts: Deno's node:child_process
 * `child.kill` delivers only the first signal. Every started process is remembered, so a test file's
 * after() hook can `killAll()` whatever a failing test left running.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import dgram from "node:dgram";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import process from "node:process";

/** The repository root, with a trailing slash. */
export const ROOT: string = new URL("../..", import.meta.url).pathname;

/** True when the tests run under Deno (else Bun). */
export const IS_DENO: boolean = "Deno" in globalThis;

/** One way to run Ferry. */
export interface FerryTarget {
  /** For test names: "deno main.ts", "bun main.ts" or "dist/ferry". */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** The runtime inside: the compiled binary is Bun. */
  readonly runtime: "deno" | "bun";
}

/** The compiled binary's path (built by `deno task build` or scripts/test.ts). */
export const BINARY: string = `${ROOT}dist/ferry`;

/**
 * The targets to test from this runtime: under Deno `deno main.ts` and `dist/ferry` when it was built;
 * under Bun `bun main.ts`. Run under both runtimes, the three are covered.
 */
export function ferryTargets(): FerryTarget[] {
  if (!IS_DENO) {
    // --no-env-file: ferry reads .env beside its config file itself, as on Deno and in the binary.
    return [{
      name: "bun main.ts",
      command: process.execPath,
      args: ["--no-env-file", `${ROOT}main.ts`],
      runtime: "bun",
    }];
  }
  const targets: FerryTarget[] = [
    {
      name: "deno main.ts",
      command: process.execPath,
      args: ["run", "-A", `${ROOT}main.ts`],
      runtime: "deno",
    },
  ];
  if (existsSync(BINARY)) targets.push({ name: "dist/ferry", command: BINARY, args: [], runtime: "bun" });
  return targets;
}

/**
 * `count` ports of `protocol` that were free a moment ago on 127.0.0.1 (all bound at once, so distinct,
 * then released). A listener's address must name its port, so tests pick them this way.
 */
export async function freePorts(protocol: "udp" | "tcp", count: number): Promise<number[]> {
  const ports: number[] = [];
  const closers: (() => Promise<void>)[] = [];
  try {
    for (let i = 0; i < count; i++) {
      if (protocol === "udp") {
        const s = dgram.createSocket("udp4");
        await new Promise<void>((res, rej) => {
          s.once("error", rej);
          s.bind(0, "127.0.0.1", () => res());
        });
        ports.push(s.address().port);
        closers.push(() => new Promise<void>((res) => s.close(() => res())));
      } else {
        const s = net.createServer();
        await new Promise<void>((res, rej) => {
          s.once("error", rej);
          s.listen(0, "127.0.0.1", () => res());
        });
        ports.push((s.address() as net.AddressInfo).port);
        closers.push(() => new Promise<void>((res) => s.close(() => res())));
      }
    }
  } finally {
    await Promise.all(closers.map((c) => c()));
  }
  return ports;
}

/** A JSON log line. */
export type LogLine = Record<string, unknown>;

/** A listener as its `listening` line reported it. */
export interface BoundListener {
  readonly name: string;
  readonly protocol: "udp" | "tcp";
  /** "ip:port" */
  readonly address: string;
  readonly port: number;
}

/** Options of {@link FerryProcess.start}. */
export interface StartOptions {
  /** The admin token the config sets, sent by {@link FerryProcess.api}; "" for none. */
  readonly token?: string;
  /** How long startup may take (default 15 s). */
  readonly timeoutMs?: number;
  /** Extra environment (FERRY_* from the outer environment is never passed on). */
  readonly env?: Record<string, string>;
  /** The working directory (default: the repository root). */
  readonly cwd?: string;
  /** A directory to write ferry.toml into and keep afterwards (default: a fresh temp dir, removed). */
  readonly dir?: string;
  /** Extra command-line arguments. */
  readonly args?: readonly string[];
}

const live = new Set<FerryProcess>();

/** SIGKILLs every Ferry process still running and removes their temp dirs: for after() hooks. */
export function killAll(): void {
  for (const f of [...live]) f.kill();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A running Ferry process. */
export class FerryProcess {
  readonly child: ChildProcess;
  readonly dir: string;
  readonly configPath: string;
  readonly token: string;
  readonly exited: Promise<number | null>;
  stdout = "";
  stderr = "";
  /** Bound listeners by name, from the `listening` lines. */
  readonly listeners = new Map<string, BoundListener>();
  /** "http://127.0.0.1:PORT" */
  adminUrl = "";
  readonly #keepDir: boolean;

  private constructor(readonly target: FerryTarget, toml: string, options: StartOptions) {
    this.token = options.token ?? "";
    this.#keepDir = options.dir !== undefined;
    this.dir = options.dir ?? mkdtempSync(`${tmpdir()}/ferry-e2e-`);
    this.configPath = `${this.dir}/ferry.toml`;
    writeFileSync(this.configPath, toml);
    // The outer environment must not leak FERRY_* settings into the relay under test.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("FERRY_")));
    this.child = spawn(
      target.command,
      [...target.args, "--config", this.configPath, "--log-format", "json", ...(options.args ?? [])],
      {
        cwd: options.cwd ?? ROOT,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...env, NO_COLOR: "1", ...options.env },
      },
    );
    this.child.stdout!.on("data", (d) => (this.stdout += d));
    this.child.stderr!.on("data", (d) => (this.stderr += d));
    this.exited = new Promise((resolve) => {
      this.child.on("exit", (code) => resolve(code));
      this.child.on("error", () => resolve(null));
    });
    live.add(this);
  }

  /**
   * Starts `target` with the config `toml` (its [admin] listen may use port 0: the bound port is read
   * from the log) and waits until the admin API is up, which is after every listener is bound. Throws,
   * with stderr, if the process exits or the time runs out; the process is killed then.
   */
  static async start(target: FerryTarget, toml: string, options: StartOptions = {}): Promise<FerryProcess> {
    const f = new FerryProcess(target, toml, options);
    try {
      const admin = await f.waitLog((l) => l.event === "admin_listening", options.timeoutMs ?? 15_000);
      f.adminUrl = `http://${admin.address}`;
      for (const l of f.logs()) {
        if (l.event !== "listening") continue;
        const address = String(l.address);
        f.listeners.set(String(l.listener), {
          name: String(l.listener),
          protocol: l.protocol as "udp" | "tcp",
          address,
          port: Number(address.slice(address.lastIndexOf(":") + 1)),
        });
      }
      return f;
    } catch (e) {
      f.kill();
      throw e;
    }
  }

  /** The bound port of listener `name`; throws if there is none. */
  port(name: string): number {
    const l = this.listeners.get(name);
    if (l === undefined) throw new Error(`no listener ${name} in the log:\n${this.stderr}`);
    return l.port;
  }

  /** The JSON log lines so far. */
  logs(): LogLine[] {
    const out: LogLine[] = [];
    for (const line of this.stderr.split("\n")) {
      if (!line.startsWith("{")) continue;
      try {
        out.push(JSON.parse(line));
      } catch { /* a line still being written */ }
    }
    return out;
  }

  /** Waits for a log line matching `match`; throws with stderr after `ms` or if the process exits. */
  async waitLog(match: (l: LogLine) => boolean, ms = 10_000): Promise<LogLine> {
    const end = Date.now() + ms;
    for (;;) {
      const hit = this.logs().find(match);
      if (hit) return hit;
      if (!this.running) {
        throw new Error(`${this.target.name} exited (${this.child.exitCode}); stderr:\n${this.stderr}`);
      }
      if (Date.now() > end) throw new Error(`no matching log line after ${ms} ms; stderr:\n${this.stderr}`);
      await sleep(20);
    }
  }

  /** True until the process exits. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** fetch() against the admin API with the bearer token (unless `init.headers` sets Authorization). */
  api(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.token !== "" && !headers.has("authorization")) {
      headers.set("authorization", `Bearer ${this.token}`);
    }
    return fetch(`${this.adminUrl}${path}`, {
      ...init,
      headers,
      signal: init.signal ?? AbortSignal.timeout(5000),
    });
  }

  /** GET `path` as JSON; throws on a non-2xx status. */
  async json<T = Record<string, unknown>>(path: string, init: RequestInit = {}): Promise<T> {
    const res = await this.api(path, init);
    const body = await res.text();
    if (!res.ok) throw new Error(`${init.method ?? "GET"} ${path}: ${res.status} ${body}`);
    return JSON.parse(body) as T;
  }

  /**
   * The sum of `/metrics?format=json` samples of family `name` whose labels include `labels` (0 when
   * none match).
   */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return sumSamples(await this.metrics(), name, labels);
  }

  /** Every family of `/metrics?format=json`. */
  async metrics(): Promise<MetricFamilyJson[]> {
    return (await this.json<{ families: MetricFamilyJson[] }>("/metrics?format=json")).families;
  }

  /** SIGTERM, then SIGKILL after `ms`; resolves with the exit code and removes the temp dir. */
  async stop(ms = 5000): Promise<number | null> {
    if (this.running) {
      try {
        process.kill(this.child.pid!, "SIGTERM");
      } catch { /* already gone */ }
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), ms)));
    const code = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (code === "late") {
      this.kill();
      return await this.exited;
    }
    this.#cleanup();
    return code;
  }

  /** SIGKILL now (if still running) and remove the temp dir. */
  kill(): void {
    if (this.running && this.child.pid !== undefined) {
      try {
        process.kill(this.child.pid, "SIGKILL");
      } catch { /* already gone */ }
    }
    this.#cleanup();
  }

  #cleanup(): void {
    live.delete(this);
    if (!this.#keepDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One family of `/metrics?format=json`. */
export interface MetricFamilyJson {
  readonly name: string;
  readonly type: string;
  readonly samples: { readonly labels: Record<string, string>; readonly value: number | null }[];
}

/** The sum of family `name`'s samples whose labels include `labels`. */
export function sumSamples(
  families: MetricFamilyJson[],
  name: string,
  labels: Record<string, string>,
): number {
  const family = families.find((f) => f.name === name);
  if (family === undefined) throw new Error(`no metric family ${name}`);
  return family.samples
    .filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((n, s) => n + (s.value ?? 0), 0);
}
