/**
 * Regressions (issue 12, findings 3 and 4): the admin API's connections are capped and timed out for real,
 * on both runtimes, in the admin thread (shell/process/admin_thread.ts): half-open connections beyond the
 * cap are answered 503 or pushed out, a request head that never finishes is closed at its deadline, an
 * idle keep-alive connection at the idle timeout; requests past the in-flight bound get a fast 503 with
 * Retry-After; and the main thread runs the app on one request at a time, the event loop getting a turn
 * between any two. 127.0.0.1 only.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { setImmediate } from "node:timers";
import { adminCounts, adminLimits, type HttpServer, serve } from "../shell/process/serve.ts";
import type { AdminThreadLimits } from "../shell/process/admin_thread_protocol.ts";

const LOCAL = { family: 4, ip: "127.0.0.1", port: 0 } as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const ok = { fetch: () => new Response("ok") };

async function withServer(
  app: { fetch(r: Request): Response | Promise<Response> },
  limits: Partial<AdminThreadLimits>,
  body: (server: HttpServer) => Promise<void>,
): Promise<void> {
  const server = await serve(app, LOCAL, { ...adminLimits(), ...limits });
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

/** A raw connection that sends `head` (unfinished unless it ends in a blank line) and records what it hears. */
function raw(port: number, head: string) {
  const s = net.connect(port, "127.0.0.1");
  let heard = "";
  s.on("data", (d) => (heard += d));
  s.on("error", () => {});
  const closed = new Promise<void>((r) => s.once("close", () => r()));
  s.once("connect", () => s.write(head));
  return { socket: s, heard: () => heard, closed };
}

const within = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([p, sleep(ms).then(() => assert.fail(`${what}: not within ${ms} ms`))]);

describe("admin thread", () => {
  test("past the connection cap, a new connection is answered 503 at once, or pushes out a stale one", async () => {
    await withServer(
      ok,
      { maxConnections: 4, evictAfterMs: 300, evictHeadlessAfterMs: 300, headerTimeoutMs: 10_000 },
      async (server) => {
        const held = Array.from({ length: 4 }, () => raw(server.port, "GET / HTTP/1.1\r\nHost: x\r\n"));
        await sleep(100);
        const extra = raw(server.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        await within(extra.closed, 2000, "the refused connection closes");
        assert.match(extra.heard(), /^HTTP\/1\.1 503 /);
        assert.match(extra.heard(), /retry-after: 1/i);
        await sleep(300);
        // Now the half-open ones are stale: an operator's request pushes one out and is answered.
        const res = await fetch(`http://127.0.0.1:${server.port}/healthz`);
        assert.equal(res.status, 200);
        assert.equal(await res.text(), "ok");
        const closedOnes = await Promise.all(
          held.map((h) => Promise.race([h.closed.then(() => 1), sleep(200).then(() => 0)])),
        );
        assert.equal(closedOnes.reduce((a: number, b) => a + b, 0), 1, "exactly one was pushed out");
        for (const h of held) h.socket.destroy();
      },
    );
  });

  test("a request head that never finishes is closed at its deadline; an idle connection at the idle timeout", async () => {
    await withServer(ok, { headerTimeoutMs: 300, idleTimeoutMs: 600 }, async (server) => {
      const t = performance.now();
      const half = raw(server.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
      // Trickling bytes does not keep a headless connection open past its deadline.
      const trickle = setInterval(() => half.socket.write("X-A: b\r\n"), 50);
      await within(half.closed, 2000, "the headless connection closes");
      clearInterval(trickle);
      assert.ok(performance.now() - t >= 250, "not before its deadline");
      const idle = raw(server.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
      await sleep(200);
      assert.match(idle.heard(), /^HTTP\/1\.1 200 /);
      const answered = performance.now();
      await within(idle.closed, 2500, "the idle keep-alive connection closes");
      assert.ok(performance.now() - answered >= 300, "not long before the idle timeout");
    });
    assert.ok(adminCounts().headerTimeouts >= 1);
  });

  test("past the in-flight bound, requests get 503 with Retry-After before their body is read", async () => {
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const app = { fetch: async () => (await gate, new Response("done")) };
    await withServer(app, { maxInFlight: 2 }, async (server) => {
      const url = `http://127.0.0.1:${server.port}/`;
      const first = [fetch(url), fetch(url)];
      await sleep(200);
      const refused = await within(fetch(url, { method: "POST", body: "x".repeat(4096) }), 2000, "503");
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get("retry-after"), "1");
      await refused.body?.cancel();
      release();
      for (const r of await Promise.all(first)) assert.equal(await r.text(), "done");
    });
  });

  test("the app runs on one request at a time, with an event-loop turn between any two", async () => {
    let turns = 0, running = 0, most = 0;
    let ticking = true;
    const tick = () => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    tick();
    const seen: number[] = [];
    const app = {
      fetch: async (request: Request) => {
        running++;
        most = Math.max(most, running);
        seen.push(turns);
        const t = performance.now();
        while (performance.now() - t < 3) { /* work on the main thread */ }
        await Promise.resolve();
        running--;
        return new Response(await request.text());
      },
    };
    try {
      await withServer(app, {}, async (server) => {
        const url = `http://127.0.0.1:${server.port}/`;
        const all = await Promise.all(
          Array.from({ length: 20 }, (_, i) => fetch(url, { method: "POST", body: `${i}` })),
        );
        assert.deepEqual(
          (await Promise.all(all.map((r) => r.text()))).sort(),
          [...Array(20).keys()].map(String).sort(),
        );
      });
    } finally {
      ticking = false;
    }
    assert.equal(most, 1);
    for (let i = 1; i < seen.length; i++) {
      assert.ok(seen[i] > seen[i - 1], `no turn between requests ${i - 1} and ${i}`);
    }
  });

  test("a port in use is refused with the reason", async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", () => r()));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      await assert.rejects(serve(ok, { ...LOCAL, port }), /EADDRINUSE|in use/i);
    } finally {
      taken.close();
    }
  });
});
