/**
 * Fuzz-style test of the native data path: many short client sessions (heavy flow churn), random datagram
 * sizes from 0 to 65507 bytes (so most are cut short by the kernel, MSG_TRUNC, and dropped as Truncated),
 * and a backend that answers each datagram as its first byte says: echo, a reply too large for the
 * listener, an empty reply, no reply, or two replies. Afterwards every counter must match what the test
 * sent and received, every flow must have closed and every socket with it. Seeded: a failure prints its
 * seed (FERRY_FUZZ_SEED=N reruns it).
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";
import { RelayCore } from "../core/relay_core.ts";
import type { Listener } from "../core/listener.ts";
import { CoreLoop } from "../shell/relay/core_loop.ts";
import { NativeUdp } from "../shell/datapath/native/native_udp.ts";
import { nativeSupport } from "../shell/datapath/native/select.ts";
import { addr, backend, cluster, config, listener } from "./support/fixtures.ts";
import { sleep, until } from "./support/udp.ts";

const support = await nativeSupport();
if ("reason" in support) console.log(`native fuzz test skipped: ${support.reason}`);
const MAX = 2000;
const SESSIONS = 200;
const CONCURRENCY = 8;
const Mode = { Echo: 0, Big: 1, Empty: 2, Silent: 3, Twice: 4 } as const;

const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** A small seeded generator (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Kernel drops of the UDP socket bound to 127.0.0.1:port, from /proc/net/udp. */
function kernelDrops(port: number): number {
  const hex = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  for (const line of readFileSync("/proc/net/udp", "utf8").split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[1] === hex) return Number(f[f.length - 1]);
  }
  return 0;
}

/** The backend: answers as each datagram's first byte says, and counts what it did. */
async function fuzzBackend(random: () => number) {
  const s = dgram.createSocket({ type: "udp4", recvBufferSize: 4 << 20 });
  const stats = { received: 0, bytes: 0, small: 0, smallBytes: 0, big: 0 };
  s.on("message", (m, r) => {
    const d = new Uint8Array(m);
    stats.received++;
    stats.bytes += d.byteLength;
    const reply = (out: Uint8Array) => {
      if (out.byteLength > MAX) stats.big++;
      else {
        stats.small++;
        stats.smallBytes += out.byteLength;
      }
      s.send(out, r.port, r.address);
    };
    switch (d[0]) {
      case Mode.Echo:
        return reply(d);
      case Mode.Big:
        return reply(new Uint8Array(MAX + 1 + Math.floor(random() * (65_507 - MAX))));
      case Mode.Empty:
        return reply(new Uint8Array(0));
      case Mode.Twice:
        reply(d);
        return reply(d);
    }
  });
  await new Promise<void>((res) => s.bind(0, "127.0.0.1", () => res()));
  return { port: s.address().port, stats, close: () => s.close() };
}

/** What the clients did. */
interface Tally {
  sent: number;
  zero: number;
  over: number;
  fwd: number;
  fwdBytes: number;
  expected: number;
  received: number;
  wrong: number;
  sessionsWithFlow: number;
}

function pickSize(random: () => number): number {
  const x = random();
  if (x < 0.15) return Math.floor(random() * 65_508);
  if (x < 0.25) return [0, 1, MAX, MAX + 1, 65_507][Math.floor(random() * 5)];
  return 1 + Math.floor(random() * MAX);
}

const REPLIES = [1, 0, 1, 0, 2];

/**
 * One client session: a fresh socket (a fresh flow), a few datagrams, each awaited as expected. Sockets
 * stay open until the end, so no later session reuses a port while its flow still lives.
 */
async function session(port: number, random: () => number, t: Tally, open: dgram.Socket[]): Promise<void> {
  const s = dgram.createSocket({ type: "udp4", recvBufferSize: 1 << 20 });
  const inbox: Uint8Array[] = [];
  let wake: (() => void) | null = null;
  s.on("message", (m) => {
    inbox.push(new Uint8Array(m));
    wake?.();
  });
  await new Promise<void>((res) => s.bind(0, "127.0.0.1", () => res()));
  open.push(s);
  let forwarded = false;
  try {
    const count = 1 + Math.floor(random() * 6);
    for (let i = 0; i < count; i++) {
      const size = pickSize(random);
      const d = new Uint8Array(size);
      for (let k = 1; k < size; k += 97) d[k] = (k * 31 + i) & 0xff;
      if (size > 0) d[0] = Math.floor(random() * 5);
      const ok = await new Promise<boolean>((res) => s.send(d, port, "127.0.0.1", (e) => res(!e)));
      if (!ok) continue;
      t.sent++;
      if (size === 0) t.zero++;
      else if (size > MAX) t.over++;
      else {
        t.fwd++;
        t.fwdBytes += size;
        forwarded = true;
      }
      const want = size === 0 || size > MAX ? 0 : REPLIES[d[0]];
      t.expected += want;
      const end = performance.now() + 1500;
      while (inbox.length < want && performance.now() < end) {
        await new Promise<void>((res) => {
          wake = res;
          setTimeout(res, 20);
        });
      }
      for (const got of inbox.splice(0)) {
        t.received++;
        const fine = d[0] === Mode.Empty
          ? got.byteLength === 0
          : got.byteLength === size && got[0] === d[0] &&
            got.every((b, k) => b === d[k]);
        if (!fine) t.wrong++;
      }
    }
  } finally {
    if (forwarded) t.sessionsWithFlow++;
  }
}

