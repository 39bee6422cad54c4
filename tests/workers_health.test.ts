// relay.workers = 2 end to end, on what the workers share: one health prober on the main thread (its
// probes counted at a test backend), each transition logged once, passive failures seen by either worker
// judged together, a backend change delivered to the workers as its edits and a reload still whole. The
// real main.ts under the runtime running the tests, on 127.0.0.1 only. TCP under both runtimes; UDP under
// Bun on its runtime sockets and under Deno on the native path (Deno's own UDP sockets cannot share a port).
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { Ferry } from "./support/ferry_child.ts";
import { nativeSupport } from "../shell/datapath/native/select.ts";

const isDeno = "Deno" in globalThis;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const support = isDeno ? await nativeSupport() : { libc: true };
const udpSkip = "reason" in support
  ? `UDP workers on Deno need the native data path: ${support.reason}`
  : false;
if (udpSkip) console.log(udpSkip);

const cleanups: (() => void)[] = [];
after(() => {
  for (const c of cleanups.reverse()) c();
});

function start(file: string): Ferry {
  const f = new Ferry(["--config", file]);
  cleanups.push(() => f.kill());
  return f;
}

function configFile(text: string): string {
  const dir = mkdtempSync(`${tmpdir()}/ferry-workers-health-`);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(`${dir}/ferry.toml`, text);
  return `${dir}/ferry.toml`;
}

/** A TCP server on 127.0.0.1 that echoes and counts connections; it can stop and listen again on its port. */
class TcpBackend {
  accepted = 0;
  port = 0;
  #server: net.Server | null = null;
  readonly #sockets = new Set<net.Socket>();

