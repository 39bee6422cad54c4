// End-to-end tests of the `ferry` command: the real main.ts under the runtime running the tests, on
// 127.0.0.1 only, with a UDP echo server as the backend. Signals go through process.kill(pid): Deno's
// node:child_process `child.kill` delivers only the first signal and then misreports the exit.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { Ferry } from "./support/ferry_child.ts";

const isDeno = "Deno" in globalThis;

/** Runs a command to completion. */
async function runToEnd(args: string[], env: Record<string, string> = {}) {
  const f = start(args, env);
  const code = await f.exit(15_000);
  return { code, stdout: f.stdout, stderr: f.stderr };
}

function udpSocket(): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  return new Promise((resolve) => s.bind(0, "127.0.0.1", () => resolve(s)));
}

/** A port that was free a moment ago (the relay's listener address must name a port). */
async function freePort(): Promise<number> {
  const s = await udpSocket();
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Sends `text` to 127.0.0.1:`port` from `client` and waits for the reply. */
function roundTrip(client: dgram.Socket, port: number, text: string, ms = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off("message", onMessage);
      reject(new Error(`no reply from 127.0.0.1:${port} for "${text}"`));
    }, ms);
    const onMessage = (m: Uint8Array) => {
      clearTimeout(timer);
      client.off("message", onMessage);
      resolve(new TextDecoder().decode(m));
    };
    client.on("message", onMessage);
    client.send(text, port, "127.0.0.1");
  });
}

const sockets: dgram.Socket[] = [];
const processes: Ferry[] = [];
const dirs: string[] = [];
after(() => {
  for (const p of processes) p.kill();
  for (const s of sockets) s.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A UDP echo server; returns its port. */
async function echoServer(): Promise<number> {
  const s = await udpSocket();
  sockets.push(s);
  s.on("message", (m, r) => s.send(m, r.port, r.address));
  return s.address().port;
}

async function client(): Promise<dgram.Socket> {
  const s = await udpSocket();
  sockets.push(s);
  return s;
}

function start(args: string[], env: Record<string, string> = {}): Ferry {
  const f = new Ferry(args, env);
  processes.push(f);
  return f;
}

describe("ferry command", () => {
  test("--version names ferry and the runtime", async () => {
    const r = await runToEnd(["--version"]);
    assert.equal(r.code, 0);
    assert.match(
      r.stdout,
      isDeno ? /^ferry 0\.1\.0 \(deno \d+\.\d+\.\d+/ : /^ferry 0\.1\.0 \(bun \d+\.\d+\.\d+/,
    );
  });

  test("check passes the built-in default config", async () => {
    const r = await runToEnd(["check"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ok: built-in default: 2 listeners, 2 clusters, 3 backends/);
  });

  test("check lists every error with its key path and exits 1", async () => {
    const dir = mkdtempSync(`${tmpdir()}/ferry-e2e-`);
    dirs.push(dir);
    writeFileSync(
      `${dir}/bad.toml`,
      `[[listeners]]\nname = "a"\naddress = "x"\ncluster = "c"\n\n[clusters.c]\nbalancer = "maglve"\n` +
        `backends = [{ address = "10.0.0.1:1", weight = 0 }]\n`,
    );
    const r = await runToEnd(["check", "--config", `${dir}/bad.toml`], { FERRY_ADMIN_LISTEN: "nope" });
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split("\n");
    // An override has no line in the file; the file's own keys name theirs.
    assert.match(lines[0], /^admin\.listen: "nope"/);
    assert.match(lines[1], /^listeners\[0\]\.address \(line 3\): "x" /);
    assert.ok(
      lines.some((l) => /^clusters\.c\.balancer \(line 7\): "maglve" .*did you mean "maglev"/.test(l)),
      r.stderr,
    );
    assert.ok(
      lines.some((l) => l.startsWith("clusters.c.backends[0].weight (line 8): 0 is out of range")),
      r.stderr,
    );
    assert.match(lines[lines.length - 1], /^4 errors in file /);
  });

  test("quick mode relays a datagram; a second SIGTERM exits at once", async () => {
    const echo = await echoServer();
    const port = await freePort();
    const f = start(["--udp", `127.0.0.1:${port}`, "--to", `127.0.0.1:${echo}`]);
    const listening = await f.waitLog((l) => l.event === "listening");
    assert.equal(listening.address, `127.0.0.1:${port}`);
    assert.equal(listening.listener, "quick");
    assert.equal(await roundTrip(await client(), port, "hello"), "hello");
    f.signal("SIGTERM"); // a flow is live and the grace period is 30 s: this drains...
    await f.waitLog((l) => l.event === "draining");
    f.signal("SIGTERM"); // ...and this one does not wait
    assert.equal(await f.exit(3000), 143);
  });

  describe("with a config file", () => {
    let dir = "";
    let file = "";
    let echo = 0;
    let portA = 0;
    let portB = 0;
    let f: Ferry;
    let peer: dgram.Socket;
    const config = (extra = "") =>
      `[relay]\ngrace_period = "1s"\n\n[[listeners]]\nname = "a"\naddress = "127.0.0.1:${portA}"\ncluster = "c"\n\n` +
      `${extra}[clusters.c]\nbackends = [{ address = "127.0.0.1:${echo}" }]\n`;

    test("starts and relays", async () => {
      dir = mkdtempSync(`${tmpdir()}/ferry-e2e-`);
      dirs.push(dir);
      file = `${dir}/ferry.toml`;
      echo = await echoServer();
      [portA, portB] = [await freePort(), await freePort()];
      writeFileSync(file, config());
      f = start(["--config", file, "--log-format", "json"]);
      await f.waitLog((l) => l.event === "listening" && l.listener === "a");
      peer = await client();
      assert.equal(await roundTrip(peer, portA, "one"), "one");
    });

    test("SIGHUP with a broken file logs every error and keeps the old config", async () => {
      writeFileSync(file, config().replace(`"127.0.0.1:${portA}"`, '"nowhere"').replace('"1s"', '"1 s"'));
      f.signal("SIGHUP");
      await f.waitLog((l) => l.event === "reload_failed");
      const paths = f.logs().filter((l) => l.event === "config_error").map((l) => l.path);
      assert.deepEqual(paths, ["relay.grace_period", "listeners[0].address"]);
      assert.equal(await roundTrip(peer, portA, "two"), "two");
    });

    test("SIGHUP with a valid changed file applies it", async () => {
      const b = `[[listeners]]\nname = "b"\naddress = "127.0.0.1:${portB}"\ncluster = "c"\n\n`;
      writeFileSync(file, config(b));
      f.signal("SIGHUP");
      await f.waitLog((l) => l.event === "reloaded");
      const listening = await f.waitLog((l) => l.event === "listening" && l.listener === "b");
      assert.equal(listening.address, `127.0.0.1:${portB}`);
      assert.equal(await roundTrip(await client(), portB, "three"), "three");
      assert.equal(await roundTrip(peer, portA, "four"), "four");
    });

    test("SIGTERM drains for the grace period, then exits 0", async () => {
      const t0 = Date.now();
      f.signal("SIGTERM");
      assert.equal(await f.exit(3500), 0);
      const elapsed = Date.now() - t0;
      // Flows are live (60 s idle timeout), so the relay waits out the 1 s grace period.
      assert.ok(elapsed >= 900, `exited after ${elapsed} ms`);
      assert.ok(f.logs().some((l) => l.event === "draining"));
      assert.ok(f.logs().some((l) => l.event === "stopped"));
    });
  });
});
