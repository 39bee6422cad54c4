/**
 * The `dns` health probe: the pure DNS message code (core/dns_message.ts), its config keys, and the probe
 * over UDP and TCP against a real dnsmasq started on a free loopback port.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  checkDnsReply,
  DEFAULT_DNS_PROBE,
  type DnsProbeSettings,
  dnsTcpMessage,
  encodeDnsQuery,
  normalizeDnsName,
  parseDnsType,
} from "../core/dns_message.ts";
import { configToToml, parseConfigToml } from "../core/config.ts";
import { DEFAULT_HEALTH, type HealthSettings } from "../core/health.ts";
import { Relay } from "../shell/relay/relay.ts";
import { detectPlatform } from "../shell/process/platform.ts";
import { addr, backend, cluster, config, listener } from "./support/fixtures.ts";
import { dnsmasqMissing, startDnsmasq } from "./support/dnsmasq.ts";
import { EchoBackend, until } from "./support/udp.ts";

const A: DnsProbeSettings = { name: "ferry.test", type: 1, transport: "udp", acceptNxdomain: false };

/** A reply to `query` (UDP framing) with `rcode` and optionally flipped bits. */
function replyTo(query: Uint8Array, rcode: number, edit?: (m: Uint8Array) => void): Uint8Array {
  const m = query.slice();
  m[2] |= 0x80; // QR
  m[3] = (m[3] & 0xf0) | rcode;
  edit?.(m);
  return m;
}

describe("DNS messages", () => {
  test("a query is byte-exact: ID, RD, one question in labels, type and class IN", () => {
    const q = encodeDnsQuery(0xbeef, A);
    assert.deepEqual([...q], [
      0xbe,
      0xef,
      0x01,
      0x00,
      0,
      1,
      0,
      0,
      0,
      0,
      0,
      0,
      5,
      ...new TextEncoder().encode("ferry"),
      4,
      ...new TextEncoder().encode("test"),
      0,
      0,
      1,
      0,
      1,
    ]);
    const root = encodeDnsQuery(7, DEFAULT_DNS_PROBE);
    assert.deepEqual([...root.subarray(12)], [0, 0, 2, 0, 1]); // ". NS IN"
    const tcp = encodeDnsQuery(7, { ...DEFAULT_DNS_PROBE, transport: "tcp" });
    assert.deepEqual([tcp[0], tcp[1]], [0, root.byteLength]);
    assert.deepEqual(tcp.subarray(2), root);
  });

  test("a reply passes with its ID, QR, the question echoed and NOERROR (NXDOMAIN when accepted)", () => {
    const q = encodeDnsQuery(0x1234, A);
    assert.equal(checkDnsReply(replyTo(q, 0), 0x1234, A), null);
    assert.equal(checkDnsReply(replyTo(q, 3), 0x1234, A), "RCODE NXDOMAIN");
    assert.equal(checkDnsReply(replyTo(q, 3), 0x1234, { ...A, acceptNxdomain: true }), null);
    assert.equal(checkDnsReply(replyTo(q, 2), 0x1234, { ...A, acceptNxdomain: true }), "RCODE SERVFAIL");
    assert.equal(checkDnsReply(replyTo(q, 5), 0x1234, A), "RCODE REFUSED");
    assert.match(checkDnsReply(replyTo(q, 0), 0x1235, A) ?? "", /ID does not match/);
    assert.match(checkDnsReply(q, 0x1234, A) ?? "", /no QR bit/);
    assert.match(checkDnsReply(q.subarray(0, 11), 0x1234, A) ?? "", /no DNS message/);
    assert.match(checkDnsReply(replyTo(q, 0).subarray(0, 20), 0x1234, A) ?? "", /cut short/);
    // 0x20 case randomisation is fine; another name or type is not.
    assert.equal(checkDnsReply(replyTo(q, 0, (m) => (m[13] = 0x46)), 0x1234, A), null); // "Ferry"
    assert.match(checkDnsReply(replyTo(q, 0, (m) => (m[13] = 0x67)), 0x1234, A) ?? "", /question differs/);
    assert.match(checkDnsReply(replyTo(q, 0, (m) => (m[q.length - 3] = 28)), 0x1234, A) ?? "", /differs/);
    assert.match(checkDnsReply(replyTo(q, 0, (m) => (m[5] = 0)), 0x1234, A) ?? "", /one question/);
  });

  test("TCP framing: a message once its two-byte length is satisfied", () => {
    assert.equal(dnsTcpMessage(new Uint8Array([0])), null);
    assert.equal(dnsTcpMessage(new Uint8Array([0, 3, 1, 2])), null);
    assert.deepEqual([...(dnsTcpMessage(new Uint8Array([0, 3, 1, 2, 3, 9])) ?? [])], [1, 2, 3]);
  });

  test("types by name or number, names checked", () => {
    assert.equal(parseDnsType("aaaa"), 28);
    assert.equal(parseDnsType("NS"), 2);
    assert.equal(parseDnsType(65), 65);
    assert.equal(parseDnsType("TYPE65"), 65);
    assert.match(String(parseDnsType("bogus")), /unknown DNS type/);
    assert.match(String(parseDnsType(70000)), /1 to 65535/);
    assert.deepEqual(normalizeDnsName("."), { name: "" });
    assert.deepEqual(normalizeDnsName("Ferry.Test."), { name: "ferry.test" });
    assert.match(String(normalizeDnsName("a..b")), /empty label/);
    assert.match(String(normalizeDnsName("x".repeat(64) + ".t")), /63/);
    assert.match(String(normalizeDnsName("a b.test")), /characters/);
  });
});

