/**
 * The admin thread (a worker; started by shell/process/serve.ts, never run directly): everything about the
 * admin API's connections that costs time, off the thread that forwards datagrams. Its TCP front
 * (shell/process/admin_front.ts) caps and times out connections; the runtime's HTTP server (Deno.serve or
 * Bun.serve, on a Unix socket in a private directory) parses them; each whole request is handed to the
 * main thread, which runs the app and answers. Past `maxInFlight` requests waiting on the main thread, a
 * request is answered 503 with Retry-After here, before its body is read.
 *
 * @module
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AdminFront } from "./admin_front.ts";
import type {
  AdminThreadCounts,
  AdminThreadLimits,
  FromAdminThread,
  ToAdminThread,
} from "./admin_thread_protocol.ts";

/** The parts of a worker's global scope used here (typed locally: the project compiles as a window). */
interface WorkerScope {
  postMessage(message: FromAdminThread, transfer?: Transferable[]): void;
  addEventListener(type: "message", listener: (event: MessageEvent) => void): void;
  close(): void;
}

interface InnerServer {
  stop(): Promise<void>;
}

const scope = globalThis as unknown as WorkerScope;
const post = (m: FromAdminThread, transfer: Transferable[] = []) => scope.postMessage(m, transfer);

/** Longest a request waits for the main thread's answer before it is answered 504. */
const ANSWER_TIMEOUT_MS = 30_000;

/** Requests handed to the main thread, by id. */
const waiting = new Map<number, (r: Response) => void>();
let nextId = 1;
let busy = 0;
/** Requests being read or answered (a graceful close waits for them). */
let inFlight = 0;

function busyResponse(max: number): Response {
  return new Response(
    JSON.stringify({ error: `busy: ${max} admin requests are being handled; retry`, errors: [] }),
    { status: 503, headers: { "content-type": "application/json", "retry-after": "1", connection: "close" } },
  );
}

/**
 * The body, at most `limit + 1` bytes of it (enough for the app's body limit to see it is too big); none
 * when the declared length is already over (the app answers 413 from the header, after auth).
 */
async function boundedBody(request: Request, limit: number): Promise<ArrayBuffer | null> {
  if (request.body === null) return null;
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > limit) {
    // An empty body, so the app's limit looks at the declared length (after auth).
    await request.body.cancel().catch(() => {});
    return new ArrayBuffer(0);
  }
  const parts: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  while (size <= limit) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    size += value.byteLength;
  }
  if (size > limit) await reader.cancel().catch(() => {});
  const out = new Uint8Array(Math.min(size, limit + 1));
  let at = 0;
  for (const p of parts) {
    const n = Math.min(p.byteLength, out.byteLength - at);
    out.set(p.subarray(0, n), at);
    at += n;
  }
  return out.buffer;
}

function handler(limits: AdminThreadLimits): (request: Request) => Promise<Response> {
  return async (request) => {
    if (inFlight >= limits.maxInFlight) {
      busy++;
      await request.body?.cancel().catch(() => {});
      return busyResponse(limits.maxInFlight);
    }
    inFlight++;
    try {
      const body = await boundedBody(request, limits.bodyLimit);
      const id = nextId++;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const answered = new Promise<Response>((resolve) => {
        waiting.set(id, resolve);
        // An answer that never comes must not hold a slot for good.
        timer = setTimeout(() => {
          waiting.delete(id);
          resolve(
            new Response(JSON.stringify({ error: "the relay did not answer in time", errors: [] }), {
              status: 504,
              headers: { "content-type": "application/json" },
            }),
          );
        }, ANSWER_TIMEOUT_MS);
      });
      post({
        type: "request",
        id,
        method: request.method,
        url: request.url,
        headers: [...request.headers],
        body,
      }, body === null ? [] : [body]);
      const response = await answered;
      clearTimeout(timer);
      return response;
    } finally {
      inFlight--;
    }
  };
}

function innerServer(path: string, fetch: (request: Request) => Promise<Response>): Promise<InnerServer> {
  const bun = (globalThis as { Bun?: { serve(o: unknown): { stop(force?: boolean): unknown } } }).Bun;
  if (bun !== undefined) {
    // No idle timeout here: the front owns every deadline.
    const server = bun.serve({ unix: path, fetch, idleTimeout: 0 });
    return Promise.resolve({ stop: async () => void (await server.stop(true)) });
  }
  return new Promise((resolve) => {
    const server = Deno.serve({ path, onListen: () => resolve({ stop: () => server.shutdown() }) }, fetch);
  });
}

async function start(hostname: string, port: number, limits: AdminThreadLimits): Promise<void> {
  // A private directory (mode 0700): only this user can reach the HTTP server behind the front.
  const dir = mkdtempSync(join(tmpdir(), "ferry-admin-"));
  const path = join(dir, "http.sock");
  let inner: InnerServer | null = null;
  let front: AdminFront | null = null;
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    inner = await innerServer(path, handler(limits));
    front = new AdminFront(limits, path);
    post({ type: "listening", port: await front.listen(hostname, port) });
  } catch (e) {
    await front?.close(false).catch(() => {});
    await inner?.stop().catch(() => {});
    cleanup();
    post({ type: "failed", error: e instanceof Error ? e.message : String(e) });
    return;
  }
  let last = "";
  const report = () => {
    const counts: AdminThreadCounts = { ...front!.counts(), busy };
    const text = JSON.stringify(counts);
    if (text !== last) post({ type: "stats", ...counts });
    last = text;
  };
  const timer = setInterval(report, 1000);
  scope.addEventListener("message", async (event: MessageEvent) => {
    const m = event.data as ToAdminThread;
    if (m.type !== "close") return;
    clearInterval(timer);
    if (m.graceful) {
      // Every request in hand gets its answer first (the one that asked for the move, say).
      const until = Date.now() + limits.idleTimeoutMs;
      while (inFlight > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    }
    await front!.close(m.graceful);
    await inner!.stop().catch(() => {});
    cleanup();
    report();
    post({ type: "closed" });
  });
}

scope.addEventListener("message", (event: MessageEvent) => {
  const m = event.data as ToAdminThread;
  if (m.type === "init") void start(m.hostname, m.port, m.limits);
  else if (m.type === "response") {
    const resolve = waiting.get(m.id);
    if (resolve === undefined) return;
    waiting.delete(m.id);
    const empty = m.body === null || m.body.byteLength === 0;
    // 204 and 304 may carry no body at all (the constructor throws on even an empty one).
    const noBody = m.status === 204 || m.status === 304 || m.status === 205;
    resolve(new Response(noBody || empty ? null : m.body, { status: m.status, headers: m.headers }));
  }
});
