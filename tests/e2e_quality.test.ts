// End-to-end check of the quality figures through a lossy, delaying backend: a spawned Ferry (deno main.ts
// and dist/ferry under Deno, bun main.ts under Bun), 127.0.0.1 only, a few seconds per target.
//
// The backend answers each datagram after DELAY_MS and drops every 10th reply (deterministic 10%). A
// request/response client (send, wait for the reply or a timeout, think a moment, send the next) goes
// through two listeners at once: one on the data path "auto" picks (native where libc loads) and one on
// the runtime path, so both data paths hand the core what it reads. Each datagram carries a 16-bit
// sequence number at offset 0 (the cluster's [sequence]), echoed back, so the reply direction shows the
// dropped replies as sequence loss. The API must report latency near the delay the client measured, the
// unanswered ratio near the true loss, and the same per backend and in /metrics.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { FerryProcess, type FerryTarget, ferryTargets, freePorts, killAll } from "./support/ferry_process.ts";
import { Client, sleep } from "./support/udp.ts";

const TOKEN = "e2e-quality-token";
const DELAY_MS = 20;
const DROP_EVERY = 10;
const REQUESTS = 100;
const TIMEOUT_MS = 60;
const THINK_MS = 5;

after(killAll);

/** A UDP backend that answers after DELAY_MS and drops every DROP_EVERY-th reply. */
class LossyBackend {
  readonly #socket = dgram.createSocket("udp4");
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  received = 0;
  dropped = 0;
  port = 0;

  async start(): Promise<this> {
    this.#socket.on("message", (m, r) => {
      this.received++;
      if (this.received % DROP_EVERY === 0) {
        this.dropped++;
        return;
      }
      const t = setTimeout(() => {
        this.#timers.delete(t);
        this.#socket.send(m, r.port, r.address);
      }, DELAY_MS);
      this.#timers.add(t);
    });
    await new Promise<void>((res) => this.#socket.bind(0, "127.0.0.1", () => res()));
    this.port = this.#socket.address().port;
    return this;
  }

  close(): void {
    for (const t of this.#timers) clearTimeout(t);
    try {
      this.#socket.close();
    } catch { /* already closed */ }
  }
}

/** Runs the request/response client against `port`; returns its median RTT and its unanswered count. */
async function converse(client: Client, port: number): Promise<{ median: number; unanswered: number }> {
  const rtts: number[] = [];
  let unanswered = 0;
  for (let i = 0; i < REQUESTS; i++) {
    const d = new Uint8Array(16);
    d[0] = i >> 8;
    d[1] = i & 0xff;
    const t0 = performance.now();
    client.send(d, port);
    // Skip stale replies (none expected: a dropped reply never comes).
    let got: Uint8Array | null;
    do got = await client.next(TIMEOUT_MS); while (got !== null && ((got[0] << 8) | got[1]) !== i);
    if (got === null) unanswered++;
    else rtts.push(performance.now() - t0);
    await sleep(THINK_MS);
  }
  rtts.sort((a, b) => a - b);
  return { median: rtts[rtts.length >> 1], unanswered };
}

interface FlowJson {
  latencyMs: number | null;
  jitterMs: number;
  dropPermille: number;
  unansweredPermille: number;
  sequence: { up: { lost: number; expected: number }; down: { lost: number; expected: number } } | null;
}

for (const target of ferryTargets()) {
  describe(`e2e quality [${target.name}]`, () => describeTarget(target));
}

