// End-to-end: Ferry in front of a real DNS server. Pipelined queries from one socket through Ferry to a
// dnsmasq with `responses = 1` must every one be answered, on the native and the runtime UDP data paths
// and over TCP on the same port, for each target (`deno main.ts` and `dist/ferry` under Deno, `bun main.ts`
// under Bun). The README's "Ferry in front of DNS" config must pass `ferry check`. 127.0.0.1 only.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { checkDnsReply, type DnsProbeSettings, dnsTcpMessage, encodeDnsQuery } from "../core/dns_message.ts";
import { parseConfigToml } from "../core/config.ts";
import {
  FerryProcess,
  type FerryTarget,
  ferryTargets,
  freePorts,
  killAll,
  ROOT,
} from "./support/ferry_process.ts";
import { type Dnsmasq, dnsmasqMissing, startDnsmasq } from "./support/dnsmasq.ts";
import { Client, sleep } from "./support/udp.ts";
import { Ferry } from "./support/ferry_child.ts";

after(killAll);

const T = { timeout: 30_000 };
/** Queries per burst: a stub resolver's A and AAAA, and then some, all sent before any answer. */
const PIPELINED = 8;

/** The k-th query of a burst: A or AAAA of a name under ferry.test (dnsmasq answers both). */
function question(k: number): DnsProbeSettings {
  return { name: `q${k}.ferry.test`, type: k % 2 === 0 ? 1 : 28, transport: "udp", acceptNxdomain: false };
}

/** Sends PIPELINED queries from one socket at once; resolves with the IDs answered correctly. */
async function udpBurst(port: number, base: number): Promise<{ answered: number[]; wrong: string[] }> {
  const c = await new Client().start();
  try {
    const want = new Map<number, DnsProbeSettings>();
    for (let k = 0; k < PIPELINED; k++) want.set(base + k, question(k));
    for (const [id, q] of want) c.send(encodeDnsQuery(id, q), port);
    const answered: number[] = [];
    const wrong: string[] = [];
    for (let k = 0; k < PIPELINED; k++) {
      const d = await c.next(3000);
      if (d === null) break;
      const id = (d[0] << 8) | d[1];
      const q = want.get(id);
      const why = q === undefined ? `unknown ID ${id}` : checkDnsReply(d, id, q);
      if (why === null) answered.push(id);
      else wrong.push(why);
    }
    return { answered: answered.sort((a, b) => a - b), wrong };
  } finally {
    c.close();
  }
}

/** Two length-prefixed queries in one write on one TCP connection; resolves with the answers' verdicts. */
function tcpPipelined(port: number): Promise<(string | null)[]> {
  const qs = [question(0), question(1)].map((q) => ({ ...q, transport: "tcp" as const }));
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: "127.0.0.1" });
    let buf = new Uint8Array(0);
    const out: (string | null)[] = [];
    const timer = setTimeout(() => (s.destroy(), reject(new Error(`tcp: ${out.length} of 2 answers`))), 5000);
    s.on("connect", () => {
      const a = encodeDnsQuery(0x7001, qs[0]), b = encodeDnsQuery(0x7002, qs[1]);
      const both = new Uint8Array(a.length + b.length);
      both.set(a);
      both.set(b, a.length);
      s.write(both);
    });
    s.on("data", (d: Uint8Array) => {
      const next = new Uint8Array(buf.length + d.length);
      next.set(buf);
      next.set(d, buf.length);
      buf = next;
      for (let m = dnsTcpMessage(buf); m !== null; m = dnsTcpMessage(buf)) {
        const id = (m[0] << 8) | m[1];
        out.push(checkDnsReply(m, id, id === 0x7001 ? qs[0] : qs[1]));
        buf = buf.slice(2 + m.length);
      }
      if (out.length === 2) {
        clearTimeout(timer);
        s.end();
        resolve(out);
      }
    });
    s.on("error", (e) => (clearTimeout(timer), reject(e)));
  });
}

/** The "Ferry in front of DNS" config block of the README, with its backend and ports swapped in. */
function readmeDnsConfig(): string {
  const readme = readFileSync(`${ROOT}README.md`, "utf8");
  const section = readme.slice(readme.indexOf("## Ferry in front of DNS"));
  const m = /```toml\n([\s\S]*?)```/.exec(section);
  if (m === null) throw new Error('no toml block in the README\'s "Ferry in front of DNS" section');
  return m[1];
}