function healthToml(extra: string): string {
  return `[[listeners]]\nname = "dns"\naddress = "127.0.0.1:5353"\ncluster = "dns"\n\n` +
    `[clusters.dns]\nbackends = [{ address = "127.0.0.1:53" }]\n\n[clusters.dns.health]\n${extra}`;
}

describe('config: mode = "dns"', () => {
  test("defaults, every key, and a round trip through the writer", () => {
    const d = parseConfigToml(healthToml(`mode = "dns"\n`));
    assert.ok(d.ok, JSON.stringify(d));
    assert.deepEqual(d.config.clusters[0].health.dns, DEFAULT_DNS_PROBE);
    const r = parseConfigToml(healthToml(
      `mode = "dns"\ndns_name = "Ferry.Test."\ndns_type = "AAAA"\ndns_transport = "tcp"\n` +
        `dns_accept_nxdomain = true\n`,
    ));
    assert.ok(r.ok, JSON.stringify(r));
    const want = { name: "ferry.test", type: 28, transport: "tcp", acceptNxdomain: true };
    assert.deepEqual(r.config.clusters[0].health.dns, want);
    const again = parseConfigToml(configToToml(r.config));
    assert.ok(again.ok, JSON.stringify(again));
    assert.deepEqual(again.config.clusters[0].health.dns, want);
  });

  test("clear errors: a bad name or type, dns keys on another mode, send/expect on dns", () => {
    const errs = (extra: string) => {
      const r = parseConfigToml(healthToml(extra));
      assert.equal(r.ok, false, extra);
      return JSON.stringify(r);
    };
    assert.match(errs(`mode = "dns"\ndns_type = "BOGUS"\n`), /health\.dns_type.*unknown DNS type/);
    assert.match(errs(`mode = "dns"\ndns_name = "a..b"\n`), /health\.dns_name.*empty label/);
    assert.match(errs(`mode = "dns"\ndns_transport = "quic"\n`), /health\.dns_transport/);
    assert.match(errs(`mode = "tcp"\ndns_name = "x.test"\n`), /only for mode = \\"dns\\"/);
    assert.match(errs(`mode = "dns"\nsend = "x"\n`), /no send or expect keys/);
  });
});

const platform = detectPlatform();

describe(`dns health probe against dnsmasq on ${platform.runtime}`, { skip: dnsmasqMissing }, () => {
  const stops: (() => unknown)[] = [];
  after(async () => {
    for (const f of stops.splice(0).reverse()) await f();
  });

  const FAST: HealthSettings = {
    ...DEFAULT_HEALTH,
    mode: "dns",
    interval: 100,
    timeout: 300,
    jitter: 10,
    rise: 1,
    fall: 2,
    maxFails: 0,
  };

  async function probe(dns: DnsProbeSettings, port: number) {
    const relay = await Relay.start(
      config([cluster({ health: { ...FAST, dns }, backends: [backend(`127.0.0.1:${port}`)] })], [
        listener({ address: addr("127.0.0.1:0") }),
      ]),
      platform,
      { seed: 3 },
    );
    stops.push(() => relay.stop());
    return (relay.core.cluster("c")?.backends[0])!;
  }

  for (const transport of ["udp", "tcp"] as const) {
    test(`${transport}: a real answer keeps it up; REFUSED and NXDOMAIN (unless accepted) take it down`, async () => {
      const server = await startDnsmasq();
      stops.push(() => server.stop());
      const good = await probe({ ...A, transport }, server.port);
      const refused = await probe({ ...DEFAULT_DNS_PROBE, transport }, server.port); // ". NS": no upstream
      const nx = await probe({ ...A, name: "gone.nx.test", transport }, server.port);
      const nxOk = await probe({ ...A, name: "gone.nx.test", transport, acceptNxdomain: true }, server.port);
      const settled = () =>
        good.health.okStreak >= 3 && nxOk.health.okStreak >= 3 &&
        refused.health.status === "down" && nx.health.status === "down";
      assert.ok(
        await until(settled, 5000),
        JSON.stringify([good, refused, nx, nxOk].map((b) => [b.health.status, b.health.lastError])),
      );
      assert.equal(good.health.status, "up");
      assert.equal(good.health.lastError, null);
      assert.equal(nxOk.health.status, "up");
      assert.match(refused.health.lastError ?? "", /RCODE REFUSED/);
      assert.match(nx.health.lastError ?? "", /RCODE NXDOMAIN/);
    });
  }

  test("a backend that answers with anything but DNS, or nothing, goes down", async () => {
    const echo = await new EchoBackend().start(); // echoes the query back: no QR bit
    stops.push(() => echo.close());
    const b = await probe(A, echo.port);
    assert.ok(await until(() => b.health.status === "down", 5000), String(b.health.lastError));
    assert.match(b.health.lastError ?? "", /no reply within 300 ms \(ignored: .*no QR bit/);
  });
});