function describeTarget(target: FerryTarget): void {
  let ferry: FerryProcess | undefined;
  const backends: LossyBackend[] = [];
  const clients: Client[] = [];
  after(() => {
    ferry?.kill();
    for (const c of clients) c.close();
    for (const b of backends) b.close();
  });

  test(`[${target.name}] latency and unanswered ratio through a 10%-lossy 20 ms backend`, {
    timeout: 30_000,
  }, async () => {
    const [bAuto, bRuntime] = await Promise.all([new LossyBackend().start(), new LossyBackend().start()]);
    backends.push(bAuto, bRuntime);
    const [pAuto, pRuntime] = await freePorts("udp", 2);
    const listener = (name: string, port: number, datapath: string) =>
      `[[listeners]]\nname = "${name}"\naddress = "127.0.0.1:${port}"\ncluster = "${name}"\n` +
      `datapath = "${datapath}"\n\n`;
    const cluster = (name: string, port: number) =>
      `[clusters.${name}]\nbackends = [{ address = "127.0.0.1:${port}" }]\n` +
      `[clusters.${name}.sequence]\noffset = 0\nsize = 2\n\n`;
    const toml =
      `[relay]\ngrace_period = "200ms"\n\n[admin]\nlisten = "127.0.0.1:0"\ntoken = "${TOKEN}"\n\n` +
      listener("auto", pAuto, "auto") + listener("runtime", pRuntime, "runtime") +
      cluster("auto", bAuto.port) + cluster("runtime", bRuntime.port);
    const relay = await FerryProcess.start(target, toml, { token: TOKEN });
    ferry = relay;
    const [cAuto, cRuntime] = await Promise.all([new Client().start(), new Client().start()]);
    clients.push(cAuto, cRuntime);
    const results = await Promise.all([
      converse(cAuto, relay.port("auto")),
      converse(cRuntime, relay.port("runtime")),
    ]);
    for (const [i, name] of ["auto", "runtime"].entries()) {
      const seen = results[i];
      const backend = [bAuto, bRuntime][i];
      // A reply slower than the client's timeout on a loaded machine counts for the client too: at least.
      assert.ok(seen.unanswered >= backend.dropped, `${name}: ${seen.unanswered} < ${backend.dropped}`);
      const trueLoss = (backend.dropped * 1000) / REQUESTS;
      const { flows } = await relay.json<{ flows: FlowJson[] }>(`/api/v1/flows?listener=${name}`);
      assert.equal(flows.length, 1, name);
      const f = flows[0];
      const where = `${name}: ${JSON.stringify(f)}; client median ${seen.median.toFixed(2)} ms`;
      // Ferry's RTT is the backend leg; the client's adds two loopback hops and its own timer slop.
      assert.ok(f.latencyMs !== null && f.latencyMs >= DELAY_MS * 0.9, where);
      assert.ok(f.latencyMs! <= seen.median * 1.1 + 1, where);
      assert.ok(f.jitterMs < 8, where); // the path's timer noise, not the 20+ ms a spliced sample adds
      assert.ok(Math.abs(f.unansweredPermille - trueLoss) <= 20, where);
      assert.equal(f.dropPermille, 0, where);
      // The dropped replies are gaps in the reply direction's sequence numbers (the last one, if dropped,
      // is not yet known as a gap); the request direction lost nothing.
      assert.equal(f.sequence?.up.lost, 0, where);
      assert.ok(
        f.sequence!.down.lost >= backend.dropped - 1 && f.sequence!.down.lost <= backend.dropped,
        where,
      );
      // The same figures per backend, in the API and as metrics without client labels.
      const { cluster: view } = await relay.json<
        { cluster: { backends: { quality: { unansweredPermille: number; latencyMs: number } }[] } }
      >(
        `/api/v1/clusters/${name}`,
      );
      const q = view.backends[0].quality;
      assert.ok(Math.abs(q.unansweredPermille - trueLoss) <= 20, `${name}: ${JSON.stringify(q)}`);
      assert.ok(Math.abs(q.latencyMs - f.latencyMs!) < 2, `${name}: ${JSON.stringify(q)}`);
      const labels = { cluster: name, backend: `127.0.0.1:${backend.port}` };
      const unanswered = await relay.metric("ferry_backend_requests_unanswered_total", labels);
      assert.ok(unanswered >= backend.dropped - 1 && unanswered <= backend.dropped, `${name}: ${unanswered}`);
      const rtt = await relay.metric("ferry_backend_rtt_seconds", labels);
      assert.ok(Math.abs(rtt * 1000 - q.latencyMs) < 0.01, `${name}: rtt ${rtt}`);
    }
    assert.equal(await relay.stop(), 0);
    ferry = undefined;
  });
}
