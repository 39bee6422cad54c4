/**
 * The TCP driver over the running runtime's adapter (Bun's or Deno's), against node:net clients and
 * backends on 127.0.0.1 (node:net behaves alike on both runtimes, so the same test drives both adapters).
 * Every test closes what it opened and is bounded in time.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { createHash, randomBytes } from "node:crypto";
import { RelayCore } from "../core/relay_core.ts";
import type { Listener } from "../core/listener.ts";
import type { ClusterConfig, ListenerConfig } from "../core/types.ts";
import { TcpRelay } from "../shell/datapath/tcp_relay.ts";
import { CoreLoop } from "../shell/relay/core_loop.ts";
import type { TcpSockets } from "../shell/datapath/tcp_sockets.ts";
import { bunTcpSockets } from "../shell/datapath/bun/tcp.ts";
import { denoTcpSockets } from "../shell/datapath/deno/tcp.ts";
import { addr, backend, cluster, config, listener } from "./support/fixtures.ts";

const sockets: TcpSockets = "Bun" in globalThis ? bunTcpSockets : denoTcpSockets;
const MiB = 1024 * 1024;

/** What a test opened, closed in `finally` whatever happened. */
class Scope {
  readonly #cleanups: (() => void)[] = [];
  add(f: () => void): void {
    this.#cleanups.push(f);
  }
  close(): void {
    for (const f of this.#cleanups.reverse()) {
      try {
        f();
      } catch { /* best effort */ }
    }
  }
}

/** Runs `body` with a scope, failing it after `ms` instead of hanging. */
async function scoped(ms: number, body: (scope: Scope) => Promise<void>): Promise<void> {
  const scope = new Scope();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  try {
    await Promise.race([body(scope), timeout]);
  } finally {
    clearTimeout(timer);
    scope.close();
  }
}

/** A node:net server on 127.0.0.1 that hands each connection to `handler`. Returns its port. */
async function serve(scope: Scope, handler: (s: net.Socket) => void): Promise<number> {
  const conns = new Set<net.Socket>();
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    conns.add(s);
    s.on("close", () => conns.delete(s));
    s.on("error", () => {});
    handler(s);
  });
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  scope.add(() => {
    for (const c of conns) c.destroy();
    srv.close();
  });
  return (srv.address() as net.AddressInfo).port;
}

/** An echo backend; a FIN from the relay is answered with a FIN. */
function echo(scope: Scope): Promise<number> {
  return serve(scope, (s) => {
    s.on("data", (d) => s.write(d));
    s.on("end", () => s.end());
  });
}

/** A port nobody listens on: bound, noted, closed. */
async function deadPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

interface Setup {
  core: RelayCore;
  l: Listener;
  relay: TcpRelay;
  port: number;
}

/** A core with one TCP listener on 127.0.0.1:0 to a cluster of `ports`, and its bound driver. */
async function relayTo(
  scope: Scope,
  ports: number[],
  c: Partial<ClusterConfig> = {},
  l: Partial<ListenerConfig> = {},
  over: TcpSockets = sockets,
): Promise<Setup> {
  const cfg = config(
    [cluster({ backends: ports.map((p) => backend(`127.0.0.1:${p}`)), ...c })],
    [listener({ protocol: "tcp", address: addr("127.0.0.1:0"), ...l })],
  );
  const core = new RelayCore(cfg, { seed: 1 });
  const lst = core.listener("l") as Listener;
  const relay = new TcpRelay(new CoreLoop(core, () => performance.now()), over);
  scope.add(() => relay.stop());
  const local = await relay.bind(lst, false);
  return { core, l: lst, relay, port: local.port };
}

/** A node:net client that buffers what it receives, for `read`. */
class Client {
  readonly socket: net.Socket;
  readonly ended: Promise<void>;
  readonly closed: Promise<void>;
  #buf = Buffer.alloc(0);
  #want: { n: number; resolve: (b: Buffer) => void } | null = null;

