// End-to-end tests of the relay: real Ferry processes, real sockets, 127.0.0.1 only.
//
// Targets: under Deno `deno main.ts` and, when it was built, the compiled `dist/ferry` (a Bun binary);
// under Bun `bun main.ts`. Running the file under both runtimes covers all three. Each target runs ONE
// Ferry process whose config has a listener per check (each on its own free port), so every check below
// talks to the same process; the test names say which target.
//
// UDP backends are tests/support/udp.ts EchoBackends (they record each datagram and the relay's upstream
// port it came from); TCP backends are node:net echo servers that, after the client's FIN, send a marker
// "\nEOF <bytes received>" and then their own FIN, so every exchange also checks half-close.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomFillSync } from "node:crypto";
import net from "node:net";
import { decodeProxyV2, encodeProxyV2 } from "../core/proxy_v2.ts";
import { FerryProcess, type FerryTarget, ferryTargets, freePorts, killAll } from "./support/ferry_process.ts";
import { parsePrometheus } from "./support/prometheus.ts";
import { Client, EchoBackend, sleep } from "./support/udp.ts";

const TOKEN = "e2e-relay-token";
/** Per-test limit: Bun's default is 5 s, and startup or the 10 MiB transfer may take longer. */
const T = { timeout: 20_000 };
const text = (d: Uint8Array) => new TextDecoder().decode(d);
const bytes = (s: string) => new TextEncoder().encode(s);
const sha256 = (d: Uint8Array) => createHash("sha256").update(d).digest("hex");

after(killAll); // whatever a failing test left running

/** Polls `cond` every 50 ms until it holds or `ms` passes; returns whether it held. */
async function eventually(cond: () => Promise<boolean>, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) return false;
    await sleep(50);
  }
  return true;
}

/** A TCP echo server on 127.0.0.1; after the client's FIN it sends "\nEOF <n>" and then its own FIN. */
class TcpEchoBackend {
  readonly #server = net.createServer({ allowHalfOpen: true }, (s) => this.#serve(s));
  readonly #sockets = new Set<net.Socket>();
  /** Per finished upload: bytes and SHA-256 of what this backend received. */
  readonly uploads: { bytes: number; sha256: string }[] = [];
  accepted = 0;
  port = 0;

  async start(): Promise<this> {
    await new Promise<void>((res) => this.#server.listen(0, "127.0.0.1", () => res()));
    this.port = (this.#server.address() as net.AddressInfo).port;
    return this;
  }

  #serve(s: net.Socket): void {
    this.accepted++;
    this.#sockets.add(s);
    const hash = createHash("sha256");
    let n = 0;
    s.on("data", (d: Uint8Array) => {
      n += d.length;
      hash.update(d);
      if (!s.write(d)) {
        s.pause();
        s.once("drain", () => s.resume());
      }
    });
    s.on("end", () => {
      this.uploads.push({ bytes: n, sha256: hash.digest("hex") });
      // After the client's FIN, the way back must stay open: answer a little later, then close.
      setTimeout(() => s.end(`\nEOF ${n}`), 50);
    });
    s.on("error", () => {});
    s.on("close", () => this.#sockets.delete(s));
  }

  close(): void {
    for (const s of this.#sockets) s.destroy();
    this.#server.close();
  }
}

/** What a TCP client saw: every byte, and how the connection ended. */
interface TcpOutcome {
  received: Uint8Array;
  /** The peer's FIN arrived. */
  gotEnd: boolean;
  /** An error (ECONNRESET, say) ended it. */
  error: string | null;
}

/** Connects to 127.0.0.1:`port`, sends `data` then FIN, and reads until the connection closes. */
function tcpExchange(port: number, data: Uint8Array, ms = 5000): Promise<TcpOutcome> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let gotEnd = false;
    let error: string | null = null;
    const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(
        new Error(`TCP exchange with :${port} still open after ${ms} ms (${gotEnd ? "" : "no "}FIN seen)`),
      );
    }, ms);
    s.on("connect", () => s.end(data));
    s.on("data", (d: Uint8Array) => chunks.push(new Uint8Array(d)));
    s.on("end", () => (gotEnd = true));
    s.on("error", (e: Error & { code?: string }) => (error = e.code ?? e.message));
    s.on("close", () => {
      clearTimeout(timer);
      const received = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let at = 0;
      for (const c of chunks) {
        received.set(c, at);
        at += c.length;
      }
      resolve({ received, gotEnd, error });
    });
  });
}

