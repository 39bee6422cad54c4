/**
 * Load and fault tools for scripts/torture.ts, over 127.0.0.0/8 only: an echo backend, a paced "legit"
 * client that measures loss and round trips, a source flood from many 127.x.y.z addresses, and a burst of
 * new flows. Every socket is closed before a function returns.
 *
 * @module
 */

import dgram from "node:dgram";
import { spawn } from "node:child_process";
import process from "node:process";

const CHILD = new URL("./child.ts", import.meta.url).pathname;

/** An echo backend in its own process (answers with `replyBytes` zero bytes instead, if > 0). */
export async function echoProcess(replyBytes = 0): Promise<{ port: number; close(): void }> {
  const child = spawn(process.execPath, ["run", "-A", CHILD, "echo", String(replyBytes)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((res, rej) => {
    child.stdout!.once("data", (d) => res(Number(String(d).trim())));
    child.once("exit", () => rej(new Error("echo child exited")));
  });
  return { port, close: () => child.kill("SIGKILL") };
}

/** `sourceFlood` in its own process. */
export async function floodProcess(
  port: number,
  count: number,
  first = 0,
  batch = 256,
  waitMs = 30,
): Promise<{ sent: number; replied: number }> {
  const child = spawn(
    process.execPath,
    ["run", "-A", CHILD, "flood", ...[port, count, first, batch, waitMs].map(String)],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  await new Promise((res) => child.once("exit", res));
  return JSON.parse(out.trim());
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A UDP socket bound to `ip` (port 0). */
export function bound(ip = "127.0.0.1"): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  return new Promise((res, rej) => {
    s.once("error", rej);
    s.bind(0, ip, () => res(s));
  });
}

/** An echo backend on 127.0.0.1; `reply` may replace the echo. */
export async function echoBackend(
  reply: (d: Uint8Array) => Uint8Array = (d) => d,
): Promise<{ port: number; close(): void }> {
  const s = await bound();
  s.on("message", (m, r) => s.send(reply(new Uint8Array(m)), r.port, r.address));
  return { port: s.address().port, close: () => s.close() };
}

/** The `p`-quantile of `xs` (ms), NaN when empty. */
export function quantile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

/** What a paced flow saw in one phase. */
export interface PhaseStats {
  sent: number;
  lost: number;
  p99: number;
}

/**
 * A legit client: one datagram every `intervalMs` to `port`, each with a sequence number; replies are
 * matched to their send times. `phase(name)` starts counting under a new name; `stop` returns each phase.
 */
export async function pacedFlow(port: number, intervalMs = 1) {
  const s = await bound();
  const sentAt = new Map<number, { at: number; phase: string }>();
  const rtts = new Map<string, number[]>();
  const sent = new Map<string, number>();
  let phase = "before";
  rtts.set(phase, []);
  let seq = 0;
  s.on("message", (m) => {
    const n = m.readUInt32BE(0);
    const e = sentAt.get(n);
    if (e === undefined) return;
    sentAt.delete(n);
    rtts.get(e.phase)?.push(performance.now() - e.at);
  });
  // setInterval at 1 ms is coarse under load: send as many as are due on each tick.
  const start = performance.now();
  const timer = setInterval(() => {
    const due = Math.floor((performance.now() - start) / intervalMs);
    while (seq < due) {
      // A fresh buffer each time: Deno's send may read it after returning.
      const buf = Buffer.alloc(64);
      buf.writeUInt32BE(seq, 0);
      sentAt.set(seq, { at: performance.now(), phase });
      sent.set(phase, (sent.get(phase) ?? 0) + 1);
      s.send(buf, port, "127.0.0.1");
      seq++;
    }
  }, intervalMs);
  return {
    phase(name: string) {
      phase = name;
      rtts.set(name, []);
    },
    async stop(): Promise<Record<string, PhaseStats>> {
      clearInterval(timer);
      await sleep(300);
      s.close();
      const out: Record<string, PhaseStats> = {};
      for (const [name, r] of rtts) {
        const n = sent.get(name) ?? 0;
        out[name] = { sent: n, lost: n - r.length, p99: quantile(r, 0.99) };
      }
      return out;
    },
  };
}

/** The i-th flood source: 127.(10 + i>>16).(i>>8 & 255).(i & 255), never 127.0.0.x. */
export function floodSource(i: number): string {
  return `127.${10 + (i >> 16)}.${(i >> 8) & 255}.${(i & 255) || 1}`;
}

/**
 * One datagram from each of `count` sources (distinct 127.x.y.z addresses), `batch` sockets at a time;
 * returns how many were sent and how many got a reply within `waitMs` of their batch.
 */
export async function sourceFlood(
  port: number,
  count: number,
  first = 0,
  batch = 256,
  waitMs = 30,
): Promise<{ sent: number; replied: number }> {
  let sent = 0, replied = 0;
  const payload = Buffer.alloc(32, 0x61);
  for (let base = 0; base < count; base += batch) {
    const n = Math.min(batch, count - base);
    const socks = await Promise.all(
      Array.from({ length: n }, (_, k) => bound(floodSource(first + base + k))),
    );
    for (const s of socks) {
      s.on("message", () => replied++);
      s.send(payload, port, "127.0.0.1");
      sent++;
    }
    await sleep(waitMs);
    for (const s of socks) s.close();
  }
  return { sent, replied };
}

/** `count` new flows from 127.0.0.1 ports, `batch` at a time; resolves with flows/s to all replies. */
export async function newFlowRate(port: number, count: number, batch = 200): Promise<number> {
  const start = performance.now();
  let got = 0;
  for (let base = 0; base < count; base += batch) {
    const n = Math.min(batch, count - base);
    const socks = await Promise.all(Array.from({ length: n }, () => bound()));
    const done = new Promise<void>((res) => {
      let left = n;
      const t = setTimeout(res, 2000);
      for (const s of socks) {
        s.once("message", () => {
          got++;
          if (--left === 0) {
            clearTimeout(t);
            res();
          }
        });
        s.send("x", port, "127.0.0.1");
      }
    });
    await done;
    for (const s of socks) s.close();
  }
  return Math.round(got / ((performance.now() - start) / 1000));
}

/** Lines of JSON a child prints, one at a time. */
function jsonLines(child: ReturnType<typeof spawn>): () => Promise<unknown> {
  const lines: string[] = [];
  let buffer = "";
  let wake = () => {};
  child.stdout!.on("data", (d) => {
    buffer += d;
    const parts = buffer.split("\n");
    buffer = parts.pop()!;
    lines.push(...parts.filter((l) => l !== ""));
    wake();
  });
  return async () => {
    while (lines.length === 0) await new Promise<void>((r) => (wake = r));
    return JSON.parse(lines.shift()!);
  };
}

/**
 * `pacedFlow` in its own process, so what the measuring process does (a burst of admin requests, say)
 * cannot stall the legit client itself and be mistaken for the relay's loss.
 */
export async function pacedProcess(port: number, intervalMs = 1) {
  const child = spawn(process.execPath, ["run", "-A", CHILD, "paced", String(port), String(intervalMs)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const next = jsonLines(child);
  await next();
  return {
    phase(name: string) {
      child.stdin!.write(`phase ${name}\n`);
    },
    async stop(): Promise<Record<string, PhaseStats>> {
      child.stdin!.write("stop\n");
      return await next() as Record<string, PhaseStats>;
    },
  };
}

/**
 * `count` half-open admin connections from a child process (its own descriptor limit): resolves once
 * they are open; `release()` closes them and resolves with how many the server closed (and answered 503).
 */
export async function halfOpenProcess(port: number, count: number) {
  const child = spawn(process.execPath, ["run", "-A", CHILD, "halfopen", String(port), String(count)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const next = jsonLines(child);
  const { opened } = await next() as { opened: number };
  return {
    opened,
    async release(): Promise<{ closedByServer: number; refused: number }> {
      child.stdin!.end();
      return await next() as { closedByServer: number; refused: number };
    },
  };
}