  constructor(scope: Scope, port: number) {
    this.socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
    this.socket.setNoDelay(true);
    scope.add(() => this.socket.destroy());
    this.socket.on("error", () => {});
    this.socket.on("data", (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#check();
    });
    this.ended = new Promise((resolve) => this.socket.on("end", () => resolve()));
    this.closed = new Promise((resolve) => this.socket.on("close", () => resolve()));
  }

  connected(): Promise<void> {
    return new Promise((resolve) => this.socket.once("connect", () => resolve()));
  }

  /** The next `n` bytes received. */
  read(n: number): Promise<Buffer> {
    return new Promise((resolve) => {
      this.#want = { n, resolve };
      this.#check();
    });
  }

  /** Everything buffered so far (what a refused client got: nothing). */
  get buffered(): number {
    return this.#buf.length;
  }

  #check(): void {
    const w = this.#want;
    if (w === null || this.#buf.length < w.n) return;
    this.#want = null;
    const out = this.#buf.subarray(0, w.n);
    this.#buf = this.#buf.subarray(w.n);
    w.resolve(out);
  }
}

/** Waits (bounded) until `cond` holds. */
async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

test("echo: many small round trips, counters match, clean close", () =>
  scoped(5000, async (scope) => {
    const { l, relay, port } = await relayTo(scope, [await echo(scope)]);
    const c = new Client(scope, port);
    let sent = 0;
    for (let i = 0; i < 300; i++) {
      const msg = Buffer.alloc(1 + (i % 97), i & 0xff);
      c.socket.write(msg);
      sent += msg.length;
      assert.deepEqual(await c.read(msg.length), msg);
    }
    c.socket.end();
    await c.ended;
    await c.closed;
    await until(() => relay.active === 0);
    assert.equal(l.counters.connectionsTotal, 1);
    assert.equal(l.counters.connectionsEnded.closed, 1);
    assert.equal(l.counters.bytesUp, sent);
    assert.equal(l.counters.bytesDown, sent);
    const b = l.cluster?.backends[0];
    assert.equal(b?.counters.bytesTo, sent);
    assert.equal(b?.counters.bytesFrom, sent);
    assert.equal(b?.flows, 0);
  }));

test("10 MiB each way at once, intact, through backpressure", () =>
  scoped(10_000, async (scope) => {
    const up = randomBytes(10 * MiB);
    const down = randomBytes(10 * MiB);
    let gotUp = "";
    const backendPort = await serve(scope, (s) => {
      const h = createHash("sha256");
      s.on("data", (d) => h.update(d));
      s.on("end", () => gotUp = h.digest("hex"));
      s.pause(); // a slow reader at first: the relay's queues fill and it must pause the client
      setTimeout(() => s.resume(), 100);
      s.end(down);
    });
    const { l, relay, port } = await relayTo(scope, [backendPort]);
    const c = new Client(scope, port);
    const h = createHash("sha256");
    let n = 0;
    c.socket.on("data", (d: Buffer) => {
      h.update(d);
      n += d.length;
    });
    c.socket.end(up); // written before the backend connects: the early buffer fills and pauses too
    await c.ended;
    assert.equal(n, down.length);
    assert.equal(h.digest("hex"), sha256(down));
    await until(() => relay.active === 0 && gotUp !== "", 5000); // the backend sees its EOF in its own time
    assert.equal(gotUp, sha256(up));
    assert.equal(l.counters.bytesUp, up.length);
    assert.equal(l.counters.bytesDown, down.length);
    assert.equal(l.counters.connectionsEnded.closed, 1);
  }));

test("half-close: the backend still replies after the client's FIN", () =>
  scoped(5000, async (scope) => {
    const backendPort = await serve(scope, (s) => {
      let got = "";
      s.on("data", (d) => got += d);
      s.on("end", () => setTimeout(() => s.end(`reply to ${got}`), 50));
    });
    const { l, relay, port } = await relayTo(scope, [backendPort]);
    const c = new Client(scope, port);
    c.socket.end("request");
    const reply = "reply to request";
    assert.equal((await c.read(reply.length)).toString(), reply);
    await c.ended;
    await until(() => relay.active === 0);
    assert.equal(l.counters.connectionsEnded.closed, 1);
  }));

