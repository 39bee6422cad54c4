/**
 * TCP connections in the admin API, end to end against real Ferry processes on 127.0.0.1: listed under
 * /flows and /clients next to UDP flows, closed by client and by backend, and a listener drain undone by
 * PATCH and by a reload; once with one relay and once with relay.workers = 2 (TCP only: Deno's UDP
 * sockets cannot share a port). Every socket and process is closed by the test, each step bounded in time.
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import net from "node:net";
import { FerryProcess, ferryTargets, freePorts, killAll } from "./support/ferry_process.ts";

const TOKEN = "tcp-api-token";
// deno-lint-ignore no-explicit-any
type Json = any;

const cleanups: (() => void)[] = [];
after(() => {
  for (const c of cleanups.reverse()) {
    try {
      c();
    } catch { /* best effort */ }
  }
  killAll();
});

/** A TCP echo server on 127.0.0.1; returns its port. */
async function tcpEcho(): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

/** A UDP echo server on 127.0.0.1; returns its port. */
async function udpEcho(): Promise<number> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  s.on("message", (m, r) => s.send(m, r.port, r.address));
  cleanups.push(() => s.close());
  return s.address().port;
}

/** A TCP client of the relay: what it got back, and a promise that settles when the relay closed it. */
interface TcpClient {
  readonly socket: net.Socket;
  readonly port: number;
  readonly closed: Promise<void>;
  received(): string;
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Connects to `port`, sends `hello` and waits for the echo (unless `expectEcho` is false). */
async function connect(port: number, expectEcho = true): Promise<TcpClient> {
  const socket = net.connect({ port, host: "127.0.0.1" });
  cleanups.push(() => socket.destroy());
  socket.on("error", () => {});
  let got = "";
  socket.on("data", (d) => (got += d.toString()));
  const closed = new Promise<void>((r) => socket.once("close", () => r()));
  await within(new Promise<void>((r) => socket.once("connect", () => r())), 3000, "connect");
  socket.write("hello");
  if (expectEcho) {
    await within(
      (async () => {
        while (got !== "hello") await new Promise((r) => setTimeout(r, 10));
      })(),
      3000,
      "echo",
    );
  }
  return { socket, port: socket.localPort!, closed, received: () => got };
}

/** Connects and expects the relay to refuse: closed at once, nothing echoed. */
async function refused(port: number): Promise<void> {
  const c = await connect(port, false);
  await within(c.closed, 3000, "refused connection closed");
  assert.equal(c.received(), "", "a refused connection gets nothing back");
}

async function send(ferry: FerryProcess, method: string, path: string, body?: unknown): Promise<Json> {
  const res = await ferry.api(path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

for (const target of ferryTargets()) {
  for (const workers of [1, 2]) {
    describe(`TCP connections in the API [${target.name}, workers = ${workers}]`, () => {
      let ferry: FerryProcess;
      let backendPort = 0;
      const udp = workers === 1; // see the module doc

      test("starts", { timeout: 30_000 }, async () => {
        backendPort = await tcpEcho();
        const [tcpPort] = await freePorts("tcp", 1);
        const [udpPort] = await freePorts("udp", 1);
        const udpBackend = udp ? await udpEcho() : 0;
        ferry = await FerryProcess.start(
          target,
          `[relay]\nworkers = ${workers}\ngrace_period = "200ms"\n\n` +
            `[admin]\nlisten = "127.0.0.1:0"\ntoken = "${TOKEN}"\n\n` +
            `[[listeners]]\nname = "web"\nprotocol = "tcp"\naddress = "127.0.0.1:${tcpPort}"\ncluster = "echo"\n\n` +
            (udp
              ? `[[listeners]]\nname = "dns"\naddress = "127.0.0.1:${udpPort}"\ncluster = "uecho"\n\n` +
                `[clusters.uecho]\nbackends = [{ address = "127.0.0.1:${udpBackend}" }]\n\n`
              : "") +
            `[clusters.echo]\nbackends = [{ address = "127.0.0.1:${backendPort}" }]\n`,
          { token: TOKEN, timeoutMs: 20_000 },
        );
        cleanups.push(() => ferry.kill());
      });

      test(
        "lists TCP connections under /flows and /clients, UDP flows unchanged",
        { timeout: 20_000 },
        async () => {
          const a = await connect(ferry.port("web"));
          const b = await connect(ferry.port("web"));
          if (udp) {
            const s = dgram.createSocket("udp4");
            cleanups.push(() => s.close());
            const echoed = new Promise<void>((r) => s.once("message", () => r()));
            s.send("ping", ferry.port("dns"), "127.0.0.1");
            await within(echoed, 3000, "udp echo");
          }
          const page = await send(ferry, "GET", "/api/v1/flows");
          const tcp = page.flows.filter((f: Json) => f.protocol === "tcp");
          assert.equal(tcp.length, 2, JSON.stringify(page));
          const row = tcp.find((f: Json) => f.client === `127.0.0.1:${a.port}`);
          assert.ok(row, JSON.stringify(tcp));
          assert.equal(row.listener, "web");
          assert.equal(row.cluster, "echo");
          assert.equal(row.backend, `127.0.0.1:${backendPort}`);
          assert.equal(row.state, "established");
          assert.deepEqual([row.bytesUp, row.bytesDown], [5, 5]);
          assert.ok(row.ageSeconds >= 0 && row.ageSeconds < 30);
          if (workers > 1) assert.match(row.id, /^\d+:\d+$/, "a worker's id");
          if (udp) {
            const flow = page.flows.find((f: Json) => f.protocol === "udp");
            assert.equal(flow.bytesIn, 4);
            assert.equal(flow.datagramsOut, 1);
            assert.equal(typeof flow.priority, "number");
          }
          const onlyTcp = await send(ferry, "GET", "/api/v1/flows?protocol=tcp");
          assert.equal(onlyTcp.total, 2);
          const clients = await send(ferry, "GET", "/api/v1/clients?top=100");
          const ca = clients.clients.find((c: Json) => c.client === `127.0.0.1:${a.port}`);
          assert.deepEqual([ca.connections, ca.flows, ca.bytesUp, ca.bytesDown], [1, 0, 5, 5]);
          // Closed by client (ip:port): only that one.
          const closed = await send(ferry, "DELETE", `/api/v1/flows?client=127.0.0.1:${a.port}`);
          assert.equal(closed.closed, 1);
          await within(a.closed, 3000, "disconnected client closed");
          assert.equal(b.socket.destroyed, false);
          // Closed by backend: the other one.
          const byBackend = await send(
            ferry,
            "DELETE",
            `/api/v1/clusters/echo/backends/127.0.0.1:${backendPort}/flows`,
          );
          assert.equal(byBackend.closed, 1);
          await within(b.closed, 3000, "backend's connection closed");
          assert.equal((await send(ferry, "GET", "/api/v1/flows?protocol=tcp")).total, 0);
          assert.equal(
            await ferry.metric("ferry_listener_tcp_connections_closed_total", {
              listener: "web",
              reason: "disconnected",
            }),
            2,
          );
        },
      );

      test("closes every connection of a client ip, on every worker", { timeout: 20_000 }, async () => {
        const cs = await Promise.all(Array.from({ length: 6 }, () => connect(ferry.port("web"))));
        const closed = await send(ferry, "DELETE", "/api/v1/flows?client=127.0.0.1&listener=web");
        assert.equal(closed.closed, 6);
        await within(Promise.all(cs.map((c) => c.closed)), 3000, "all closed");
      });

      test("a listener drain is undone by PATCH and by a reload", { timeout: 20_000 }, async () => {
        const drained = await send(ferry, "PATCH", "/api/v1/listeners/web", { draining: true });
        assert.equal(drained.listener.draining, true);
        for (let i = 0; i < 4; i++) await refused(ferry.port("web"));
        const undone = await send(ferry, "PATCH", "/api/v1/listeners/web", { draining: false });
        assert.equal(undone.listener.draining, false);
        assert.equal(undone.persisted, false);
        for (let i = 0; i < 4; i++) (await connect(ferry.port("web"))).socket.destroy();
        await send(ferry, "POST", "/api/v1/drain", { listener: "web" });
        await refused(ferry.port("web"));
        await send(ferry, "POST", "/api/v1/reload");
        const status = await send(ferry, "GET", "/api/v1/listeners/web");
        assert.equal(status.listener.draining, false);
        for (let i = 0; i < 4; i++) (await connect(ferry.port("web"))).socket.destroy();
        const bad = await ferry.api("/api/v1/listeners/web", {
          method: "PATCH",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ draining: "no" }),
        });
        assert.equal(bad.status, 400);
        await bad.body?.cancel();
      });

      test("stops", { timeout: 15_000 }, async () => {
        assert.equal(await ferry.stop(), 0, ferry.stderr);
      });
    });
  }
}

for (const target of ferryTargets()) {
  test(
    `[${target.name}] close_flows_on_down closes a downed backend's TCP connections`,
    { timeout: 30_000 },
    async () => {
      // A backend whose listening socket closes while its accepted connections stay up: probes then fail
      // (refused) and only health can end the relayed connection.
      const sockets = new Set<net.Socket>();
      const server = net.createServer((s) => {
        sockets.add(s);
        s.on("error", () => {});
        s.pipe(s);
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
      cleanups.push(() => {
        for (const s of sockets) s.destroy();
        server.close();
      });
      const port = (server.address() as net.AddressInfo).port;
      const [tcpPort] = await freePorts("tcp", 1);
      const ferry = await FerryProcess.start(
        target,
        `[admin]\nlisten = "127.0.0.1:0"\ntoken = "${TOKEN}"\n\n` +
          `[[listeners]]\nname = "web"\nprotocol = "tcp"\naddress = "127.0.0.1:${tcpPort}"\ncluster = "echo"\n\n` +
          `[clusters.echo]\nbackends = [{ address = "127.0.0.1:${port}" }]\n\n` +
          `[clusters.echo.health]\nmode = "tcp"\ninterval = "100ms"\ntimeout = "200ms"\nrise = 1\nfall = 1\n` +
          `close_flows_on_down = true\n`,
        { token: TOKEN, timeoutMs: 20_000 },
      );
      cleanups.push(() => ferry.kill());
      const c = await connect(ferry.port("web"));
      server.close(); // stops accepting; `c`'s backend connection stays open
      await within(c.closed, 5000, "the downed backend's connection closed");
      assert.equal(
        await ferry.metric("ferry_listener_tcp_connections_closed_total", {
          listener: "web",
          reason: "aborted",
        }),
        1,
      );
      assert.equal(await ferry.stop(), 0, ferry.stderr);
    },
  );
}
