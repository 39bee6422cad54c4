/**
 * The per-runtime odds and ends the `ferry` command needs (sockets, signals, files, environment, stdio,
 * exit), behind one runtime-neutral surface so `main.ts` never asks which runtime it is on.
 *
 * Deno gets its native APIs (signal listeners, synchronous stdio writes); Bun gets node:process / node:fs,
 * which Bun implements natively. Nothing here touches a runtime global at import time, so importing it
 * under either runtime (or inside a `bun build --compile` binary) is safe.
 *
 * @module
 */

import { writeSync } from "node:fs";
import { readFile } from "node:fs/promises";
import process from "node:process";
import { isatty } from "node:tty";
import { bun } from "../datapath/bun/bun_api.ts";
import { bunTcpSockets } from "../datapath/bun/tcp.ts";
import { bunUdpSockets } from "../datapath/bun/udp.ts";
import { denoTcpSockets } from "../datapath/deno/tcp.ts";
import { denoUdpSockets } from "../datapath/deno/udp.ts";
import type { Platform } from "../relay/relay.ts";

/** True under Bun (including compiled Bun binaries), false under Deno. */
export const isBun: boolean = "Bun" in globalThis;

/** The signals the command handles. */
export type Signal = "SIGINT" | "SIGTERM" | "SIGHUP";

/** The socket adapters and clock of the runtime running this process. */
export function detectPlatform(): Platform {
  const clock = () => performance.now();
  return isBun
    ? { runtime: "bun", udp: bunUdpSockets, tcp: bunTcpSockets, clock }
    : { runtime: "deno", udp: denoUdpSockets, tcp: denoTcpSockets, clock };
}

/** "bun" or "deno". */
export function runtimeName(): "bun" | "deno" {
  return isBun ? "bun" : "deno";
}

/** The runtime's own version, e.g. "1.2.3", for `--version` and the startup log. */
export function runtimeVersion(): string {
  return isBun ? bun().version : Deno.version.deno;
}

/** The command-line arguments after the program (and, for `deno run` / `bun`, the script). */
export function commandArgs(): string[] {
  // A compiled Bun binary still reports ["bun", "/$bunfs/root/<name>", ...args], so slice(2) holds there too.
  return isBun ? process.argv.slice(2) : [...Deno.args];
}

/** Ends the process now with `code`. */
export function exit(code: number): never {
  return isBun ? process.exit(code) : Deno.exit(code);
}

/**
 * Calls `fn` on each delivery of `signal`. Deno's own listener API is used under Deno because its
 * node:process emulation is a layer over it anyway; Bun implements process.on signals natively.
 */
export function onSignal(signal: Signal, fn: () => void): void {
  if (isBun) process.on(signal, fn);
  else Deno.addSignalListener(signal, fn);
}

/** Reads a UTF-8 text file. */
export function readTextFile(path: string): Promise<string> {
  return isBun ? readFile(path, "utf8") : Deno.readTextFile(path);
}

/** An environment variable, or undefined when unset. */
export function getEnv(name: string): string | undefined {
  return isBun ? process.env[name] : Deno.env.get(name);
}

/** The names of every environment variable of the process. */
export function envNames(): string[] {
  return Object.keys(isBun ? process.env : Deno.env.toObject());
}

/** Whether stdout or stderr is a terminal (decides readable vs JSON logs and colours). */
export function isTerminal(stream: "stdout" | "stderr"): boolean {
  if (!isBun) return stream === "stdout" ? Deno.stdout.isTerminal() : Deno.stderr.isTerminal();
  return isatty(stream === "stdout" ? 1 : 2);
}

/**
 * Writes all of `text` to fd 1 or 2 before returning. Synchronous on purpose: the command often exits right
 * after printing (an error, `--version`), and a buffered write would be lost with the process.
 */
function writeAll(fd: 1 | 2, text: string): void {
  let bytes = new TextEncoder().encode(text);
  while (bytes.length > 0) {
    let n: number;
    try {
      n = isBun ? writeSync(fd, bytes) : (fd === 1 ? Deno.stdout : Deno.stderr).writeSync(bytes);
    } catch {
      return; // a closed pipe: nobody is reading, and logging must never crash the relay
    }
    bytes = bytes.subarray(n);
  }
}

/** Writes `text` to stdout, synchronously. */
export function writeStdout(text: string): void {
  writeAll(1, text);
}

/** Writes `text` to stderr, synchronously. */
export function writeStderr(text: string): void {
  writeAll(2, text);
}

/**
 * The soft limit on open file descriptors, or undefined where it cannot be read. Neither runtime exposes
 * getrlimit, but Linux publishes it in /proc/self/limits; elsewhere the core's default flow limit applies.
 */
export async function fileDescriptorLimit(): Promise<number | undefined> {
  try {
    const text = await readTextFile("/proc/self/limits");
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(text);
    if (m === null) return undefined;
    return m[1] === "unlimited" ? Infinity : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Resident set size and heap in use, in bytes (for the admin API's process metrics). */
export function memoryUsage(): { rss: number; heapUsed: number } {
  const m = isBun ? process.memoryUsage() : Deno.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed };
}