test("half-close the other way: the client still sends after the backend's FIN", () =>
  scoped(5000, async (scope) => {
    let heard: Promise<string> = Promise.resolve("");
    const backendPort = await serve(scope, (s) => {
      heard = new Promise((resolve) => {
        let got = "";
        s.on("data", (d) => got += d);
        s.on("end", () => resolve(got));
      });
      s.end("banner"); // speaks first, then half-closes
    });
    const { l, relay, port } = await relayTo(scope, [backendPort]);
    const c = new Client(scope, port);
    assert.equal((await c.read(6)).toString(), "banner");
    await c.ended;
    c.socket.end("still talking");
    assert.equal(await heard, "still talking");
    await c.closed;
    await until(() => relay.active === 0);
    assert.equal(l.counters.connectionsEnded.closed, 1);
    assert.equal(l.counters.bytesUp, "still talking".length);
    assert.equal(l.counters.bytesDown, "banner".length);
  }));

test("a backend reset mid-stream ends the connection as an error", () =>
  scoped(5000, async (scope) => {
    const backendPort = await serve(scope, (s) => {
      s.once("data", () => s.resetAndDestroy());
    });
    const { l, relay, port } = await relayTo(scope, [backendPort]);
    const c = new Client(scope, port);
    c.socket.write("boom");
    await Promise.race([c.ended, c.closed]);
    await until(() => relay.active === 0);
    assert.equal(l.counters.connectionsEnded.error, 1);
  }));

test("200 concurrent connections, each a round trip", () =>
  scoped(8000, async (scope) => {
    const { l, relay, port } = await relayTo(scope, [await echo(scope), await echo(scope)]);
    await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      const c = new Client(scope, port);
      const msg = Buffer.from(`hello ${i}`);
      c.socket.write(msg);
      assert.deepEqual(await c.read(msg.length), msg);
      c.socket.end();
      await c.closed;
    }));
    await until(() => relay.active === 0);
    assert.equal(l.counters.connectionsTotal, 200);
    assert.equal(l.counters.connectionsEnded.closed, 200);
    for (const b of l.cluster?.backends ?? []) assert.equal(b.counters.flowsTotal, 100);
  }));

test("a refused backend closes the client cleanly and is counted", () =>
  scoped(5000, async (scope) => {
    const { l, relay, port } = await relayTo(scope, [await deadPort()]);
    const c = new Client(scope, port);
    c.socket.write("anyone?"); // sent at once, likely before the refusal: read and dropped, not reset
    await c.ended; // a FIN, not a reset
    assert.equal(c.buffered, 0);
    c.socket.end();
    await c.closed;
    await until(() => relay.active === 0);
    assert.equal(l.counters.connectionsEnded.refused, 1);
    assert.equal(l.cluster?.backends[0].counters.refusals, 1);
  }));

test("max connections: the third client is shed", () =>
  scoped(5000, async (scope) => {
    const { l, relay, port } = await relayTo(scope, [await echo(scope)], {}, { maxFlows: 2 });
    const a = new Client(scope, port);
    const b = new Client(scope, port);
    for (const c of [a, b]) {
      c.socket.write("x");
      assert.equal((await c.read(1)).toString(), "x");
    }
    const third = new Client(scope, port);
    await third.ended;
    assert.equal(third.buffered, 0);
    assert.equal(l.counters.drops.shed, 1);
    assert.equal(relay.active, 2);
    a.socket.end();
    b.socket.end();
    await until(() => relay.active === 0);
    assert.equal(l.counters.connectionsTotal, 2);
  }));