describe("native data path fuzz", {
  skip: "reason" in support ? `native data path unavailable: ${support.reason}` : false,
}, () => {
  test(`${SESSIONS} sessions, sizes 0..65507, truncation both ways, churn: nothing miscounted`, {
    timeout: 60_000,
  }, async () => {
    if (!("libc" in support)) return;
    const seed = Number(process.env.FERRY_FUZZ_SEED ?? Date.now() % 1_000_000);
    const random = rng(seed);
    const why = (what: string) => `${what} (FERRY_FUZZ_SEED=${seed})`;
    const fdsBefore = readdirSync("/proc/self/fd").length;
    const be = await fuzzBackend(rng(seed + 1));
    closers.push(be.close);
    const cfg = config(
      [cluster({ backends: [backend(`127.0.0.1:${be.port}`)], frontTimeout: 500, backTimeout: 500 })],
      [listener({ address: addr("127.0.0.1:0"), maxDatagramSize: MAX })],
    );
    const core = new RelayCore(cfg, { seed });
    const clock = () => performance.now();
    const hub = new CoreLoop(core, clock);
    const native = new NativeUdp(hub, support.libc);
    const stop = async () => {
      hub.stop();
      native.stop();
      await native.closed;
    };
    closers.push(stop);
    const l = core.listener("l") as Listener;
    const port = (await native.bind(l, false)).port;

    const t: Tally = {
      sent: 0,
      zero: 0,
      over: 0,
      fwd: 0,
      fwdBytes: 0,
      expected: 0,
      received: 0,
      wrong: 0,
      sessionsWithFlow: 0,
    };
    let next = 0;
    const open: dgram.Socket[] = [];
    closers.push(() => open.forEach((s) => s.close()));
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < SESSIONS) {
        next++;
        await session(port, random, t, open);
      }
    }));
    assert.ok(await until(() => core.flowCount === 0, 5000), why("every flow closed by its idle timeout"));
    await sleep(50);

    const c = l.counters;
    const rxq = native.stats(l)?.rxqOverflows ?? 0;
    const beDrops = kernelDrops(be.port);
    // Every datagram the clients sent is accounted for once: forwarded, dropped by the core, or dropped
    // by the kernel before the relay could read it (SO_RXQ_OVFL).
    const truncatedFromClients = c.drops.truncated - be.stats.big;
    assert.equal(
      c.datagramsIn + c.drops.invalid + truncatedFromClients + rxq,
      t.sent,
      why("client datagrams"),
    );
    if (rxq === 0) {
      assert.equal(c.drops.invalid, t.zero, why("empty datagrams are Invalid"));
      assert.equal(truncatedFromClients, t.over, why("oversized datagrams are Truncated"));
      assert.equal(c.datagramsIn, t.fwd, why("the rest is forwarded"));
      assert.equal(c.bytesIn, t.fwdBytes, why("bytes in"));
      assert.equal(c.flowsCreated, t.sessionsWithFlow, why("one flow per session that forwarded"));
    }
    assert.equal(be.stats.received + beDrops, c.datagramsIn, why("the backend got every forwarded datagram"));
    if (beDrops === 0) assert.equal(be.stats.bytes, c.bytesIn, why("byte for byte"));
    // Replies: the small ones reach the clients intact, the large ones are Truncated at the relay.
    assert.equal(c.datagramsOut, be.stats.small, why("small replies relayed"));
    assert.equal(c.bytesOut, be.stats.smallBytes, why("reply bytes"));
    assert.equal(t.received, c.datagramsOut, why("clients received every relayed reply"));
    assert.equal(t.wrong, 0, why("replies intact"));
    if (rxq === 0 && beDrops === 0) assert.equal(t.received, t.expected, why("every expected reply came"));
    assert.equal(c.drops.send_error, 0, why("no send errors"));
    assert.equal(c.drops.shed + c.drops.no_backend + c.drops.late, 0, why("no other drops"));
    assert.equal(c.flowsClosed.idle, c.flowsCreated, why("flows ended by idle timeout"));
    assert.equal(native.upstreams, 0, why("every upstream socket closed"));
    assert.deepEqual(native.errors.snapshot(), {}, why("no failed syscalls"));
    assert.ok(
      t.over > 0 && be.stats.big > 0 && t.zero > 0 && c.flowsCreated > 50,
      why("the mix was exercised"),
    );

    await stop();
    be.close();
    for (const s of open) s.close();
    closers.length = 0;
    await sleep(50);
    assert.ok(readdirSync("/proc/self/fd").length <= fdsBefore, why("no descriptor left open"));
  });
});