interface FlowJson {
  client: string;
  backend: string | null;
  listener: string;
}

const UDP_LISTENERS = [
  "udp",
  "req1",
  "resp1",
  "idle",
  "cap",
  "big",
  "ppfirst",
  "ppevery",
  "dead",
  "grow",
  "disc",
] as const;
const TCP_LISTENERS = ["tcp", "tcpdead"] as const;

for (const target of ferryTargets()) {
  describeTarget(target);
}

function describeTarget(target: FerryTarget): void {
  // The compiled binary is Bun inside, so it sees ICMP refusals as `bun main.ts` does.
  const seesUdpRefusals = target.runtime === "bun";

  describe(`e2e relay [${target.name}]`, () => {
    let ferry: FerryProcess;
    const udpBackends: EchoBackend[] = [];
    const clients: Client[] = [];
    const udpBackend = async () => {
      const b = await new EchoBackend().start();
      udpBackends.push(b);
      return b;
    };
    const client = async () => {
      const c = await new Client().start();
      clients.push(c);
      return c;
    };
    let e1: EchoBackend, e2: EchoBackend, solo: EchoBackend, pp1: EchoBackend, pp2: EchoBackend;
    let live: EchoBackend, g1: EchoBackend, g2: EchoBackend, disc: EchoBackend;
    let tcpEcho: TcpEchoBackend;
    let deadUdp = 0;
    let deadTcp = 0;
    const port = (name: string) => ferry.port(name);
    const metric = (name: string, labels: Record<string, string>) => ferry.metric(name, labels);
    const flows = async (listener: string) =>
      (await ferry.json<{ total: number; flows: FlowJson[] }>(
        `/api/v1/flows?listener=${listener}&limit=10000`,
      ))
        .flows;
    /** Upstream ports (one per flow) from which `backend` received payloads starting with `prefix`. */
    const upstreamPorts = (backend: EchoBackend, prefix: string) =>
      new Set(backend.received.filter((r) => text(r.data).startsWith(prefix)).map((r) => r.port));

    after(() => {
      ferry?.kill();
      for (const c of clients) c.close();
      for (const b of udpBackends) b.close();
      tcpEcho?.close();
    });

    test(`[${target.name}] starts with every listener bound`, { timeout: 30_000 }, async () => {
      [e1, e2, solo, pp1, pp2, live, g1, g2, disc] = await Promise.all(
        Array.from({ length: 9 }, () => udpBackend()),
      );
      // PROXY backends strip the header before echoing, so the client gets its own payload back.
      for (const b of [pp1, pp2]) {
        b.reply = (d) => {
          const h = decodeProxyV2(d);
          return typeof h === "string" ? d : d.slice(h.headerLength);
        };
      }
      tcpEcho = await new TcpEchoBackend().start();
      const udpPorts = await freePorts("udp", UDP_LISTENERS.length + 1);
      const tcpPorts = await freePorts("tcp", TCP_LISTENERS.length + 1);
      deadUdp = udpPorts.pop()!; // free a moment ago, nothing listens: refusals
      deadTcp = tcpPorts.pop()!;
      const at = (p: number) => `"127.0.0.1:${p}"`;
      const listener = (name: string, protocol: string, p: number, cluster: string, extra = "") =>
        `[[listeners]]\nname = "${name}"\nprotocol = "${protocol}"\naddress = ${
          at(p)
        }\ncluster = "${cluster}"\n${extra}\n`;
      const cluster = (name: string, backends: number[], extra = "") =>
        `[clusters.${name}]\n${extra}backends = [${
          backends.map((p) => `{ address = ${at(p)} }`).join(", ")
        }]\n\n`;
      const u = Object.fromEntries(UDP_LISTENERS.map((n, i) => [n, udpPorts[i]]));
      const toml =
        `[relay]\ngrace_period = "300ms"\n\n[admin]\nlisten = "127.0.0.1:0"\ntoken = "${TOKEN}"\n\n` +
        listener("udp", "udp", u.udp, "echo2") +
        listener("req1", "udp", u.req1, "req1") +
        listener("resp1", "udp", u.resp1, "resp1") +
        listener("idle", "udp", u.idle, "idle") +
        listener("cap", "udp", u.cap, "solo", "max_flows = 2\n") +
        listener("big", "udp", u.big, "solo", "max_datagram_size = 100\n") +
        listener("ppfirst", "udp", u.ppfirst, "ppfirst") +
        listener("ppevery", "udp", u.ppevery, "ppevery") +
        listener("dead", "udp", u.dead, "deadc") +
        listener("grow", "udp", u.grow, "grow") +
        listener("disc", "udp", u.disc, "disc") +
        listener("tcp", "tcp", tcpPorts[0], "tcpecho") +
        listener("tcpdead", "tcp", tcpPorts[1], "tcpdead") +
        cluster("echo2", [e1.port, e2.port], 'balancer = "maglev"\n') +
        cluster("req1", [solo.port], 'requests = 1\nfront_timeout = "300ms"\nback_timeout = "300ms"\n') +
        cluster("resp1", [solo.port], "responses = 1\n") +
        cluster("idle", [solo.port], 'front_timeout = "300ms"\n') +
        cluster("solo", [solo.port]) +
        cluster("ppfirst", [pp1.port], 'proxy_protocol = "first"\n') +
        cluster("ppevery", [pp2.port], 'proxy_protocol = "every"\n') +
        cluster("deadc", [deadUdp, live.port], 'balancer = "round_robin"\n') +
        cluster("grow", [g1.port], 'balancer = "least_flows"\n') +
        cluster("disc", [disc.port]) +
        cluster("tcpecho", [tcpEcho.port]) +
        cluster("tcpdead", [deadTcp], 'connect_timeout = "2s"\n');
      ferry = await FerryProcess.start(target, toml, { token: TOKEN, timeoutMs: 20_000 });
      for (const name of [...UDP_LISTENERS, ...TCP_LISTENERS]) {
        assert.ok(ferry.listeners.has(name), `no listening line for ${name}:\n${ferry.stderr}`);
      }
      assert.equal(port("udp"), u.udp);
      assert.equal(ferry.listeners.get("tcp")?.protocol, "tcp");
    });

    // ---- UDP ---------------------------------------------------------------------------------------------

    test(`[${target.name}] udp: a datagram is forwarded and the reply returned`, T, async () => {
      const c = await client();
      assert.equal(await c.ask("hello", port("udp"), 3000), "hello");
      const all = [...e1.received, ...e2.received].filter((r) => text(r.data) === "hello");
      assert.equal(all.length, 1, "the backend got the datagram once");
    });

    test(
      `[${target.name}] udp: many clients get separate flows, each pinned to one backend (maglev)`,
      T,
      async () => {
        const many = await Promise.all(Array.from({ length: 20 }, () => client()));
        const replies = await Promise.all(many.map((c) => c.ask(`m${c.port}:0`, port("udp"), 3000)));
        assert.deepEqual(replies, many.map((c) => `m${c.port}:0`));
        // Affinity: more datagrams per client, each must reach the backend (and upstream port) of its first.
        for (let i = 1; i <= 5; i++) {
          const r = await Promise.all(many.map((c) => c.ask(`m${c.port}:${i}`, port("udp"), 3000)));
          assert.deepEqual(r, many.map((c) => `m${c.port}:${i}`));
        }
        const listed = await flows("udp");
        const byClient = new Map(listed.map((f) => [f.client, f.backend]));
        let onE1 = 0;
        for (const c of many) {
          const prefix = `m${c.port}:`;
          const at1 = upstreamPorts(e1, prefix);
          const at2 = upstreamPorts(e2, prefix);
          assert.equal(
            at1.size + at2.size,
            1,
            `client ${c.port}: ${at1.size} + ${at2.size} upstream sockets`,
          );
          const mine = at1.size === 1 ? e1 : e2;
          assert.equal(mine.received.filter((r) => text(r.data).startsWith(prefix)).length, 6);
          assert.equal(byClient.get(`127.0.0.1:${c.port}`), `127.0.0.1:${mine.port}`, "the flow API agrees");
          if (mine === e1) onE1++;
        }
        // Separate flows: 20 distinct upstream ports, and a flow each in the API.
        const ups = new Set(
          [...e1.received, ...e2.received].filter((r) => text(r.data).startsWith("m")).map((r) => r.port),
        );
        assert.equal(ups.size, 20);
        assert.equal(listed.filter((f) => many.some((c) => f.client === `127.0.0.1:${c.port}`)).length, 20);
        assert.ok(onE1 > 0 && onE1 < 20, `maglev spreads clients over both backends (${onE1} of 20 on one)`);
      },
    );

    test(`[${target.name}] udp: requests = 1 closes each flow after one datagram`, T, async () => {
      const c = await client();
      assert.equal(await c.ask("r1", port("req1"), 3000), "r1"); // the reply still comes back
      assert.equal(await c.ask("r2", port("req1"), 3000), "r2"); // from a new flow
      assert.equal(await metric("ferry_listener_flows_created_total", { listener: "req1" }), 2);
      assert.equal(upstreamPorts(solo, "r").size, 2, "two flows, two upstream sockets");
      // Detached flows close once their back_timeout (300 ms) passes without replies.
      const closed = () =>
        metric("ferry_listener_flows_closed_total", { listener: "req1", reason: "requests" });
      await eventually(async () => (await closed()) >= 2);
      assert.equal(await closed(), 2);
      assert.equal(await metric("ferry_listener_active_flows", { listener: "req1" }), 0);
    });

    test(`[${target.name}] udp: responses = 1 closes each flow at its first reply`, T, async () => {
      const c = await client();
      assert.equal(await c.ask("s1", port("resp1"), 3000), "s1");
      assert.equal(
        await metric("ferry_listener_flows_closed_total", { listener: "resp1", reason: "responses" }),
        1,
      );
      assert.equal(await c.ask("s2", port("resp1"), 3000), "s2");
      assert.equal(await metric("ferry_listener_flows_created_total", { listener: "resp1" }), 2);
      assert.equal(
        await metric("ferry_listener_flows_closed_total", { listener: "resp1", reason: "responses" }),
        2,
      );
      assert.equal(await metric("ferry_listener_active_flows", { listener: "resp1" }), 0);
    });

    test(
      `[${target.name}] udp: an idle flow closes after front_timeout; a later datagram opens a fresh one`,
      T,
      async () => {
        const c = await client();
        assert.equal(await c.ask("i1", port("idle"), 3000), "i1");
        assert.equal((await flows("idle")).length, 1, "the flow is live right after its reply");
        const closed = () =>
          metric("ferry_listener_flows_closed_total", { listener: "idle", reason: "idle" });
        await eventually(async () => (await closed()) >= 1);
        assert.equal(await closed(), 1);
        assert.equal((await flows("idle")).length, 0);
        assert.equal(await c.ask("i2", port("idle"), 3000), "i2");
        assert.equal(await metric("ferry_listener_flows_created_total", { listener: "idle" }), 2);
        assert.equal(upstreamPorts(solo, "i").size, 2, "the fresh flow has its own upstream socket");
      },
    );

    test(`[${target.name}] udp: max_flows sheds new clients and keeps serving existing ones`, T, async () => {
      const [a, b, extra] = [await client(), await client(), await client()];
      assert.equal(await a.ask("a1", port("cap"), 3000), "a1");
      assert.equal(await b.ask("b1", port("cap"), 3000), "b1");
      assert.equal(await extra.ask("x1", port("cap"), 500), null, "a third flow is over max_flows = 2");
      assert.ok(await metric("ferry_listener_drops_total", { listener: "cap", reason: "shed" }) >= 1);
      assert.equal(await a.ask("a2", port("cap"), 3000), "a2");
      assert.equal(await b.ask("b2", port("cap"), 3000), "b2");
      assert.equal(await extra.ask("x2", port("cap"), 500), null);
      assert.equal((await flows("cap")).length, 2);
      assert.ok(
        !solo.received.some((r) => text(r.data).startsWith("x")),
        "shed datagrams never reach the backend",
      );
    });

    test(`[${target.name}] udp: datagrams over max_datagram_size are dropped and counted`, T, async () => {
      const c = await client();
      const fits = new Uint8Array(100).fill(0x41);
      const reply = await (c.send(fits, port("big")), c.next(3000));
      assert.deepEqual(reply, fits, "100 bytes (the limit) pass");
      const truncated = () => metric("ferry_listener_drops_total", { listener: "big", reason: "truncated" });
      const before = await truncated();
      c.send(new Uint8Array(101).fill(0x42), port("big"));
      assert.equal(await c.next(500), null, "101 bytes are dropped");
      c.send(new Uint8Array(1400).fill(0x43), port("big"));
      assert.equal(await c.next(500), null, "1400 bytes are dropped");
      assert.equal(await truncated(), before + 2);
      assert.equal(await c.ask("small", port("big"), 3000), "small", "the flow still works");
      assert.ok(!solo.received.some((r) => r.data.length > 100), "nothing oversized reached the backend");
    });

    for (const mode of ["first", "every"] as const) {
      test(
        `[${target.name}] udp: PROXY v2 header byte-exact at the backend (proxy_protocol = ${mode})`,
        T,
        async () => {
          const name = mode === "first" ? "ppfirst" : "ppevery";
          const backend = mode === "first" ? pp1 : pp2;
          const c = await client();
          for (const p of ["p1", "p2", "p3"]) assert.equal(await c.ask(p, port(name), 3000), p);
          assert.equal(backend.received.length, 3);
          const clientAddr = { ip: "127.0.0.1", port: c.port, family: 4 as const };
          const listenerAddr = { ip: "127.0.0.1", port: port(name), family: 4 as const };
          const header = encodeProxyV2(clientAddr, listenerAddr, "dgram");
          assert.equal(header.length, 28);
          backend.received.forEach((r, i) => {
            const payload = bytes(`p${i + 1}`);
            if (i === 0 || mode === "every") {
              assert.deepEqual(r.data, new Uint8Array([...header, ...payload]), `datagram ${i + 1}`);
              const decoded = decodeProxyV2(r.data);
              assert.ok(typeof decoded !== "string" && !("unspec" in decoded), String(decoded));
              assert.deepEqual(decoded.client, clientAddr);
              assert.deepEqual(decoded.local, listenerAddr);
              assert.equal(decoded.transport, "dgram");
            } else {
              assert.deepEqual(r.data, payload, `datagram ${i + 1} carries no header`);
            }
          });
        },
      );
    }

    test(
      `[${target.name}] udp: a backend not listening is counted and the others keep serving`,
      T,
      async () => {
        const dead = `127.0.0.1:${deadUdp}`;
        const many = await Promise.all(Array.from({ length: 6 }, () => client()));
        const served = new Set<Client>();
        for (let i = 0; i < 3; i++) {
          const replies = await Promise.all(many.map((c) => c.ask(`d${c.port}:${i}`, port("dead"), 400)));
          replies.forEach((r, k) => {
            if (r === null) return;
            assert.equal(r, `d${many[k].port}:${i}`);
            served.add(many[k]);
          });
        }
        assert.ok(
          served.size >= 1 && served.size < 6,
          `${served.size} of 6 clients served (round robin over 2)`,
        );
        if (seesUdpRefusals) {
          const refusals = () => metric("ferry_backend_refusals_total", { cluster: "deadc", backend: dead });
          assert.ok(await eventually(async () => (await refusals()) > 0), "ICMP refusals are counted");
        }
        // Deno's runtime path uses unconnected sockets and cannot see ICMP port unreachable, so refusals stay 0
        // there; only the sends are counted.
        assert.ok(
          await metric("ferry_backend_datagrams_out_total", { cluster: "deadc", backend: dead }) >= 1,
        );
        // The live backend keeps serving: served clients still get replies, and fresh clients get through.
        for (const c of served) {
          assert.equal(
            await c.ask(`again${c.port}`, port("dead"), 3000),
            `again${c.port}`,
          );
        }
        const fresh = await Promise.all(Array.from({ length: 4 }, () => client()));
        const freshReplies = await Promise.all(fresh.map((c) => c.ask(`f${c.port}`, port("dead"), 1000)));
        assert.ok(freshReplies.some((r) => r !== null), "a new client reaches the live backend");
        assert.equal(
          await (await client()).ask("other", port("udp"), 3000),
          "other",
          "other listeners unaffected",
        );
      },
    );

    // ---- TCP ---------------------------------------------------------------------------------------------

    test(`[${target.name}] tcp: echo round trip`, T, async () => {
      const r = await tcpExchange(port("tcp"), bytes("ping"));
      assert.equal(r.error, null);
      assert.equal(text(r.received), "ping\nEOF 4");
      assert.ok(r.gotEnd);
    });

    test(`[${target.name}] tcp: 10 MiB each way arrive intact`, T, async () => {
      const size = 10 * 1024 * 1024;
      const data = randomFillSync(new Uint8Array(size));
      const uploads = tcpEcho.uploads.length;
      const r = await tcpExchange(port("tcp"), data, 15_000);
      assert.equal(r.error, null);
      const marker = `\nEOF ${size}`;
      assert.equal(r.received.length, size + marker.length, "bytes back");
      assert.equal(sha256(r.received.subarray(0, size)), sha256(data), "down: SHA-256 of the echo");
      assert.equal(text(r.received.subarray(size)), marker);
      assert.deepEqual(tcpEcho.uploads[uploads], { bytes: size, sha256: sha256(data) }, "up: at the backend");
    });

    test(
      `[${target.name}] tcp: half-close: after the client's FIN the backend still answers`,
      T,
      async () => {
        const r = await new Promise<{ before: string; after: string; end: boolean }>((resolve, reject) => {
          const s = net.connect({ port: port("tcp"), host: "127.0.0.1", allowHalfOpen: true });
          let got = "";
          let before = "";
          const timer = setTimeout(
            () => (s.destroy(), reject(new Error(`stuck; got ${JSON.stringify(got)}`))),
            5000,
          );
          s.on("connect", () => s.write("half"));
          s.on("data", (d: Uint8Array) => {
            got += text(d);
            if (got === "half") {
              before = got;
              s.end(); // our FIN: the backend has not answered the marker yet
            }
          });
          s.on("error", reject);
          let end = false;
          s.on("end", () => (end = true));
          s.on("close", () => {
            clearTimeout(timer);
            resolve({ before, after: got.slice(before.length), end });
          });
        });
        assert.equal(r.before, "half");
        assert.equal(r.after, "\nEOF 4", "data sent after our FIN reached us");
        assert.ok(r.end, "then the backend's FIN");
      },
    );

    test(`[${target.name}] tcp: 200 concurrent connections`, T, async () => {
      const total = () => metric("ferry_listener_tcp_connections_total", { listener: "tcp" });
      const before = await total();
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => tcpExchange(port("tcp"), bytes(`conn-${i}`), 10_000)),
      );
      results.forEach((r, i) => {
        assert.equal(r.error, null, `connection ${i}`);
        assert.equal(text(r.received), `conn-${i}\nEOF ${`conn-${i}`.length}`, `connection ${i}`);
      });
      assert.equal(await total(), before + 200);
      const active = () => metric("ferry_listener_tcp_connections_active", { listener: "tcp" });
      assert.ok(await eventually(async () => (await active()) === 0), "every connection ended");
    });

    test(`[${target.name}] tcp: a refused backend closes the client cleanly and is counted`, T, async () => {
      const r = await tcpExchange(port("tcpdead"), bytes("anyone?"), 5000);
      assert.equal(r.error, null, "a FIN, not a reset");
      assert.ok(r.gotEnd);
      assert.equal(r.received.length, 0);
      const dead = `127.0.0.1:${deadTcp}`;
      assert.ok(await metric("ferry_backend_refusals_total", { cluster: "tcpdead", backend: dead }) >= 1);
      assert.ok(
        await metric("ferry_listener_tcp_connections_closed_total", {
          listener: "tcpdead",
          reason: "refused",
        }) >= 1,
      );
      assert.equal(text((await tcpExchange(port("tcp"), bytes("still"))).received), "still\nEOF 5");
    });

    // ---- admin API ---------------------------------------------------------------------------------------

    test(`[${target.name}] admin: a token is required`, T, async () => {
      const without = await fetch(`${ferry.adminUrl}/api/v1/status`);
      assert.equal(without.status, 401);
      await without.body?.cancel();
      const wrong = await ferry.api("/api/v1/status", { headers: { authorization: "Bearer not-the-token" } });
      assert.equal(wrong.status, 401);
      await wrong.body?.cancel();
      const metrics = await fetch(`${ferry.adminUrl}/metrics`);
      assert.equal(metrics.status, 401);
      await metrics.body?.cancel();
      const healthz = await fetch(`${ferry.adminUrl}/healthz`);
      assert.equal(healthz.status, 200, "probes stay open");
      await healthz.body?.cancel();
      const right = await ferry.api("/api/v1/status");
      assert.equal(right.status, 200);
      await right.body?.cancel();
    });

    test(`[${target.name}] admin: GET /api/v1/status shows the runtime and listeners`, T, async () => {
      const status = await ferry.json<{
        runtime: string;
        version: string;
        configPath: string;
        listeners: { name: string; protocol: string; address: string; cluster: string }[];
      }>("/api/v1/status");
      assert.equal(status.runtime, target.runtime);
      assert.equal(status.configPath, ferry.configPath);
      for (const name of [...UDP_LISTENERS, ...TCP_LISTENERS]) {
        const l = status.listeners.find((x) => x.name === name);
        assert.ok(l, `listener ${name}`);
        assert.equal(l.address, ferry.listeners.get(name)!.address);
        assert.equal(l.protocol, ferry.listeners.get(name)!.protocol);
      }
    });

    test(
      `[${target.name}] admin: a backend added over HTTP gets new flows; existing flows stay pinned`,
      T,
      async () => {
        const old = await Promise.all(Array.from({ length: 3 }, () => client()));
        for (const c of old) assert.equal(await c.ask(`o${c.port}:0`, port("grow"), 3000), `o${c.port}:0`);
        assert.equal(g1.received.length, 3);
        const res = await ferry.api("/api/v1/clusters/grow/backends", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ address: `127.0.0.1:${g2.port}` }),
        });
        assert.equal(res.status, 201, await res.text());
        // least_flows: the new backend has 0 flows against 3, so the next three flows all go to it.
        const fresh = await Promise.all(Array.from({ length: 3 }, () => client()));
        for (const c of fresh) assert.equal(await c.ask(`n${c.port}:0`, port("grow"), 3000), `n${c.port}:0`);
        for (const c of old) assert.equal(await c.ask(`o${c.port}:1`, port("grow"), 3000), `o${c.port}:1`);
        assert.deepEqual(
          g1.received.map((r) => text(r.data)[0]),
          ["o", "o", "o", "o", "o", "o"],
          "old flows pinned",
        );
        assert.deepEqual(
          g2.received.map((r) => text(r.data)[0]),
          ["n", "n", "n"],
          "new flows on the new backend",
        );
        const listed = await flows("grow");
        for (const c of old) {
          assert.equal(
            listed.find((f) => f.client === `127.0.0.1:${c.port}`)?.backend,
            `127.0.0.1:${g1.port}`,
          );
        }
        for (const c of fresh) {
          assert.equal(
            listed.find((f) => f.client === `127.0.0.1:${c.port}`)?.backend,
            `127.0.0.1:${g2.port}`,
          );
        }
      },
    );

    test(`[${target.name}] admin: a flow disconnected over HTTP is replaced by a fresh one`, T, async () => {
      const c = await client();
      assert.equal(await c.ask("x1", port("disc"), 3000), "x1");
      const created = () => metric("ferry_listener_flows_created_total", { listener: "disc" });
      assert.equal(await created(), 1);
      const r = await ferry.json<{ closed: number }>(`/api/v1/flows?client=127.0.0.1:${c.port}`, {
        method: "DELETE",
      });
      assert.equal(r.closed, 1);
      assert.equal((await flows("disc")).length, 0);
      assert.equal(await c.ask("x2", port("disc"), 3000), "x2");
      assert.equal(await created(), 2);
      assert.equal(
        await metric("ferry_listener_flows_closed_total", { listener: "disc", reason: "disconnected" }),
        1,
      );
      const [first, second] = disc.received.map((x) => x.port);
      assert.notEqual(second, first, "a new upstream socket");
    });

    test(`[${target.name}] admin: PUT /config with one bad field changes nothing`, T, async () => {
      const hash = (await ferry.json<{ configHash: string }>("/api/v1/status")).configHash;
      const running = await ferry.json<{ clusters: Record<string, Record<string, unknown>> }>(
        "/api/v1/config?format=json",
      );
      const broken = structuredClone(running);
      broken.clusters.solo.balancer = "maglve";
      const res = await ferry.api("/api/v1/config", {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(broken),
      });
      const body = await res.json() as { errors: { path: string; message: string }[] };
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.deepEqual(body.errors.map((e) => e.path), ["clusters.solo.balancer"]);
      assert.equal((await ferry.json<{ configHash: string }>("/api/v1/status")).configHash, hash);
      assert.deepEqual(await ferry.json("/api/v1/config?format=json"), running);
      assert.equal(await (await client()).ask("still", port("big"), 3000), "still", "the relay still serves");
    });

    test(`[${target.name}] admin: /metrics parses under the strict exposition parser`, T, async () => {
      const res = await ferry.api("/metrics");
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
      const families = parsePrometheus(await res.text());
      assert.equal(families.get("ferry_info")?.samples[0].labels.runtime, target.runtime);
      const info = families.get("ferry_listener_info")!.samples.map((s) => s.labels.listener).sort();
      assert.deepEqual(info, [...UDP_LISTENERS, ...TCP_LISTENERS].sort());
      const created = families.get("ferry_listener_flows_created_total")!.samples;
      assert.ok(created.find((s) => s.labels.listener === "udp")!.value >= 21);
    });

    test(`[${target.name}] SIGTERM: drains for the grace period and exits 0`, T, async () => {
      assert.equal(await ferry.stop(5000), 0, ferry.stderr);
      assert.ok(ferry.logs().some((l) => l.event === "stopped"));
    });
  });
}