describe("README: Ferry in front of DNS", () => {
  test("its config block is valid, and `ferry check` says so", async () => {
    const toml = readmeDnsConfig();
    const r = parseConfigToml(toml);
    assert.ok(r.ok, JSON.stringify(r));
    const dns = r.config.clusters.find((c) => c.health.mode === "dns");
    assert.ok(dns !== undefined && dns.responses === 1, "a cluster with responses = 1 and the dns probe");
    // UDP and TCP on one port, both behind source rules.
    const ports = r.config.listeners.map((l) => `${l.protocol}:${l.address.port}`).sort();
    assert.deepEqual(ports, ["tcp:53", "udp:53"]);
    for (const l of r.config.listeners) assert.ok(l.sources.allow.length > 0, `${l.name}: allow rules`);
    const dir = mkdtempSync("/tmp/ferry-readme-dns-");
    try {
      writeFileSync(`${dir}/ferry.toml`, toml);
      const f = new Ferry(["check", `${dir}/ferry.toml`]);
      assert.equal(await f.exited, 0, f.stderr + f.stdout);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

for (const target of ferryTargets()) describeTarget(target);

function describeTarget(target: FerryTarget): void {
  describe(`e2e dns [${target.name}]`, { skip: dnsmasqMissing }, () => {
    let server: Dnsmasq;
    let ferry: FerryProcess;
    after(async () => {
      ferry?.kill();
      await server?.stop();
    });

    test(
      `[${target.name}] starts in front of dnsmasq (native and runtime UDP, TCP on the native port)`,
      T,
      async () => {
        server = await startDnsmasq();
        const at = (p: number) => `"127.0.0.1:${p}"`;
        // The TCP listener shares the native UDP port, which was only checked free for UDP: another test
        // running at the same time may hold it for TCP, so a failed start tries fresh ports (3 times).
        for (let attempt = 1;; attempt++) {
          try {
            const [native, runtime] = await freePorts("udp", 2);
            ferry = await FerryProcess.start(target, relayConfig(native, runtime), {
              timeoutMs: 20_000,
            });
            break;
          } catch (e) {
            if (attempt === 3) throw e;
          }
        }
        function relayConfig(native: number, runtime: number): string {
          return `[relay]\ngrace_period = "200ms"\n\n[admin]\nlisten = "127.0.0.1:0"\n\n` +
            `[[listeners]]\nname = "native"\naddress = ${
              at(native)
            }\ncluster = "dns"\ndatapath = "native"\n\n` +
            `[[listeners]]\nname = "runtime"\naddress = ${
              at(runtime)
            }\ncluster = "dns"\ndatapath = "runtime"\n\n` +
            `[[listeners]]\nname = "tcp"\nprotocol = "tcp"\naddress = ${at(native)}\ncluster = "dnstcp"\n\n` +
            `[clusters.dns]\nresponses = 1\nfront_timeout = "5s"\nbackends = [{ address = ${
              at(server.port)
            } }]\n` +
            `[clusters.dns.health]\nmode = "dns"\ninterval = "200ms"\ndns_name = "ferry.test"\ndns_type = "A"\n\n` +
            `[clusters.dnstcp]\nbackends = [{ address = ${at(server.port)} }]\n` +
            `[clusters.dnstcp.health]\nmode = "dns"\ninterval = "200ms"\ndns_name = "ferry.test"\n` +
            `dns_type = "A"\ndns_transport = "tcp"\n`;
        }
        for (const [name, path] of [["native", "native"], ["runtime", "runtime"]]) {
          assert.equal(
            await ferry.metric("ferry_listener_datapath_info", { listener: name, datapath: path }),
            1,
            `${name} runs on the ${path} data path`,
          );
        }
      },
    );

    for (const path of ["native", "runtime"] as const) {
      test(
        `[${target.name}] ${path}: ${PIPELINED} pipelined queries from one socket, responses = 1: all answered`,
        T,
        async () => {
          for (let round = 0; round < 3; round++) {
            const base = (path === "native" ? 0x1000 : 0x2000) + round * 0x100;
            const { answered, wrong } = await udpBurst(ferry.port(path), base);
            assert.deepEqual(wrong, [], "no wrong answers");
            assert.equal(
              answered.length,
              PIPELINED,
              `round ${round}: answered ${answered.length} of ${PIPELINED}`,
            );
          }
          const labels = { listener: path };
          // Each burst's flow closed once its every query had its answer; none was left to a late reply.
          let closed = 0;
          for (let i = 0; i < 40; i++) {
            closed = await ferry.metric("ferry_listener_flows_closed_total", {
              ...labels,
              reason: "responses",
            });
            if (closed >= 3) break;
            await sleep(50);
          }
          assert.ok(closed >= 3, `flows closed by responses: ${closed}`);
          assert.equal(await ferry.metric("ferry_listener_drops_total", { ...labels, reason: "late" }), 0);
          assert.equal(await ferry.metric("ferry_listener_datagrams_out_total", labels), 3 * PIPELINED);
        },
      );
    }

    test(`[${target.name}] tcp: two pipelined queries on one connection, both answered`, T, async () => {
      assert.deepEqual(await tcpPipelined(ferry.port("tcp")), [null, null]);
    });

    test(`[${target.name}] the dns probes (udp and tcp) see dnsmasq answering`, T, async () => {
      for (const name of ["dns", "dnstcp"]) {
        let streak = 0;
        for (let i = 0; i < 40 && streak < 2; i++) {
          const r = await ferry.json<{ cluster: { backends: { health: { okStreak: number } }[] } }>(
            `/api/v1/clusters/${name}`,
          );
          streak = r.cluster.backends[0].health.okStreak;
          if (streak < 2) await sleep(100);
        }
        assert.ok(streak >= 2, `${name}: ok streak ${streak}`);
      }
    });
  });
}