/** Connects through a relay with PROXY `version` and returns what the backend got first, and the client. */
async function proxied(scope: Scope, version: 1 | 2, headerLength: (c: Client) => number) {
  let take: (s: net.Socket) => void = () => {};
  const got = new Promise<net.Socket>((resolve) => take = resolve);
  const backendPort = await serve(scope, (s) => take(s));
  const { port } = await relayTo(scope, [backendPort], {
    proxyProtocol: "first",
    proxyProtocolVersion: version,
  });
  const c = new Client(scope, port);
  await c.connected();
  c.socket.write("x");
  const s = await got;
  const first = new Promise<Buffer>((resolve) => {
    let buf = Buffer.alloc(0);
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= headerLength(c) + 1) resolve(buf);
    });
  });
  return { bytes: await first, client: c, relayPort: port };
}

test("PROXY v1 header, byte-exact, before the client's bytes", () =>
  scoped(5000, async (scope) => {
    let expected = "";
    const r = await proxied(scope, 1, (c) => {
      expected = `PROXY TCP4 127.0.0.1 127.0.0.1 ${c.socket.localPort} ${c.socket.remotePort}\r\n`;
      return expected.length;
    });
    assert.equal(r.bytes.toString("latin1"), expected + "x");
  }));

test("PROXY v2 header, byte-exact, before the client's bytes", () =>
  scoped(5000, async (scope) => {
    const r = await proxied(scope, 2, () => 28);
    const cp = r.client.socket.localPort as number;
    const expected = Buffer.from([
      ...[0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a], // signature
      0x21, // v2, PROXY
      0x11, // AF_INET, STREAM
      0x00,
      0x0c, // 12 address bytes
      127,
      0,
      0,
      1, // source
      127,
      0,
      0,
      1, // destination
      cp >> 8,
      cp & 0xff,
      r.relayPort >> 8,
      r.relayPort & 0xff,
      0x78, // "x"
    ]);
    assert.deepEqual(r.bytes, expected);
  }));

test("idle timeout: activity keeps a connection, silence closes it", () =>
  scoped(5000, async (scope) => {
    const { l, relay, port } = await relayTo(scope, [await echo(scope)], { idleTimeout: 200 });
    const c = new Client(scope, port);
    let last = 0;
    for (let i = 0; i < 5; i++) { // traffic every 100 ms for 400 ms: longer than the timeout
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      c.socket.write("ping");
      assert.equal((await c.read(4)).toString(), "ping");
      last = performance.now();
    }
    assert.equal(relay.active, 1);
    await c.ended;
    const quiet = performance.now() - last;
    assert.ok(quiet >= 180 && quiet < 1000, `closed after ${quiet.toFixed(0)} ms of silence`);
    assert.equal(l.counters.connectionsEnded.idle, 1);
    assert.equal(relay.active, 0);
  }));

test("connect timeout closes the client and is counted", () =>
  scoped(5000, async (scope) => {
    // A backend connect that never completes: what a SYN into a black hole looks like to the driver.
    const stuck: TcpSockets = {
      name: "stuck",
      listen: (a, r, f) => sockets.listen(a, r, f),
      connect: (_a, _e, signal) =>
        new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))),
    };
    const { l, relay, port } = await relayTo(scope, [9], { connectTimeout: 100 }, {}, stuck);
    const c = new Client(scope, port);
    c.socket.write("early bytes, never sent");
    await c.ended;
    assert.equal(l.counters.connectionsEnded.connect_timeout, 1);
    assert.equal(relay.active, 0);
  }));

test("unbind stops accepting; open connections carry on", () =>
  scoped(5000, async (scope) => {
    const { l, relay, port } = await relayTo(scope, [await echo(scope)]);
    const c = new Client(scope, port);
    c.socket.write("a");
    assert.equal((await c.read(1)).toString(), "a");
    relay.unbind(l);
    assert.equal(relay.local(l), undefined);
    const late = net.connect({ host: "127.0.0.1", port });
    scope.add(() => late.destroy());
    const err = await new Promise<string>((resolve) =>
      late.on("error", (e) => resolve(String((e as { code?: string }).code)))
    );
    assert.equal(err, "ECONNREFUSED");
    c.socket.write("b");
    assert.equal((await c.read(1)).toString(), "b");
    c.socket.end();
    await c.closed;
    await until(() => relay.active === 0);
    assert.equal(l.counters.connectionsEnded.closed, 1);
  }));
