// relay.workers = 2 end to end: the real main.ts under the runtime running the tests, on 127.0.0.1 only.
// Two worker threads share each listening port (SO_REUSEPORT): clients from many source ports are all
// served, the admin API adds the workers' counters up and lists both workers' flows, a backend added over
// the API is used by both workers, and SIGTERM drains both. TCP under both runtimes; UDP under Bun only
// (Deno's UDP sockets cannot share a port, so there Ferry refuses a UDP listener with workers > 1).
//
// GET /flows lists both workers' TCP connections too; that a backend change reached both is shown by the
// numbers: with the old backend draining, all 16 new connections reach the new one. Had one worker missed
// the change, the connections the kernel gave it (about half; all 16 on one worker has odds 2^-15) would
// reach the old one.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { Ferry } from "./support/ferry_child.ts";

const isDeno = "Deno" in globalThis;

const cleanups: (() => void)[] = [];
after(() => {
  for (const c of cleanups.reverse()) c();
});

function start(args: string[]): Ferry {
  const f = new Ferry(args);
  cleanups.push(() => f.kill());
  return f;
}

function configFile(text: string): string {
  const dir = mkdtempSync(`${tmpdir()}/ferry-workers-`);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(`${dir}/ferry.toml`, text);
  return `${dir}/ferry.toml`;
}

/** A TCP echo server on 127.0.0.1: its port, and how many connections it accepted. */
async function tcpEcho(): Promise<{ port: number; accepted: () => number }> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
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
  return { port: (server.address() as net.AddressInfo).port, accepted: () => accepted };
}

async function udpSocket(): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  cleanups.push(() => s.close());
  return s;
}

/** A UDP echo server on 127.0.0.1; returns its port. */
async function udpEcho(): Promise<number> {
  const s = await udpSocket();
  s.on("message", (m, r) => s.send(m, r.port, r.address));
  return s.address().port;
}

/** A port that was free a moment ago. */
async function freeTcpPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Connects to the relay, sends `text` and waits for its echo; the connection stays open. */
function tcpClient(port: number, text: string, ms = 3000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, "127.0.0.1");
    cleanups.push(() => c.destroy());
    let got = "";
    const timer = setTimeout(() => reject(new Error(`no echo of "${text}" (got "${got}")`)), ms);
    c.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    c.on("data", (d) => {
      got += d;
      if (got === text) {
        clearTimeout(timer);
        resolve(c);
      }
    });
    c.write(text);
  });
}

/** Sends `text` from `client` to the relay and waits for the echo. */
function udpRoundTrip(client: dgram.Socket, port: number, text: string, ms = 3000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off("message", onMessage);
      reject(new Error(`no reply for "${text}"`));
    }, ms);
    const onMessage = (m: Uint8Array) => {
      if (new TextDecoder().decode(m) !== text) return;
      clearTimeout(timer);
      client.off("message", onMessage);
      resolve();
    };
    client.on("message", onMessage);
    client.send(text, port, "127.0.0.1");
  });
}

interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** The samples of metric family `name` whose labels include `labels`. */
function samples(metrics: { families: { name: string; samples: Sample[] }[] }, name: string, labels = {}) {
  const family = metrics.families.find((f) => f.name === name);
  assert.ok(family, `no metric ${name}`);
  return family.samples.filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

function value(metrics: Parameters<typeof samples>[0], name: string, labels: Record<string, string>): number {
  const found = samples(metrics, name, labels);
  assert.equal(found.length, 1, `${name} ${JSON.stringify(labels)}: ${JSON.stringify(found)}`);
  return found[0].value;
}

/** The worker indexes in flow ids "worker:id". */
function workersOf(flows: { id: string }[]): string[] {
  return [...new Set(flows.map((f) => f.id.split(":")[0]))].sort();
}

describe("relay.workers = 2", () => {
  test("both workers serve, the admin API adds them up and changes both, SIGTERM drains", async () => {
    const withUdp = !isDeno;
    const [echoA, echoB, tcpPort] = [await tcpEcho(), await tcpEcho(), await freeTcpPort()];
    const [tcpA, tcpB] = [echoA.port, echoB.port];
    const [udpA, udpB, udpPort] = withUdp
      ? [await udpEcho(), await udpEcho(), await freeUdpPort()]
      : [0, 0, 0];
    const file = configFile(`
[relay]
workers = 2
grace_period = "1s"
log_format = "json"

[admin]
listen = "127.0.0.1:0"

[[listeners]]
name = "t"
protocol = "tcp"
address = "127.0.0.1:${tcpPort}"
cluster = "ct"

[clusters.ct]
backends = [{ address = "127.0.0.1:${tcpA}" }]
${
      withUdp
        ? `
[[listeners]]
name = "u"
address = "127.0.0.1:${udpPort}"
cluster = "cu"

[clusters.cu]
backends = [{ address = "127.0.0.1:${udpA}" }]
`
        : ""
    }`);
    const f = start(["--config", file]);
    const admin = `http://${(await f.waitLog((l) => l.event === "admin_listening")).address}`;
    const api = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(`${admin}${path}`, {
        method,
        ...(body === undefined
          ? {}
          : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
      });
      const json = await r.json();
      assert.ok(r.ok, `${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
      return json;
    };

    const status = await api("GET", "/api/v1/status");
    assert.equal(status.workers, 2);
    assert.deepEqual(
      status.listeners.map((l: { name: string; address: string }) => [l.name, l.address]),
      [["t", `127.0.0.1:${tcpPort}`], ...(withUdp ? [["u", `127.0.0.1:${udpPort}`]] : [])],
    );

    // Many clients, each from its own source port: the kernel spreads them over both workers.
    const clients = 24;
    const open: net.Socket[] = await Promise.all(
      Array.from({ length: clients }, (_, i) => tcpClient(tcpPort, `hello ${i}`)),
    );
    const udpClients = withUdp ? await Promise.all(Array.from({ length: clients }, () => udpSocket())) : [];
    for (let round = 0; round < 3; round++) {
      await Promise.all(udpClients.map((c, i) => udpRoundTrip(c, udpPort, `ping ${round} ${i}`)));
    }
    const sentUp = Array.from({ length: clients }, (_, i) => `hello ${i}`.length).reduce((a, b) => a + b);

    assert.equal(echoA.accepted(), clients);
    if (withUdp) {
      const flows = await api("GET", "/api/v1/flows?protocol=udp&limit=1000");
      assert.equal(flows.total, clients);
      assert.deepEqual(workersOf(flows.flows), ["0", "1"]);
    }
    const conns = await api("GET", "/api/v1/flows?protocol=tcp&limit=1000");
    assert.equal(conns.total, clients);
    assert.deepEqual(workersOf(conns.flows), ["0", "1"], "both workers' connections are listed");

    const m = await api("GET", "/metrics?format=json");
    assert.equal(value(m, "ferry_workers", {}), 2);
    assert.equal(value(m, "ferry_listener_tcp_connections_total", { listener: "t" }), clients);
    assert.equal(value(m, "ferry_listener_tcp_connections_active", { listener: "t" }), clients);
    assert.equal(value(m, "ferry_listener_tcp_bytes_up_total", { listener: "t" }), sentUp);
    if (withUdp) {
      assert.equal(value(m, "ferry_listener_datagrams_in_total", { listener: "u" }), 3 * clients);
      assert.equal(value(m, "ferry_listener_datagrams_out_total", { listener: "u" }), 3 * clients);
      assert.equal(value(m, "ferry_listener_flows_created_total", { listener: "u" }), clients);
    }
    for (const c of open) c.destroy();

    // A backend added over the API, with the old one draining: every worker's new flows go to it.
    await api("POST", "/api/v1/clusters/ct/backends", { address: `127.0.0.1:${tcpB}` });
    await api("PATCH", `/api/v1/clusters/ct/backends/127.0.0.1:${tcpA}`, { state: "draining" });
    if (withUdp) {
      await api("POST", "/api/v1/clusters/cu/backends", { address: `127.0.0.1:${udpB}` });
      await api("PATCH", `/api/v1/clusters/cu/backends/127.0.0.1:${udpA}`, { state: "draining" });
    }
    const later = await Promise.all(Array.from({ length: 16 }, (_, i) => tcpClient(tcpPort, `again ${i}`)));
    assert.equal(echoB.accepted(), 16);
    assert.equal(echoA.accepted(), clients);
    const counts = await api("GET", "/metrics?format=json");
    const onB = { cluster: "ct", backend: `127.0.0.1:${tcpB}` };
    assert.equal(value(counts, "ferry_backend_flows_total", onB), 16);
    assert.equal(value(counts, "ferry_listener_tcp_connections_total", { listener: "t" }), clients + 16);
    if (withUdp) {
      const more = await Promise.all(Array.from({ length: 16 }, () => udpSocket()));
      await Promise.all(more.map((c, i) => udpRoundTrip(c, udpPort, `again ${i}`)));
      const udpOnB = await api("GET", `/api/v1/flows?limit=1000&backend=127.0.0.1:${udpB}`);
      assert.equal(udpOnB.total, 16);
      assert.deepEqual(workersOf(udpOnB.flows), ["0", "1"]);
    }
    for (const c of later) c.destroy();

    f.signal("SIGTERM");
    assert.equal(await f.exit(8000), 0);
    assert.ok(f.logs().some((l) => l.event === "stopped"), f.stderr);
  });

  test("a change no worker can apply is refused whole; SIGHUP reloads every worker", async () => {
    const [echo, echo2] = [await tcpEcho(), await tcpEcho()];
    const [port, added] = [await freeTcpPort(), await freeTcpPort()];
    const text = (extra: string, backend = echo.port) => `
[relay]
workers = 2
grace_period = "1s"
log_format = "json"

[admin]
listen = "127.0.0.1:0"

[[listeners]]
name = "t"
protocol = "tcp"
address = "127.0.0.1:${port}"
cluster = "c"
${extra}
[clusters.c]
backends = [{ address = "127.0.0.1:${backend}" }]
`;
    const file = configFile(text(""));
    const f = start(["--config", file]);
    const admin = `http://${(await f.waitLog((l) => l.event === "admin_listening")).address}`;
    const hash = async () => (await (await fetch(`${admin}/api/v1/status`)).json()).configHash;
    const before = await hash();

    // A port held by a socket without SO_REUSEPORT: no worker can bind it.
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, "127.0.0.1", () => r()));
    cleanups.push(() => holder.close());
    const busy = (holder.address() as net.AddressInfo).port;
    const post = async (listener: Record<string, unknown>) => {
      const r = await fetch(`${admin}/api/v1/listeners`, {
        method: "POST",
        body: JSON.stringify({ cluster: "c", ...listener }),
        headers: { "content-type": "application/json" },
      });
      return { status: r.status, body: await r.json() };
    };
    const refused = await post({ name: "busy", protocol: "tcp", address: `127.0.0.1:${busy}` });
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    if (isDeno) {
      // On the runtime path Deno cannot share UDP (the native path could: it sets SO_REUSEPORT itself).
      const udp = await post({
        name: "game",
        protocol: "udp",
        address: `127.0.0.1:${await freeUdpPort()}`,
        datapath: "runtime",
      });
      assert.equal(udp.status, 409);
      assert.match(JSON.stringify(udp.body.errors), /cannot be shared by 2 workers.*SO_REUSEPORT/);
    }
    assert.equal(await hash(), before);
    (await tcpClient(port, "still here")).destroy();

    // The reloaded file adds a listener and moves the cluster to another backend: connections on the old
    // listener, which the kernel spreads over both workers, must all reach the new backend.
    writeFileSync(
      file,
      text(
        `
[[listeners]]
name = "t2"
protocol = "tcp"
address = "127.0.0.1:${added}"
cluster = "c"
`,
        echo2.port,
      ),
    );
    f.signal("SIGHUP");
    await f.waitLog((l) => l.event === "listening" && l.listener === "t2");
    const clients = await Promise.all([
      ...Array.from({ length: 16 }, (_, i) => tcpClient(port, `moved ${i}`)),
      ...Array.from({ length: 4 }, (_, i) => tcpClient(added, `new ${i}`)),
    ]);
    assert.equal(echo.accepted(), 1);
    assert.equal(echo2.accepted(), 20);
    assert.notEqual(await hash(), before);
    for (const c of clients) c.destroy();

    f.signal("SIGTERM");
    assert.equal(await f.exit(8000), 0);
  });

  test(
    "a listener the runtime cannot share is refused at startup, in one line",
    { skip: !isDeno },
    async () => {
      const port = await freeUdpPort();
      const f = start([
        "--config",
        configFile(`
[relay]
workers = 2
log_format = "json"
datapath = "runtime"

[[listeners]]
name = "game"
address = "127.0.0.1:${port}"
cluster = "c"

[clusters.c]
backends = [{ address = "127.0.0.1:9" }]

[admin]
listen = "127.0.0.1:0"
`),
      ]);
      assert.equal(await f.exit(8000), 1);
      const errors = f.logs().filter((l) => l.level === "error");
      assert.equal(errors.length, 1, f.stderr);
      assert.match(
        String(errors[0].message),
        /listener "game" \(udp 127\.0\.0\.1:\d+\) cannot be shared .*SO_REUSEPORT/,
      );
    },
  );
});