  async listen(port = 0): Promise<this> {
    const server = net.createServer((s) => {
      this.accepted++;
      this.#sockets.add(s);
      s.on("close", () => this.#sockets.delete(s));
      s.on("error", () => {});
      s.pipe(s);
    });
    await new Promise<void>((r) => server.listen(port, "127.0.0.1", () => r()));
    this.port = (server.address() as net.AddressInfo).port;
    this.#server = server;
    cleanups.push(() => this.close());
    return this;
  }

  close(): void {
    for (const s of this.#sockets) s.destroy();
    this.#server?.close();
    this.#server = null;
  }
}

async function freeTcpPort(): Promise<number> {
  const b = await new TcpBackend().listen();
  b.close();
  return b.port;
}

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** The admin API of a started ferry. */
async function adminOf(f: Ferry) {
  const base = `http://${(await f.waitLog((l) => l.event === "admin_listening")).address}`;
  return async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${base}${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
    });
    const json = await r.json();
    assert.ok(r.ok, `${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
    return json;
  };
}

/** The health transitions logged for `backend`, going `to`. */
function transitions(f: Ferry, backend: string, to?: "up" | "down") {
  return f.logs().filter((l) =>
    l.event === "backend_health" && l.backend === backend && (to === undefined || l.to === to)
  );
}

/** Connects through the relay and waits for the relay to close the connection (its backend refused). */
function refusedThrough(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, "127.0.0.1");
    const timer = setTimeout(() => reject(new Error("the relay kept the connection open")), 5000);
    c.on("error", () => {});
    c.on("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The samples of metric `name` whose labels include `labels`. */
async function metric(
  api: Awaited<ReturnType<typeof adminOf>>,
  name: string,
  labels: Record<string, string>,
) {
  const m = await api("GET", "/metrics?format=json");
  const family = m.families.find((x: { name: string }) => x.name === name);
  assert.ok(family, `no metric ${name}`);
  const found = family.samples.filter((s: { labels: Record<string, string> }) =>
    Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
  assert.equal(found.length, 1, `${name} ${JSON.stringify(labels)}`);
  return found[0].value as number;
}

const INTERVAL = 250;
/** Each test runs for several seconds (Bun's default limit is 5 s). */
const T = { timeout: 30_000 };

describe("relay.workers = 2 share one view of health", () => {
  test(
    "one probe stream, one log line per transition, backend edits as a small message, reload whole",
    T,
    async () => {
      const probed = await new TcpBackend().listen();
      const other = await new TcpBackend().listen();
      const [port, port2] = [await freeTcpPort(), await freeTcpPort()];
      const text = (extra: string) => `
[relay]
workers = 2
grace_period = "1s"
log_format = "json"
log_level = "debug"

[admin]
listen = "127.0.0.1:0"

[[listeners]]
name = "t"
protocol = "tcp"
address = "127.0.0.1:${port}"
cluster = "c"
${extra}
[clusters.c]
backends = [{ address = "127.0.0.1:${probed.port}" }]

[clusters.c.health]
mode = "tcp"
interval = "${INTERVAL}ms"
jitter = "0s"
timeout = "200ms"
rise = 1
fall = 2
`;
      const file = configFile(text(""));
      const f = start(file);
      const api = await adminOf(f);
      const key = `127.0.0.1:${probed.port}`;

      // Probes over 2 s: one prober makes about 2000 / 250 = 8 connections; one per worker would make 16.
      await sleep(300);
      const before = probed.accepted;
      await sleep(2000);
      const probes = probed.accepted - before;
      assert.ok(
        probes >= 3 && probes <= 11,
        `${probes} probe connections in 2 s at a ${INTERVAL} ms interval`,
      );

      // Down: logged once (by the main thread, not per worker), and every view says down.
      probed.close();
      await f.waitLog((l) => l.event === "backend_health" && l.backend === key && l.to === "down");
      await sleep(4 * INTERVAL);
      const down = transitions(f, key, "down");
      assert.equal(down.length, 1, JSON.stringify(down));
      assert.equal(down[0].worker, undefined);
      const view = await api("GET", "/api/v1/clusters/c/backends");
      assert.equal(view.backends[0].health.status, "down", JSON.stringify(view.backends[0]));
      assert.equal(view.backends[0].effectiveState, "down");
      assert.equal(await metric(api, "ferry_backend_health_up", { cluster: "c", backend: key }), 0);
      assert.equal(
        await metric(api, "ferry_backend_health_transitions_total", { cluster: "c", backend: key }),
        1,
      );

      // Back on the same port: up, once.
      await probed.listen(probed.port);
      await f.waitLog((l) => l.event === "backend_health" && l.backend === key && l.to === "up");
      await sleep(4 * INTERVAL);
      assert.equal(transitions(f, key).length, 2, JSON.stringify(transitions(f, key)));
      assert.equal(await metric(api, "ferry_backend_health_up", { cluster: "c", backend: key }), 1);

      // A backend added over the API reaches each worker as its edits, not as a whole config.
      await api("POST", "/api/v1/clusters/c/backends", { address: `127.0.0.1:${other.port}` });
      const applied = () => f.logs().filter((l) => l.event === "worker_applied");
      await f.waitLog(() => applied().length >= 2);
      assert.deepEqual(
        applied().map((l) => [l.worker, l.delivery, l.clusters, l.edits]).sort(),
        [[0, "backends", "c", 1], [1, "backends", "c", 1]],
      );

      // A reload still goes whole, to both workers, and the new listener serves.
      writeFileSync(
        file,
        text(
          `\n[[listeners]]\nname = "t2"\nprotocol = "tcp"\naddress = "127.0.0.1:${port2}"\ncluster = "c"\n`,
        ),
      );
      f.signal("SIGHUP");
      await f.waitLog((l) => l.event === "listening" && l.listener === "t2");
      await f.waitLog(() => applied().filter((l) => l.delivery === "config").length >= 2);
      const whole = applied().filter((l) => l.delivery === "config").map((l) => l.worker).sort();
      assert.deepEqual(whole, [0, 1]);
      const echoed = await new Promise<string>((resolve, reject) => {
        const c = net.connect(port2, "127.0.0.1", () => c.write("hi"));
        cleanups.push(() => c.destroy());
        c.on("data", (d) => {
          resolve(String(d));
          c.destroy();
        });
        c.on("error", reject);
      });
      assert.equal(echoed, "hi");

      f.signal("SIGTERM");
      assert.equal(await f.exit(8000), 0);
    },
  );

  test("passive failures seen by either worker add up to one verdict", T, async () => {
    const [port, dead] = [await freeTcpPort(), await freeTcpPort()];
    const key = `127.0.0.1:${dead}`;
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
address = "127.0.0.1:${port}"
cluster = "c"

[clusters.c]
backends = [{ address = "${key}" }]

[clusters.c.health]
max_fails = 8
fail_timeout = "30s"
`);
    const f = start(file);
    const api = await adminOf(f);
    // The kernel spreads the connections over both workers: each worker alone would see about 4 of the 8
    // refused connects, short of max_fails; only their sum takes the backend down.
    for (let i = 0; i < 7; i++) await refusedThrough(port);
    await sleep(300);
    assert.equal(transitions(f, key).length, 0, f.stderr);
    await refusedThrough(port);
    const line = await f.waitLog((l) => l.event === "backend_health" && l.backend === key);
    assert.equal(line.to, "down");
    assert.match(String(line.reason), /^8 passive failures within 30000 ms/);
    await sleep(300);
    assert.equal(transitions(f, key).length, 1);
    const view = await api("GET", "/api/v1/clusters/c/backends");
    assert.equal(view.backends[0].health.status, "down");
    assert.equal(await metric(api, "ferry_backend_refusals_total", { cluster: "c", backend: key }), 8);

    f.signal("SIGTERM");
    assert.equal(await f.exit(8000), 0);
  });

  test("UDP listeners: one UDP probe stream for both workers", { ...T, skip: udpSkip }, async () => {
    const backend = dgram.createSocket("udp4");
    await new Promise<void>((r) => backend.bind(0, "127.0.0.1", () => r()));
    cleanups.push(() => backend.close());
    let probes = 0;
    backend.on("message", (m, r) => {
      probes++;
      backend.send(m, r.port, r.address);
    });
    const key = `127.0.0.1:${backend.address().port}`;
    const f = start(configFile(`
[relay]
workers = 2
grace_period = "1s"
log_format = "json"
${isDeno ? 'datapath = "native"' : ""}

[admin]
listen = "127.0.0.1:0"

[[listeners]]
name = "u"
address = "127.0.0.1:${await freeUdpPort()}"
cluster = "c"

[clusters.c]
backends = [{ address = "${key}" }]

[clusters.c.health]
mode = "udp"
send = "ping"
interval = "${INTERVAL}ms"
jitter = "0s"
timeout = "200ms"
`));
    const api = await adminOf(f);
    await sleep(300);
    const before = probes;
    await sleep(2000);
    const n = probes - before;
    assert.ok(n >= 3 && n <= 11, `${n} UDP probes in 2 s at a ${INTERVAL} ms interval`);
    const view = await api("GET", "/api/v1/clusters/c/backends");
    assert.equal(view.backends[0].health.status, "up");
    assert.ok(view.backends[0].health.okStreak >= 3, JSON.stringify(view.backends[0].health));

    f.signal("SIGTERM");
    assert.equal(await f.exit(8000), 0);
  });
});
